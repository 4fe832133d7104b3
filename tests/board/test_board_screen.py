"""The 800x480 screen: every state draws, the camera frame is never drawn on, 16 classes fit."""

import numpy as np
import pytest

from board.app import AppConfig, FewShotApp, State
from board.controls import Action, Event
from board.fewshot import FewShotClassifier, NcmConfig
from board.screen import HEIGHT, WIDTH, Screen, Timing


@pytest.mark.parametrize("state", list(State))
def test_every_state_draws_without_touching_the_frame(state):
    rng = np.random.default_rng(0)
    app = FewShotApp(FewShotClassifier(4, None, NcmConfig(max_classes=16)), AppConfig(frames_per_shot=1), "m")
    frame = rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    for k in range(16):
        app.handle(Event(Action.NEXT_CLASS))
        app.on_frame(frame, rng.normal(size=4))
    app.handle(Event(Action.INFER))
    app.on_frame(frame, rng.normal(size=4))
    if state is State.ERROR:
        app.on_error("camera 0 stopped delivering frames (unplugged?)")
    else:
        app.state = state
    before = frame.copy()
    canvas = Screen().draw(frame, app, Timing(fps=15.0, latency_ms=40.0, backbone_ms=20.0))
    assert canvas.shape == (HEIGHT, WIDTH, 3) and canvas.dtype == np.uint8
    np.testing.assert_array_equal(frame, before)
    assert canvas[:, 600:].std() > 0                     # the class panel is drawn
