"""User actions and where they come from: PYNQ buttons (AXI GPIO), keyboard, or a scripted file.

Buttons act on release with the set of buttons held during the press, so two-button chords give
the extra actions without firing the single-button ones first (and bounce cannot double-fire).
"""

from __future__ import annotations

import enum
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

from board.errors import ControlsError
from contracts import Instances


class Action(enum.Enum):
    SHOT = "shot"                  # take a shot of the current class (creates class 0 if none)
    NEXT_CLASS = "next"            # start a new class and take its first shot
    INFER = "infer"                # start (or resume) live classification
    TEACH = "teach"                # back to teaching, keep the classes
    RESET = "reset"                # forget every class, reopen the camera after an error
    PAUSE = "pause"                # toggle pause
    QUIT = "quit"
    UNDO = "undo"                  # remove the last shot
    DELETE_CLASS = "delete"        # delete the current class
    SAVE = "save"                  # write the taught classes to the classes file
    RESTORE = "restore"            # read them back


@dataclass(frozen=True)
class Event:
    action: Action
    class_index: int | None = None   # SHOT on a given class (keyboard digits, scripts)


# Button masks: channel 1 = BTN0..3 in bits 0..3, channel 2 = PMOD JA0..5 in bits 0..5 (PEFSL box).
BUTTON_CHORDS = {
    0b000001: Action.SHOT,
    0b000010: Action.NEXT_CLASS,
    0b000100: Action.INFER,
    0b001000: Action.RESET,
    0b010000: Action.PAUSE,
    0b100000: Action.QUIT,
    0b000011: Action.UNDO,           # BTN0 + BTN1
    0b000110: Action.DELETE_CLASS,   # BTN1 + BTN2
    0b000101: Action.SAVE,           # BTN0 + BTN2
    0b001100: Action.TEACH,          # BTN2 + BTN3
    0b011000: Action.RESTORE,        # BTN3 + JA4
}

KEYS = {
    ord(" "): Action.SHOT, ord("s"): Action.SHOT, ord("n"): Action.NEXT_CLASS,
    ord("i"): Action.INFER, ord("t"): Action.TEACH, ord("r"): Action.RESET, ord("p"): Action.PAUSE,
    ord("q"): Action.QUIT, 27: Action.QUIT, ord("u"): Action.UNDO, ord("d"): Action.DELETE_CLASS,
    ord("w"): Action.SAVE, ord("l"): Action.RESTORE,
}

KEY_HELP = ("space/s shot  n next class  1-9,0 shot on class  i infer  t teach  u undo  d delete"
            "  w save  l restore  p pause  r reset  q quit")


class ButtonDecoder:
    """Turns successive button bit masks into chord events fired on release.

    A release counts after `release_samples` all-zero samples in a row: nothing in the AXI GPIO
    path debounces (PYNQ's AxiGPIO reads raw levels), and a contact bounce caught by one sample would otherwise
    fire the chord twice (two shots for one press)."""

    def __init__(self, release_samples: int = 1):
        self._held = 0
        self._zeros = 0
        self._release_samples = max(1, release_samples)

    def update(self, mask: int) -> list[Event]:
        if mask:
            self._held |= mask
            self._zeros = 0
            return []
        if not self._held:
            return []
        self._zeros += 1
        if self._zeros < self._release_samples:
            return []
        chord, self._held, self._zeros = self._held, 0, 0
        action = BUTTON_CHORDS.get(chord)
        return [Event(action)] if action else []


class GpioButtons:
    """The bitstream's button AXI GPIO (`btns_gpio`: ch1 = BTN0..3, ch2 = PMOD JA0..5), sampled
    every `period_s` by a thread so that a short press is not missed when frames are slow."""

    def __init__(self, overlay, name: str = Instances().buttons_gpio, period_s: float = 0.01):
        gpio = getattr(overlay, name, None)
        if gpio is None:
            raise ControlsError(f"the bitstream has no AXI GPIO named {name!r} for the buttons")
        self._channels = [gpio.channel1, gpio.channel2]
        for channel in self._channels:
            channel.setdirection("in")
        self._decoder = ButtonDecoder(release_samples=2)   # released for two periods: debounced
        self._events: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._period = period_s
        self._thread = threading.Thread(target=self._sample, name="buttons", daemon=True)
        self._thread.start()

    def read_mask(self) -> int:
        return (int(self._channels[0].read()) & 0xF) | (int(self._channels[1].read()) & 0x3F)

    def _sample(self) -> None:
        while not self._stop.wait(self._period):
            for event in self._decoder.update(self.read_mask()):
                self._events.put(event)

    def poll(self, frame_index: int) -> list[Event]:
        events = []
        while not self._events.empty():
            events.append(self._events.get_nowait())
        return events

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)


def key_event(key: int) -> Event | None:
    """Keyboard code (cv2.waitKey) -> event; digits 1..9, 0 take a shot of class 0..9."""
    key &= 0xFF
    if ord("1") <= key <= ord("9"):
        return Event(Action.SHOT, key - ord("1"))
    if key == ord("0"):
        return Event(Action.SHOT, 9)
    action = KEYS.get(key)
    return Event(action) if action else None


class ScriptedControls:
    """Events read from a text file: `<frame> <action> [<class index>]` per line, `#` comments."""

    def __init__(self, events: dict[int, list[Event]]):
        self.events = events

    @classmethod
    def from_file(cls, path: str | Path) -> "ScriptedControls":
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ControlsError(f"cannot read event file {path}: {exc.strerror}") from None
        events: dict[int, list[Event]] = {}
        for number, line in enumerate(text.splitlines(), 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            try:
                frame, action = int(words[0]), Action(words[1])
                index = int(words[2]) if len(words) > 2 else None
                if frame < 0 or len(words) > 3:
                    raise ValueError
            except (ValueError, IndexError):
                raise ControlsError(f"{path}:{number}: expected '<frame> <action> [<class>]', got {line.strip()!r}"
                                    f" (actions: {', '.join(a.value for a in Action)})") from None
            events.setdefault(frame, []).append(Event(action, index))
        return cls(events)

    def to_text(self) -> str:
        lines = ["# frame action [class]"]
        for frame in sorted(self.events):
            for e in self.events[frame]:
                lines.append(f"{frame} {e.action.value}" + ("" if e.class_index is None else f" {e.class_index}"))
        return "\n".join(lines) + "\n"

    def poll(self, frame_index: int) -> list[Event]:
        return self.events.get(frame_index, [])
