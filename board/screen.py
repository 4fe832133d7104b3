"""Draws the 800x480 screen: live video, state, classes with shot counts and scores, FPS, latency.

The model input is cropped from the camera frame before anything is drawn, and drawing happens on
a separate canvas, so overlays never leak into the backbone's input (a PEFSL bug, fixed late).
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
STATE_COLOURS = {State.TEACH: BLUE, State.CAPTURE: YELLOW, State.INFER: GREEN,
                 State.PAUSED: GREY, State.ERROR: RED}


@dataclass
class Timing:
    fps: float = 0.0
    latency_ms: float = 0.0        # capture -> drawn
    backbone_ms: float = 0.0


def _text(canvas, text, org, scale=0.5, colour=WHITE, thickness=1):
    cv2.putText(canvas, text, org, FONT, scale, BLACK, thickness + 2, cv2.LINE_AA)
    cv2.putText(canvas, text, org, FONT, scale, colour, thickness, cv2.LINE_AA)


class Screen:
    """Owns one canvas, redrawn in place every frame."""

    def __init__(self):
        self.canvas = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)

    def draw(self, frame_bgr: np.ndarray | None, app: FewShotApp, timing: Timing) -> np.ndarray:
        canvas = self.canvas
        canvas[:] = 24
        if frame_bgr is not None and app.state not in (State.PAUSED, State.ERROR):
            self._video(canvas, frame_bgr)
        self._banner(canvas, app)
        self._classes(canvas, app)
        _text(canvas, f"{timing.fps:5.1f} FPS  {timing.latency_ms:5.0f} ms  backbone {timing.backbone_ms:5.1f} ms",
              (8, HEIGHT - 10), 0.5)
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
    def _banner(canvas: np.ndarray, app: FewShotApp) -> None:
        cv2.rectangle(canvas, (0, 0), (VIDEO_W, 58), (16, 16, 16), -1)
        colour = STATE_COLOURS[app.state]
        headline = app.state.value.upper()
        if app.state is State.INFER and app.prediction is not None:
            label = app.prediction.label
            headline = "unknown" if label == UNKNOWN else app.classifier.classes[label].name
            colour = GREY if label == UNKNOWN else GREEN
        _text(canvas, _fit(headline, VIDEO_W - 20, 0.9, 2), (10, 32), 0.9, colour, 2)
        _text(canvas, _fit(app.message, VIDEO_W - 20, 0.45), (10, 52), 0.45, WHITE)

    @staticmethod
    def _classes(canvas: np.ndarray, app: FewShotApp) -> None:
        x0 = VIDEO_W
        cv2.rectangle(canvas, (x0, 0), (WIDTH, HEIGHT), (40, 40, 40), -1)
        classes = app.classifier.classes
        _text(canvas, f"{len(classes)} classes", (x0 + 8, 20), 0.5)
        if not classes:
            return
        row = min(44, (HEIGHT - 30) // len(classes))
        scores = app.prediction.scores if (app.prediction is not None and app.state is State.INFER
                                           and len(app.prediction.scores) == len(classes)) else None
        for i, taught in enumerate(classes):
            y = 30 + i * row
            if i == app.current:
                cv2.rectangle(canvas, (x0 + 2, y), (WIDTH - 2, y + row - 2), YELLOW, 1)
            size = row - 6
            if taught.thumbnail is not None and size >= 12:
                canvas[y + 3:y + 3 + size, x0 + 4:x0 + 4 + size] = cv2.resize(taught.thumbnail, (size, size))
            tx = x0 + 8 + size
            name_right = WIDTH - 46 if scores is not None else WIDTH - 8
            _text(canvas, _fit(taught.name, name_right - tx, 0.42), (tx, y + 14), 0.42)
            second = y + min(30, row - 4)
            _text(canvas, f"{len(taught.shots)} shots", (tx, second), 0.36, WHITE if taught.shots else GREY)
            if scores is not None:
                _text(canvas, f"{scores[i] * 100:3.0f}%", (WIDTH - 40, y + 14), 0.4)
                left, right = tx + 54, WIDTH - 8
                cv2.rectangle(canvas, (left, second - 8), (right, second), (70, 70, 70), -1)
                cv2.rectangle(canvas, (left, second - 8), (left + int(scores[i] * (right - left)), second), GREEN, -1)


def _fit(text: str, max_px: int, scale: float, thickness: int = 1) -> str:
    """`text`, shortened with ".." so that it is at most `max_px` pixels wide once drawn."""

    def width(t: str) -> int:
        return cv2.getTextSize(t, FONT, scale, thickness + 2)[0][0]

    if width(text) <= max_px:
        return text
    while text and width(text + "..") > max_px:
        text = text[:-1]
    return text + ".."
