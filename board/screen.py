"""Draws the 800x480 screen: live video, state, classes with shot counts and scores, FPS, latency.

The model input is cropped from the camera frame before anything is drawn, and drawing happens on
a separate canvas, so overlays never leak into the backbone's input (a PEFSL bug, fixed late).
During inference the banner names the predicted class with its score and its margin over the
runner-up; below `unsure_margin` the answer is drawn in amber with a question mark, so a shaky
answer does not look like a confident one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from board.app import FewShotApp, State
from board.fewshot import UNKNOWN

WIDTH, HEIGHT = 800, 480
VIDEO_W = 600                      # live video area on the left, the class panel on the right
FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE, BLACK, GREY = (255, 255, 255), (0, 0, 0), (90, 90, 90)
GREEN, RED, YELLOW, BLUE = (60, 200, 60), (40, 40, 230), (0, 215, 255), (230, 160, 40)
AMBER, BAR_OFF = (0, 140, 255), (150, 150, 150)
UNSURE_MARGIN = 0.15               # default: top score minus runner-up below this looks "unsure"
STATE_COLOURS = {State.TEACH: BLUE, State.CAPTURE: YELLOW, State.INFER: GREEN,
                 State.PAUSED: GREY, State.ERROR: RED}


@dataclass
class Timing:
    fps: float = 0.0
    latency_ms: float = 0.0        # capture -> drawn
    backbone_ms: float = 0.0


@dataclass(frozen=True)
class Verdict:
    """What the banner says about one prediction."""

    name: str
    score: float                   # smoothed probability of the predicted class
    margin: float                  # score minus the runner-up's (the score itself with one class)
    runner_up: str | None
    unsure: bool
    unknown: bool = False          # farther than --unknown-distance from every class


def verdict(app: FewShotApp, unsure_margin: float) -> Verdict | None:
    """The current prediction as the banner shows it; None outside inference."""
    pred = app.prediction
    classes = app.classifier.classes
    if app.state is not State.INFER or pred is None or len(pred.scores) != len(classes) or not classes:
        return None
    if pred.label == UNKNOWN:
        return Verdict("unknown", 0.0, 0.0, None, True, unknown=True)
    order = np.argsort(pred.scores)[::-1]
    top = float(pred.scores[pred.label])
    second = int(order[1]) if order[0] == pred.label and len(order) > 1 else int(order[0])
    if second == pred.label:
        return Verdict(classes[pred.label].name, top, top, None, top < unsure_margin)
    margin = top - float(pred.scores[second])
    return Verdict(classes[pred.label].name, top, margin, classes[second].name, margin < unsure_margin)


def plural(n: int, word: str) -> str:
    """'1 class', '2 classes', '0 shots'."""
    return f"{n} {word}" if n == 1 else f"{n} {word}{'es' if word.endswith(('s', 'sh', 'ch', 'x')) else 's'}"


def status_line(timing: Timing) -> str:
    """The bottom bar: every figure has its label."""
    return (f"{timing.fps:4.1f} FPS   end-to-end {timing.latency_ms:4.0f} ms   "
            f"backbone {timing.backbone_ms:5.1f} ms")


def _text(canvas, text, org, scale=0.5, colour=WHITE, thickness=1):
    """Text with a 1-pixel dark outline: the same glyphs shifted by one pixel each way, so the
    outline follows the text exactly (a thicker dark copy is wider: its advances differ)."""
    x, y = org
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            if dx or dy:
                cv2.putText(canvas, text, (x + dx, y + dy), FONT, scale, BLACK, thickness, cv2.LINE_AA)
    cv2.putText(canvas, text, org, FONT, scale, colour, thickness, cv2.LINE_AA)


class Screen:
    """Owns one canvas, redrawn in place every frame."""

    def __init__(self, unsure_margin: float = UNSURE_MARGIN):
        self.canvas = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
        self.unsure_margin = unsure_margin

    def draw(self, frame_bgr: np.ndarray | None, app: FewShotApp, timing: Timing) -> np.ndarray:
        canvas = self.canvas
        canvas[:] = 24
        if frame_bgr is not None and app.state not in (State.PAUSED, State.ERROR):
            self._video(canvas, frame_bgr)
        shown = verdict(app, self.unsure_margin)
        self._banner(canvas, app, shown)
        self._classes(canvas, app, shown)
        _text(canvas, status_line(timing), (8, HEIGHT - 10), 0.5)
        if app.state is State.ERROR:
            cv2.rectangle(canvas, (20, 180), (VIDEO_W - 20, 300), (30, 30, 120), -1)
            _text(canvas, "ERROR", (40, 215), 0.8, WHITE, 2)
            _text(canvas, _fit(app.error or "", VIDEO_W - 80, 0.5), (40, 250), 0.5)
            _text(canvas, app.message, (40, 280), 0.5, YELLOW)
        return canvas

    @staticmethod
    def _video(canvas: np.ndarray, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        scale = min(VIDEO_W / w, HEIGHT / h)
        new_w, new_h = int(w * scale), int(h * scale)
        top, left = (HEIGHT - new_h) // 2, (VIDEO_W - new_w) // 2
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        canvas[top:top + new_h, left:left + new_w] = cv2.resize(frame, (new_w, new_h), interpolation=interp)

    @staticmethod
    def _banner(canvas: np.ndarray, app: FewShotApp, shown: Verdict | None) -> None:
        cv2.rectangle(canvas, (0, 0), (VIDEO_W, 58), (16, 16, 16), -1)
        colour = STATE_COLOURS[app.state]
        headline, detail = app.state.value.upper(), ""
        if shown is not None and shown.unknown:
            headline, colour = "unknown", GREY
        elif shown is not None:
            headline = shown.name + ("?" if shown.unsure else "")
            colour = AMBER if shown.unsure else GREEN
            detail = f"{shown.score:.0%}"
            if shown.runner_up is not None:
                detail += f"  +{shown.margin * 100:.0f} pts over {shown.runner_up}"
            if shown.unsure:
                detail = "unsure: " + detail
        right = VIDEO_W - 10
        if detail:
            detail = _fit(detail, 300, 0.5)
            right -= _width(detail, 0.5) + 12
            _text(canvas, detail, (right + 12, 32), 0.5, colour)
        _text(canvas, _fit(headline, right - 10, 0.9, 2), (10, 32), 0.9, colour, 2)
        _text(canvas, _fit(app.message, VIDEO_W - 20, 0.45), (10, 52), 0.45, WHITE)

    @staticmethod
    def _classes(canvas: np.ndarray, app: FewShotApp, shown: Verdict | None) -> None:
        x0 = VIDEO_W
        cv2.rectangle(canvas, (x0, 0), (WIDTH, HEIGHT), (40, 40, 40), -1)
        classes = app.classifier.classes
        _text(canvas, plural(len(classes), "class"), (x0 + 8, 20), 0.5)
        if not classes:
            return
        row = min(44, (HEIGHT - 30) // len(classes))
        scores = app.prediction.scores if (app.prediction is not None and app.state is State.INFER
                                           and len(app.prediction.scores) == len(classes)) else None
        for i, taught in enumerate(classes):
            y = 30 + i * row
            if i == app.current and app.state in (State.TEACH, State.CAPTURE):   # where SHOT goes
                cv2.rectangle(canvas, (x0 + 2, y), (WIDTH - 2, y + row - 2), YELLOW, 1)
            size = row - 6
            if taught.thumbnail is not None and size >= 12:
                canvas[y + 3:y + 3 + size, x0 + 4:x0 + 4 + size] = cv2.resize(taught.thumbnail, (size, size))
            tx = x0 + 8 + size
            name_right = WIDTH - 46 if scores is not None else WIDTH - 8
            _text(canvas, _fit(taught.name, name_right - tx, 0.42), (tx, y + 14), 0.42)
            second = y + min(30, row - 4)
            _text(canvas, plural(len(taught.shots), "shot"), (tx, second), 0.36, WHITE if taught.shots else GREY)
            if scores is not None:
                _text(canvas, f"{scores[i] * 100:3.0f}%", (WIDTH - 40, y + 14), 0.4)
                left, right = tx + 54, WIDTH - 8
                top = app.prediction is not None and i == app.prediction.label
                bar = (AMBER if shown is not None and shown.unsure else GREEN) if top else BAR_OFF
                cv2.rectangle(canvas, (left, second - 8), (right, second), (70, 70, 70), -1)
                cv2.rectangle(canvas, (left, second - 8), (left + int(scores[i] * (right - left)), second), bar, -1)


def _width(text: str, scale: float, thickness: int = 1) -> int:
    """Drawn width of `text` with its outline."""
    return cv2.getTextSize(text, FONT, scale, thickness)[0][0] + 2


def _fit(text: str, max_px: int, scale: float, thickness: int = 1) -> str:
    """`text`, shortened with ".." so that it is at most `max_px` pixels wide once drawn."""
    if _width(text, scale, thickness) <= max_px:
        return text
    while text and _width(text + "..", scale, thickness) > max_px:
        text = text[:-1]
    return text + ".."
