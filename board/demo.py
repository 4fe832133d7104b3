"""The few-shot camera demo: `python board/demo.py` on the PYNQ-Z1, `python -m board demo` anywhere.

Frames (camera, video file or generated video) go through the pipeline (capture | preprocess +
backbone | NCM + draw); controls come from the PYNQ buttons, the keyboard or a scripted event file;
the screen goes to HDMI, a window, or an annotated video file with a JSON log of predictions.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):          # `python board/demo.py`: make `board` and `tensil` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
import numpy as np

from board.app import AppConfig, FewShotApp, State
from board.backends import BackendConfig, open_backend, require_backend
from board.bundle import load_bundle
from board.controls import KEY_HELP, GpioButtons, ScriptedControls, key_event
from board.errors import BoardError, CameraError
from board.fewshot import UNKNOWN, FewShotClassifier, NcmConfig
from board.pipeline import Pipeline
from board.preprocess import Preprocessor
from board.screen import HEIGHT, WIDTH, Screen, Timing
from board.sources import CameraSource, HdmiSink, VideoFileSink, VideoFileSource, WindowSink
from board.synthvideo import EVENTS_NAME, TRUTH_NAME, VIDEO_NAME, load_truth

log = logging.getLogger("board")


@dataclass
class DemoConfig:
    """`python -m board demo` / `python board/demo.py` options (defaults: the embedded default)."""

    bundle: str = "build/bundle/default"
    backend: str = "emulator"                 # onnx | emulator | tensil
    video: str | None = "build/demo/input"   # a video file, or a generated-video folder
    camera: int | None = None                 # live camera index (overrides --video)
    camera_size: str = "320x240"
    events: str | None = None                 # scripted events (default: events.txt of a generated folder)
    truth: str | None = None                  # ground truth (default: truth.json of a generated folder)
    buttons: bool = False                     # PYNQ push/PMOD buttons through AXI GPIO
    display: str = "file"                     # file | window | hdmi
    out: str = "build/demo"
    frames_per_shot: int = 5
    temperature: float = 20.0
    smoothing: float = 0.7
    unknown_distance: float = 0.0
    max_classes: int = 16
    classes_file: str | None = None           # default: <out>/classes.npz
    restore: bool = False
    timeout: float = 2.0
    max_frames: int = 0                       # 0 = the whole video


@dataclass
class DemoReport:
    frames: int = 0
    evaluated: int = 0
    correct: int = 0
    fps: float = 0.0
    backbone_ms: float = 0.0
    error: str | None = None
    records: list = field(default_factory=list)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.evaluated if self.evaluated else None


def _resolve_inputs(config: DemoConfig) -> tuple:
    """(video file or None, events file or None, truth file or None)."""
    if config.camera is not None:
        return None, config.events, config.truth
    if not config.video:
        raise BoardError("give --video or --camera")
    video = Path(config.video)
    if video.is_dir():
        events = config.events or (str(video / EVENTS_NAME) if (video / EVENTS_NAME).is_file() else None)
        truth = config.truth or (str(video / TRUTH_NAME) if (video / TRUTH_NAME).is_file() else None)
        return video / VIDEO_NAME, events, truth
    return video, config.events, config.truth


def _open_source(config: DemoConfig, video: Path | None):
    if video is not None:
        return VideoFileSource(video)
    try:
        w, h = (int(v) for v in config.camera_size.lower().split("x"))
    except ValueError:
        raise BoardError(f"--camera-size must look like 320x240, got {config.camera_size!r}") from None
    return CameraSource(config.camera, w, h)


def run_demo(config: DemoConfig, open_source=None, overlay=None, hardware_arch=None) -> DemoReport:
    """Run the demo until the source ends or QUIT; headless runs write video + log.json to `out`.

    `open_source(config)` replaces the camera/video opening (tests use it to unplug a camera).
    """
    bundle = load_bundle(config.bundle)
    require_backend(bundle, config.backend)
    video, events_path, truth_path = _resolve_inputs(config)
    class_names, truth = load_truth(truth_path) if truth_path else ((), None)
    out = Path(config.out)
    classifier = FewShotClassifier(bundle.feature_dim, bundle.base_mean, NcmConfig(
        config.temperature, config.smoothing, config.unknown_distance, config.max_classes))
    app = FewShotApp(classifier, AppConfig(config.frames_per_shot, config.classes_file or str(out / "classes.npz"),
                                           config.restore, tuple(class_names)), bundle.name)
    controls = [ScriptedControls.from_file(events_path)] if events_path else []
    live = video is None
    if overlay is None and (config.backend == "tensil" or config.display == "hdmi" or config.buttons):
        overlay = _load_overlay(bundle)
    if config.buttons:
        controls.append(GpioButtons(overlay, bundle.meta.get("instances", {}).get("buttons_gpio", "btns_gpio")))
    backend = open_backend(bundle, BackendConfig(config.backend, config.timeout), hardware_arch, overlay)
    sink = (HdmiSink(overlay) if config.display == "hdmi" else WindowSink() if config.display == "window"
            else VideoFileSink(out / "annotated.avi", _fps_of(video), (WIDTH, HEIGHT)))
    if config.display == "window":
        log.info("board: keys: %s", KEY_HELP)
    opener = open_source or (lambda cfg: _open_source(cfg, video))
    report = DemoReport()
    try:
        # waiting on the error screen for RESET only makes sense with someone to press it
        interactive = live and (config.buttons or config.display == "window")
        _loop(config, app, backend, Preprocessor(bundle.preprocessing), opener, sink, controls, truth,
              live, interactive, report)
    finally:
        backend.close()
        sink.close(keep=True)
    if config.display == "file":
        _write_log(out / "log.json", config, bundle, backend.name, report)
    return report


def _load_overlay(bundle):
    try:
        import pynq
    except ImportError:
        raise BoardError("PYNQ buttons, HDMI and the tensil backend need the board (no pynq module here)") from None
    return pynq.Overlay(str(bundle.path("bitstream")))


def _fps_of(video: Path | None) -> float:
    if video is None:
        return 15.0
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 15.0
    cap.release()
    return fps


def _loop(config, app, backend, pre, opener, sink, controls, truth, live, interactive, report) -> None:
    screen, timing = Screen(), Timing()
    clock = {"first": None, "last": None}
    while not app.quit:
        try:
            source = opener(config)
        except CameraError as exc:
            if not interactive:
                _show_error(app, str(exc), screen, timing, sink)
                raise
            _wait_in_error(app, str(exc), screen, timing, sink, controls, report.frames)
            continue
        pipeline = Pipeline(source, pre, backend, live=live)
        try:
            for result in pipeline:
                if result.error:
                    report.error = result.error
                    break
                _show(result, app, controls, sink, screen, timing, truth, live, report, clock)
                if app.quit or app.reopen_requested or (config.max_frames and report.frames >= config.max_frames):
                    break
        finally:
            pipeline.close()
            source.close()
        if report.error is not None:
            if not interactive:
                _show_error(app, report.error, screen, timing, sink)
                break
            _wait_in_error(app, report.error, screen, timing, sink, controls, report.frames)
            report.error = None
        elif not app.reopen_requested:
            break                                   # end of the video, QUIT or --max-frames
        app.reopen_requested = False
    if report.frames > 1:
        report.fps = (report.frames - 1) / max(clock["last"] - clock["first"], 1e-9)
    if report.records:
        report.backbone_ms = float(np.mean([r["backbone_ms"] for r in report.records]))


def _show(result, app, controls, sink, screen, timing, truth, live, report, clock) -> None:
    """Apply the controls, classify, draw and record one frame."""
    for control in controls:
        for event in control.poll(report.frames if live else result.index):
            app.handle(event)
    _keyboard(sink, app)
    prediction = app.on_frame(result.frame, result.features) if app.state is not State.PAUSED else None
    now = time.perf_counter()
    if clock["last"] is not None:
        instant = 1.0 / max(now - clock["last"], 1e-6)
        timing.fps = instant if timing.fps == 0 else 0.9 * timing.fps + 0.1 * instant
    clock["first"] = clock["first"] or now
    clock["last"] = now
    timing.latency_ms = (now - result.captured_at) * 1e3
    timing.backbone_ms = result.backbone_s * 1e3
    sink.write(screen.draw(result.frame, app, timing))
    _record(report, result, app, prediction, truth, timing)


def _show_error(app, message, screen, timing, sink) -> None:
    log.error("board: error: %s", message)
    app.on_error(message)
    sink.write(screen.draw(None, app, timing))


def _wait_in_error(app, message, screen, timing, sink, controls, shown) -> None:
    """Show the error until RESET (retry) or QUIT; the taught classes stay in memory and on disk."""
    log.error("board: error: %s", message)
    app.on_error(message)
    while app.state is State.ERROR and not app.quit:
        for control in controls:
            for event in control.poll(shown):
                app.handle(event)
        _keyboard(sink, app)
        sink.write(screen.draw(None, app, timing))
        time.sleep(0.05)


def _keyboard(sink, app) -> None:
    key = getattr(sink, "last_key", -1)
    if key is not None and key >= 0:
        event = key_event(key)
        sink.last_key = -1
        if event:
            app.handle(event)


def _record(report: DemoReport, result, app, prediction, truth, timing) -> None:
    expected = truth[result.index] if truth is not None and result.index < len(truth) else None
    label = None if prediction is None else prediction.label
    names = [c.name for c in app.classifier.classes]
    rec = {"frame": result.index, "state": app.state.value, "truth": expected,
           "prediction": label, "name": None if label is None else ("unknown" if label == UNKNOWN else names[label]),
           "score": None if prediction is None or label == UNKNOWN else round(float(prediction.scores[label]), 4),
           "backbone_ms": round(result.backbone_s * 1e3, 3), "latency_ms": round(timing.latency_ms, 3)}
    report.records.append(rec)
    report.frames += 1
    if expected is not None:
        report.evaluated += 1
        report.correct += int(label == expected)


def _write_log(path: Path, config: DemoConfig, bundle, backend_name: str, report: DemoReport) -> None:
    data = {"config": asdict(config), "bundle": str(bundle.root), "model": bundle.name, "backend": backend_name,
            "frames": report.frames, "evaluated": report.evaluated, "correct": report.correct,
            "accuracy": report.accuracy, "fps": report.fps, "mean_backbone_ms": report.backbone_ms,
            "error": report.error, "per_frame": report.records}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
    log.info("board: wrote %s", path)


if __name__ == "__main__":
    from board.cli import main

    sys.exit(main(["demo"] + sys.argv[1:]))
