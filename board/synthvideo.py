"""A camera-like video of synthetic classes, its scripted events and its per-frame ground truth.

Input: the `train sample-images` npz (images (N,H,W,3) uint8 RGB, labels, class_names). For each
class the video first shows its teaching pictures (the event script takes the shots on those
frames), then an `infer` event, then every class again in shuffled order with held-out pictures.
Each frame has pose, scale, brightness jitter and sensor noise.
"""

from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from board.controls import Action, Event, ScriptedControls
from board.errors import BoardError
from board.sources import VideoFileSink
from safeio import UsageError, atomic_write_text, check_input_file, check_int_range, check_output, check_range

log = logging.getLogger("board")
VIDEO_NAME, EVENTS_NAME, TRUTH_NAME = "video.avi", "events.txt", "truth.json"


@dataclass
class VideoConfig:
    samples: str = "build/demo/samples.npz"
    out: str = "build/demo/input"
    classes: int = 5
    shots: int = 3                 # teaching shots per class
    frames_per_shot: int = 5       # must match the demo's --frames-per-shot
    settle_frames: int = 4         # frames shown before each class's first shot
    test_frames: int = 40          # frames per class in the inference phase
    hold_frames: int = 6           # frames one test picture stays in view
    width: int = 320
    height: int = 240
    fps: float = 15.0
    seed: int = 0

    def check(self) -> "VideoConfig":
        """BoardError with one line for an option that cannot work; nothing is read or written."""
        try:
            check_input_file("--samples", self.samples, "sample npz")
            for flag, value, low in (("--classes", self.classes, 1), ("--shots", self.shots, 1),
                                     ("--frames-per-shot", self.frames_per_shot, 1),
                                     ("--settle-frames", self.settle_frames, 0), ("--test-frames", self.test_frames, 1),
                                     ("--hold-frames", self.hold_frames, 1), ("--seed", self.seed, 0)):
                check_int_range(flag, value, low, 100_000)
            check_int_range("--width", self.width, 16, 4096)
            check_int_range("--height", self.height, 16, 4096)
            check_range("--fps", self.fps, 0, 240, low_open=True)
            check_output("--out", self.out, "folder")
        except UsageError as exc:
            raise BoardError(str(exc)) from None
        return self


def load_samples(path: str | Path) -> tuple[np.ndarray, np.ndarray, list]:
    try:
        with np.load(path) as data:
            images, labels = data["images"], data["labels"]
            names = [str(n) for n in data["class_names"]]
    except OSError as exc:
        raise BoardError(f"cannot read sample images {path}: {exc.strerror or exc}") from None
    except (KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise BoardError(f"{path} is not a `train sample-images` npz (images, labels, class_names): {exc}") from None
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or len(labels) != len(images):
        raise BoardError(f"{path}: expected images (N,H,W,3) uint8 and one label per image")
    return images, labels.astype(int), names


class _Camera:
    """Renders a picture as a jittered camera frame."""

    def __init__(self, config: VideoConfig, rng: np.random.Generator):
        self.config, self.rng = config, rng

    def frame(self, rgb: np.ndarray) -> np.ndarray:
        c, rng = self.config, self.rng
        side = min(c.width, c.height)
        picture = cv2.resize(np.ascontiguousarray(rgb[:, :, ::-1]), (side, side), interpolation=cv2.INTER_LINEAR)
        angle, scale = rng.uniform(-10, 10), rng.uniform(0.9, 1.15)
        shift = rng.uniform(-0.05, 0.05, size=2) * side
        m = cv2.getRotationMatrix2D((side / 2, side / 2), angle, scale)
        m[:, 2] += shift + [(c.width - side) / 2, (c.height - side) / 2]
        out = cv2.warpAffine(picture, m, (c.width, c.height), borderMode=cv2.BORDER_REFLECT)
        gain = rng.uniform(0.8, 1.2)
        noisy = out.astype(np.float32) * gain + rng.normal(0, 4.0, size=out.shape)
        return np.clip(noisy, 0, 255).astype(np.uint8)


def generate_video(config: VideoConfig) -> Path:
    """Write video.avi, events.txt and truth.json into `config.out`; returns the video path."""
    images, labels, names = load_samples(config.check().samples)
    classes = sorted(set(labels.tolist()))
    if len(classes) < config.classes:
        raise BoardError(f"{config.samples} has {len(classes)} classes, {config.classes} asked")
    rng = np.random.default_rng(config.seed)
    chosen = classes[:config.classes]
    per_class = {c: np.flatnonzero(labels == c) for c in chosen}
    for c, idx in per_class.items():
        if len(idx) <= config.shots:
            raise BoardError(f"class {names[c]} has {len(idx)} pictures, need more than {config.shots} shots")
    camera = _Camera(config, rng)
    frames: list[np.ndarray] = []
    truth: list[int | None] = []
    events: dict[int, list[Event]] = {}

    for c in chosen:                                     # teaching phase
        teach = per_class[c][:config.shots]
        frames += [camera.frame(images[teach[0]]) for _ in range(config.settle_frames)]
        truth += [None] * config.settle_frames
        for s, image_index in enumerate(teach):
            action = Action.NEXT_CLASS if s == 0 else Action.SHOT
            events.setdefault(len(frames), []).append(Event(action))
            n = config.frames_per_shot + 2
            frames += [camera.frame(images[image_index]) for _ in range(n)]
            truth += [None] * n
    events.setdefault(len(frames), []).append(Event(Action.INFER))
    for k in rng.permutation(len(chosen)):                # inference phase, held-out pictures
        test = per_class[chosen[k]][config.shots:]
        for i in range(config.test_frames):
            picture = test[(i // config.hold_frames) % len(test)]
            frames.append(camera.frame(images[picture]))
            truth.append(int(k))

    out = Path(config.out)
    sink = VideoFileSink(out / VIDEO_NAME, config.fps, (config.width, config.height))
    try:
        for f in frames:
            sink.write(f)
    except BaseException:
        sink.close(keep=False)
        raise
    sink.close()
    _write_atomic(out / EVENTS_NAME, ScriptedControls(events).to_text())
    _write_atomic(out / TRUTH_NAME, json.dumps(
        {"class_names": [names[c] for c in chosen], "truth": truth, "config": asdict(config)}))
    log.info("board: wrote %d frames of %d classes to %s (+ %s, %s)",
             len(frames), len(chosen), out / VIDEO_NAME, EVENTS_NAME, TRUTH_NAME)
    return out / VIDEO_NAME


def load_truth(path: str | Path) -> tuple[list, list]:
    try:
        data = json.loads(Path(path).read_text())
        return list(data["class_names"]), list(data["truth"])
    except (OSError, KeyError, ValueError) as exc:
        raise BoardError(f"cannot read ground truth {path}: {exc}") from None


def _write_atomic(path: Path, text: str) -> None:
    atomic_write_text(path, text)
