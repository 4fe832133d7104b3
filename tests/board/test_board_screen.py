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


# ----- what the screen says, checked on pixels ----------------------------------------------------
from board.fewshot import UNKNOWN, Prediction  # noqa: E402
from board.screen import AMBER, GREEN, VIDEO_W, YELLOW, _text, plural, status_line, verdict  # noqa: E402

BANNER = (slice(0, 58), slice(0, VIDEO_W))
PANEL = (slice(0, HEIGHT - 30), slice(VIDEO_W, WIDTH))


def _app(n_classes=4, infer=True):
    rng = np.random.default_rng(1)
    app = FewShotApp(FewShotClassifier(4, None, NcmConfig(max_classes=16)), AppConfig(frames_per_shot=1), "m")
    frame = rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    for _ in range(n_classes):
        app.handle(Event(Action.NEXT_CLASS))
        app.on_frame(frame, rng.normal(size=4))
    if infer:
        app.handle(Event(Action.INFER))
        app.on_frame(frame, rng.normal(size=4))
    return app, frame


def _near(region, colour, tol=12):
    """Number of pixels within `tol` of `colour` (every channel)."""
    return int((np.abs(region.astype(int) - np.array(colour)).max(axis=2) <= tol).sum())


@pytest.mark.parametrize("scale,thickness", [(0.36, 1), (0.5, 1), (0.9, 2)])
def test_outline_is_no_wider_than_its_text(scale, thickness):
    canvas = np.full((60, 400, 3), 128, np.uint8)
    _text(canvas, "class-085", (10, 40), scale, (255, 255, 255), thickness)
    bright = np.where((canvas.min(axis=2) > 160).any(axis=0))[0]
    dark = np.where((canvas.max(axis=2) < 90).any(axis=0))[0]
    assert len(bright) and len(dark)                     # text and outline are both drawn
    assert bright.min() - 2 <= dark.min() and dark.max() <= bright.max() + 2   # a 1-px outline


def test_taught_class_box_only_while_teaching():
    app, frame = _app(infer=False)
    teach = Screen().draw(frame, app, Timing())
    assert _near(teach[PANEL], YELLOW, 0) > 100          # the box around the class SHOT adds to
    app.handle(Event(Action.INFER))
    app.on_frame(frame, np.ones(4))
    infer = Screen().draw(frame, app, Timing())
    assert _near(infer[PANEL], YELLOW, 0) == 0


@pytest.mark.parametrize("scores,unsure", [([0.05, 0.80, 0.10, 0.05], False), ([0.40, 0.05, 0.34, 0.21], True)])
def test_an_unsure_answer_looks_unsure(scores, unsure):
    app, frame = _app()
    label = int(np.argmax(scores))
    app.prediction = Prediction(label, np.array(scores), np.zeros(4))
    canvas = Screen(unsure_margin=0.15).draw(frame, app, Timing())
    amber, green = _near(canvas[BANNER], AMBER), _near(canvas[BANNER], GREEN)
    assert (amber > 50, green > 50) == (unsure, not unsure)
    assert (_near(canvas[PANEL], AMBER, 0) > 20) == unsure      # the winner's score bar too


def test_verdict_margin_and_threshold():
    app, _ = _app(3)
    names = [c.name for c in app.classifier.classes]
    app.prediction = Prediction(2, np.array([0.3, 0.1, 0.6]), np.zeros(3))
    v = verdict(app, 0.15)
    assert (v.name, v.runner_up, v.unsure) == (names[2], names[0], False) and v.margin == pytest.approx(0.3)
    assert verdict(app, 0.31).unsure and not verdict(app, 0.29).unsure
    app.prediction = Prediction(UNKNOWN, np.array([0.3, 0.1, 0.6]), np.zeros(3))
    assert verdict(app, 0.15).unknown
    app.state = State.TEACH
    assert verdict(app, 0.15) is None


def test_labels_and_plurals():
    assert [plural(1, "class"), plural(2, "class"), plural(1, "shot"), plural(0, "shot")] == \
        ["1 class", "2 classes", "1 shot", "0 shots"]
    line = status_line(Timing(fps=15.04, latency_ms=41.2, backbone_ms=19.84))
    assert "15.0 FPS" in line and "end-to-end   41 ms" in line and "backbone  19.8 ms" in line


def test_shot_message_is_singular_for_one_shot():
    app, _ = _app(1, infer=False)
    assert app.message.endswith(": 1 shot")
