"""Line plots of a federated sweep with matplotlib: panels side by side, one line with markers
per series, a legend."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from safeio import save_figure


@dataclass(frozen=True)
class Panel:
    title: str
    xlabel: str
    series: dict[str, list[tuple[float, float]]]


def line_plot(panels: list[Panel], colours: dict[str, str], path: Path) -> Path:
    """One PNG with `panels` side by side; `colours` maps series names to matplotlib colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for name, points in panel.series.items():
            if points:
                xs, ys = zip(*sorted(points))
                ax.plot(xs, ys, marker="o", color=colours.get(name), label=name)
        ax.set_title(panel.title, fontsize=8)
        ax.set_xlabel(panel.xlabel, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    path = save_figure(fig, path)
    plt.close(fig)
    return path
