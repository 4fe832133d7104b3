"""The demo's state machine: teaching shots, live inference, pause, errors; no I/O in here."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from board.controls import Action, Event
from board.errors import BoardError
from board.fewshot import FewShotClassifier, Prediction

log = logging.getLogger("board")


class State(enum.Enum):
    TEACH = "teach"
    CAPTURE = "capture"      # collecting the frames of one shot
    INFER = "infer"
    PAUSED = "paused"
    ERROR = "error"


@dataclass
class AppConfig:
    frames_per_shot: int = 5               # frames whose features are averaged into one shot
    classes_file: str | None = None        # where taught classes are saved (after every change)
    restore: bool = False                  # start from the saved classes
    class_names: tuple = ()                # display names for classes 0, 1, ...


@dataclass
class _Capture:
    class_index: int
    resume: State
    features: list
    thumbnail: np.ndarray | None = None


class FewShotApp:
    """Reacts to events and to (frame, features) pairs; the screen reads its public fields."""

    def __init__(self, classifier: FewShotClassifier, config: AppConfig, model_name: str):
        self.classifier = classifier
        self.config = config
        self.model_name = model_name
        self.state = State.TEACH
        self.current = 0                    # class that SHOT adds to
        self.message = "teach: press SHOT with the object in view"
        self.error: str | None = None
        self.prediction: Prediction | None = None
        self.quit = False
        self.reopen_requested = False
        self._capture: _Capture | None = None
        self._before_pause = State.TEACH
        if config.restore and config.classes_file and Path(config.classes_file).exists():
            try:
                self._restore()
            except BoardError as exc:       # e.g. saved for a previous model: start empty, keep the file
                self.message = f"not restored: {exc}"
                log.warning("board: %s", self.message)

    # ----- events ------------------------------------------------------------------------------
    def handle(self, event: Event) -> None:
        action = event.action
        if action is Action.QUIT:
            self.quit = True
        elif self.state is State.ERROR:
            if action is Action.RESET:   # recover: keep the taught classes, reopen the camera
                self.error, self.state, self.reopen_requested = None, State.TEACH, True
                self.message = "recovered: classes kept"
        elif action is Action.PAUSE:
            if self.state is State.PAUSED:
                self.state = self._before_pause
            else:
                self._before_pause, self.state = self.state, State.PAUSED
        elif self.state is State.PAUSED:
            return
        elif self.state is State.CAPTURE:
            self.message = "busy taking a shot"
        else:
            self._act(event)

    def _act(self, event: Event) -> None:
        action = event.action
        try:
            if action is Action.SHOT:
                self._start_shot(self.current if event.class_index is None else event.class_index)
            elif action is Action.NEXT_CLASS:
                self._start_shot(len(self.classifier.classes))
            elif action is Action.INFER:
                self.classifier.prototypes()        # raises when a class has no shot
                self.state, self.message = State.INFER, "inference"
            elif action is Action.TEACH:
                self.state, self.message = State.TEACH, "teach"
            elif action is Action.UNDO:
                index = self.classifier.undo_shot()
                self.message = "nothing to undo" if index is None else f"removed last shot of {self._name(index)}"
                self._after_edit()
            elif action is Action.DELETE_CLASS:
                name = self._name(self.current)
                self.classifier.delete_class(self.current)
                self.current = max(0, min(self.current, len(self.classifier.classes) - 1))
                self.message = f"deleted {name}"
                self._after_edit()
            elif action is Action.RESET:
                self.classifier.clear()
                self.current, self.state, self.message = 0, State.TEACH, "reset: all classes forgotten"
                self._save(explicit=False)      # forgotten for good: a restart must not bring them back
            elif action is Action.SAVE:
                self._save(explicit=True)
            elif action is Action.RESTORE:
                self._restore()
        except BoardError as exc:
            self.message = str(exc)

    def _start_shot(self, index: int) -> None:
        classes = self.classifier.classes
        if index > len(classes):
            raise BoardError(f"teach class {len(classes)} before class {index}")
        if index == len(classes):
            name = self.config.class_names[index] if index < len(self.config.class_names) else None
            self.classifier.add_class(name)
        self.current = index
        resume = State.INFER if self.state is State.INFER else State.TEACH
        self._capture = _Capture(index, resume, [])
        self.state = State.CAPTURE

    def _after_edit(self) -> None:
        if self.state is State.INFER and not self.classifier.ready():
            self.state = State.TEACH
        self._save(explicit=False)

    def _name(self, index: int) -> str:
        return self.classifier.classes[index].name

    def _save(self, explicit: bool) -> None:
        path = self.config.classes_file
        if not path:
            if explicit:
                self.message = "no classes file given (--classes-file)"
            return
        self.classifier.save(path, self.model_name)
        if explicit:
            self.message = f"saved {len(self.classifier.classes)} classes"
        log.debug("board: saved taught classes to %s", path)

    def _restore(self) -> None:
        path = self.config.classes_file
        if not path:
            raise BoardError("no classes file given (--classes-file)")
        self.classifier.restore(path, self.model_name)
        self.current = max(0, len(self.classifier.classes) - 1)
        self.message = f"restored {len(self.classifier.classes)} classes from {path}"
        if self.state is State.INFER and not self.classifier.ready():
            self.state = State.TEACH

    # ----- frames ------------------------------------------------------------------------------
    def on_frame(self, frame_bgr: np.ndarray, features: np.ndarray) -> Prediction | None:
        """Consume one frame's features; returns the prediction when inferring."""
        if self.state is State.CAPTURE:
            cap = self._capture
            if cap.thumbnail is None:
                cap.thumbnail = _thumbnail(frame_bgr)
            cap.features.append(np.array(features, dtype=np.float32))
            if len(cap.features) >= self.config.frames_per_shot:
                self.classifier.add_shot(cap.class_index, np.stack(cap.features), cap.thumbnail)
                shots = len(self.classifier.classes[cap.class_index].shots)
                self.message = f"{self._name(cap.class_index)}: {shots} shot{'' if shots == 1 else 's'}"
                self.state, self._capture = cap.resume, None
                self._save(explicit=False)
            return None
        if self.state is State.INFER:
            self.prediction = self.classifier.predict(features)
            return self.prediction
        return None

    def on_error(self, message: str) -> None:
        """A camera or accelerator failure: show it, keep the classes, wait for RESET or QUIT."""
        self.error, self.state, self._capture = message, State.ERROR, None
        self.message = "press RESET to retry (classes are kept)"


def _thumbnail(frame_bgr: np.ndarray, size: int = 40) -> np.ndarray:
    h, w = frame_bgr.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return cv2.resize(frame_bgr[top:top + side, left:left + side], (size, size), interpolation=cv2.INTER_AREA)
