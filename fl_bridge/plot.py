"""A minimal line plot written with OpenCV (a pinned dependency): panels side by side, one
polyline with markers per series, axis ranges from the data, a legend."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from train.files import atomic_path

W, H, MARGIN = 360, 340, 50


@dataclass(frozen=True)
class Panel:
    title: str
    xlabel: str
    series: dict[str, list[tuple[float, float]]]


def _text(img: np.ndarray, s: str, org: tuple[int, int], scale: float = 0.4, colour=(0, 0, 0)) -> None:
    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def _panel(p: Panel, colours: dict[str, tuple[int, int, int]]) -> np.ndarray:
    img = np.full((H, W, 3), 255, np.uint8)
    pts = [xy for s in p.series.values() for xy in s]
    if not pts:
        return img
    xs, ys = [x for x, _ in pts], [y for _, y in pts]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    pad = max(1e-9, 0.08 * (max(ys) - min(ys)) or 1.0)
    y0, y1 = min(ys) - pad, max(ys) + pad
    if min(ys) >= 0:
        y0 = max(0.0, y0)  # no negative axis for non-negative data

    def px(x: float, y: float) -> tuple[int, int]:
        return (int(MARGIN + (x - x0) / (x1 - x0) * (W - 1.5 * MARGIN)),
                int(H - 2 * MARGIN - (y - y0) / (y1 - y0) * (H - 3 * MARGIN)))

    cv2.rectangle(img, px(x0, y0), px(x1, y1), (0, 0, 0), 1)
    for x in sorted(set(xs)):
        _text(img, f"{x:g}", (px(x, y0)[0] - 6, H - 2 * MARGIN + 15))
    for y in np.linspace(y0, y1, 5):
        _text(img, f"{y:.1f}", (4, px(x0, y)[1] + 4))
    _text(img, p.title, (MARGIN - 10, 20), 0.45)
    _text(img, p.xlabel, (W // 2 - 50, H - 2 * MARGIN + 32))
    for i, (name, s) in enumerate(p.series.items()):
        colour = colours.get(name, (0, 0, 0))
        line = [px(x, y) for x, y in sorted(s)]
        for a, b in zip(line, line[1:]):
            cv2.line(img, a, b, colour, 2, cv2.LINE_AA)
        for c in line:
            cv2.circle(img, c, 4, colour, -1, cv2.LINE_AA)
        cv2.line(img, (MARGIN + 110 * i, H - 22), (MARGIN + 110 * i + 16, H - 22), colour, 2, cv2.LINE_AA)
        _text(img, name, (MARGIN + 110 * i + 20, H - 18), 0.4, colour)  # legend under the axis
    return img


def line_plot(panels: list[Panel], colours: dict[str, tuple[int, int, int]], path: Path) -> Path:
    img = np.concatenate([_panel(p, colours) for p in panels], axis=1)
    ok, png = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError("OpenCV could not encode the plot")
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(png.tobytes())
    return path
