"""Buttons (chords on release), keyboard and scripted event files."""

import time

import pytest

from board.controls import Action, ButtonDecoder, Event, GpioButtons, ScriptedControls, key_event
from board.errors import ControlsError


def test_button_chords_fire_once_on_release():
    d = ButtonDecoder()
    assert d.update(0b1) == [] and d.update(0b11) == [] and d.update(0b10) == []
    assert d.update(0) == [Event(Action.UNDO)]
    assert d.update(0) == []
    assert d.update(0b100) == [] and d.update(0) == [Event(Action.INFER)]


def test_button_release_is_debounced():
    """A bounce (press, 0, press, release) is one shot, not two, when release needs 2 zero samples."""
    d = ButtonDecoder(release_samples=2)
    events = []
    for mask in (0b1, 0, 0b1, 0b1, 0, 0, 0, 0b100, 0, 0):
        events += d.update(mask)
    assert events == [Event(Action.SHOT), Event(Action.INFER)]


class FakeChannel:
    def __init__(self, values):
        self.values, self.direction = list(values), None

    def setdirection(self, d):
        self.direction = d

    def read(self):
        return self.values.pop(0) if self.values else 0


def test_gpio_buttons_are_sampled_between_frames():
    class Gpio:
        channel1 = FakeChannel([0b0001, 0b0001, 0, 0, 0b0100, 0])
        channel2 = FakeChannel([0, 0b0010, 0, 0, 0, 0])       # JA1 joins BTN0: the UNDO chord

    class Overlay:
        btns_gpio = Gpio()

    buttons = GpioButtons(Overlay(), period_s=0.001)
    assert Gpio.channel1.direction == "in"
    deadline = time.monotonic() + 2
    events = []
    while len(events) < 2 and time.monotonic() < deadline:
        events += buttons.poll(0)
        time.sleep(0.005)
    buttons.close()
    assert events == [Event(Action.UNDO), Event(Action.INFER)]
    with pytest.raises(ControlsError, match="btns_gpio"):
        GpioButtons(object())


def test_keyboard_digits_pick_the_class():
    assert key_event(ord("3")) == Event(Action.SHOT, 2)
    assert key_event(ord("0")) == Event(Action.SHOT, 9)
    assert key_event(ord("i")) == Event(Action.INFER)
    assert key_event(ord("z")) is None


def test_event_file_round_trip_and_errors(tmp_path):
    script = ScriptedControls({0: [Event(Action.NEXT_CLASS)], 7: [Event(Action.SHOT, 1), Event(Action.INFER)]})
    path = tmp_path / "events.txt"
    path.write_text(script.to_text())
    assert ScriptedControls.from_file(path).events == script.events
    path.write_text("12 jump\n")
    with pytest.raises(ControlsError, match="events.txt:1"):
        ScriptedControls.from_file(path)
    with pytest.raises(ControlsError, match="cannot read"):
        ScriptedControls.from_file(tmp_path / "missing.txt")
