"""The few-shot camera demo: `python board/demo.py` on the PYNQ-Z1, `python -m board demo` anywhere.

Frames (camera, video file or generated video) go through the pipeline (capture | preprocess +
backbone | NCM + draw); controls come from the PYNQ buttons, the keyboard or a scripted event file;
the screen goes to HDMI, a window, or an annotated video file with a JSON log of predictions.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):          # `python board/demo.py`: make `board` and `tensil` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
import numpy as np

from board.app import AppConfig, FewShotApp, State
from board.backends import BackendConfig, load_overlay, open_backend, require_backend
from board.bundle import load_bundle
from board.controls import KEY_HELP, GpioButtons, ScriptedControls, key_event
from board.errors import BoardError, CameraError
from board.fewshot import UNKNOWN, FewShotClassifier, NcmConfig
from board.pipeline import Pipeline
from board.preprocess import Preprocessor
from board.screen import HEIGHT, WIDTH, Screen, Timing
from board.sources import CameraSource, HdmiSink, VideoFileSink, VideoFileSource
from board.window import open_window
from board.synthvideo import EVENTS_NAME, TRUTH_NAME, VIDEO_NAME, load_truth
from contracts import bundle_dir
from safeio import UsageError, atomic_write_text, check_int_range, check_output, check_range

log = logging.getLogger("board")


@dataclass
class DemoConfig:
    """`python -m board demo` / `python board/demo.py` options (defaults: the embedded default)."""

    bundle: str = bundle_dir()
    backend: str = "emulator"                 # onnx | emulator | tensil
    video: str | None = "build/demo/input"   # a video file, or a generated-video folder
    camera: int | None = None                 # live camera index (overrides --video)
    camera_size: str = "320x240"
    events: str | None = None                 # scripted events (default: events.txt of a generated folder)
    truth: str | None = None                  # ground truth (default: truth.json of a generated folder)
    buttons: bool = False                     # PYNQ push/PMOD buttons through AXI GPIO
    display: str = "file"                     # file | window | hdmi | web
    web_host: str = "127.0.0.1"               # --display web: address to serve on (0.0.0.0: every interface)
    web_port: int = 8080
    unsure_margin: float = 0.15               # score margin over the runner-up below which the answer looks unsure
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

    def check(self) -> "DemoConfig":
        """BoardError with one line for an option that cannot work; nothing is opened or written."""
        try:
            check_int_range("--frames-per-shot", self.frames_per_shot, 1, 1000)
            check_range("--temperature", self.temperature, 0, low_open=True)
            check_range("--smoothing", self.smoothing, 0, 1, high_open=True)
            check_range("--unknown-distance", self.unknown_distance, 0)
            check_int_range("--max-classes", self.max_classes, 1, 1000)
            check_range("--timeout", self.timeout, 0, low_open=True)
            check_int_range("--max-frames", self.max_frames, 0)
            check_int_range("--web-port", self.web_port, 0, 65535)
            check_range("--unsure-margin", self.unsure_margin, 0, 1)
            if self.camera is not None:
                check_int_range("--camera", self.camera, 0)
            if self.display == "file":
                check_output("--out", self.out, "folder")
            if self.classes_file:
                check_output("--classes-file", self.classes_file, "file")
        except UsageError as exc:
            raise BoardError(str(exc)) from None
        return self


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
    if not video.exists():
        raise CameraError(f"no video at {video}: generate one with `python -m board video`, or give --video/--camera")
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

    `open_source(config)` replaces the camera/video opening (tests use it to unplug a camera);
    `hardware_arch` is the emulated device's architecture (default: the bitstream's).
    """
    config.check()
    bundle = load_bundle(config.bundle, check_hashes=True)
    require_backend(bundle, config.backend)
    video, events_path, truth_path = _resolve_inputs(config)
    class_names, truth = load_truth(truth_path) if truth_path else ((), None)
    out = Path(config.out)
    classifier = FewShotClassifier(bundle.feature_dim, bundle.base_mean, NcmConfig(
        config.temperature, config.smoothing, config.unknown_distance, config.max_classes))
    app = FewShotApp(classifier, AppConfig(config.frames_per_shot, config.classes_file or str(out / "classes.npz"),
                                           config.restore, tuple(class_names)), bundle.name)
    controls = [ScriptedControls.from_file(events_path)] if events_path else []
    if overlay is None and (config.backend == "tensil" or config.display == "hdmi" or config.buttons):
        overlay = load_overlay(bundle)
    if config.buttons:
        controls.append(GpioButtons(overlay, bundle.instances.buttons_gpio))
    backend = open_backend(bundle, BackendConfig(config.backend, config.timeout), hardware_arch, overlay)
    try:
        sink = (HdmiSink(overlay, bundle.instances) if config.display == "hdmi"
                else open_window() if config.display == "window"
                else _web_display(config) if config.display == "web"
                else VideoFileSink(out / "annotated.avi", _fps_of(video), (WIDTH, HEIGHT)))
        if config.display == "window":
            log.info("board: keys: %s", KEY_HELP)
        if config.display == "web":
            controls.append(sink)                 # its four buttons
            log.info("board: serving the demo at %s (SHOT, NEW CLASS, INFER, RESET)", sink.url)
        loop = _Loop(config, app, backend, Preprocessor(bundle.preprocessing),
                     open_source or (lambda cfg: _open_source(cfg, video)), sink, controls, truth,
                     live=video is None, frames=_frame_count(video))
        try:
            report = loop.run()
        finally:
            sink.close(keep=loop.report.frames > 0)   # no one-frame video of an error screen
    finally:
        backend.close()
        for control in controls:
            getattr(control, "close", lambda: None)()
    if config.display == "file":
        _write_log(out / "log.json", config, bundle, backend, report)
    if app.classifier.classes and Path(app.config.classes_file).is_file():
        log.info("board: taught classes saved in %s", app.config.classes_file)
    return report


def _web_display(config: DemoConfig):
    from board.web import WebConfig, WebDisplay

    try:
        return WebDisplay(WebConfig(config.web_host, config.web_port))
    except OSError as exc:
        raise BoardError(f"--display web cannot listen on {config.web_host}:{config.web_port}: {exc.strerror}") from None


def _fps_of(video: Path | None) -> float:
    if video is None:
        return 15.0
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 15.0
    cap.release()
    return fps


def _frame_count(video: Path | None) -> int | None:
    if video is None:
        return None
    cap = cv2.VideoCapture(str(video))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    return count or None


def _progress(total: int | None):
    """A tqdm bar on stderr when tqdm is installed (it is not needed on the board)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="demo", unit="frame", file=sys.stderr, leave=False)


class _Loop:
    """One demo session: frames and events in, screen out, the report filled frame by frame."""

    def __init__(self, config: DemoConfig, app: FewShotApp, backend, pre: Preprocessor, opener, sink,
                 controls: list, truth: list | None, live: bool, frames: int | None):
        self.config, self.app, self.backend, self.pre, self.opener = config, app, backend, pre, opener
        self.sink, self.controls, self.truth, self.live = sink, controls, truth, live
        # waiting on the error screen for RESET only makes sense with someone to press it
        self.interactive = live and (config.buttons or config.display in ("window", "web"))
        self.screen, self.timing, self.report = Screen(config.unsure_margin), Timing(), DemoReport()
        self._first = self._last = None
        self._bar = None if live else _progress(frames)

    def run(self) -> DemoReport:
        app, report = self.app, self.report
        try:
            while not app.quit:
                try:
                    source = self.opener(self.config)
                except CameraError:
                    if not self.interactive:
                        raise                           # the CLI prints it, once
                    self._wait_in_error(str(exc))
                    continue
                self._stream(source)
                if report.error is not None:
                    if not self.interactive:
                        self._show_error(report.error, quiet=True)   # on screen; the CLI prints it
                        break
                    self._wait_in_error(report.error)
                    report.error = None
                elif not app.reopen_requested:
                    break                               # end of the video, QUIT or --max-frames
                app.reopen_requested = False
        finally:
            if self._bar is not None:
                self._bar.close()
        if report.frames > 1:
            report.fps = (report.frames - 1) / max(self._last - self._first, 1e-9)
        if report.records:
            report.backbone_ms = float(np.mean([r["backbone_ms"] for r in report.records]))
        return report

    def _stream(self, source) -> None:
        pipeline = Pipeline(source, self.pre, self.backend, live=self.live)
        limit = self.config.max_frames
        try:
            for result in pipeline:
                if result.error:
                    self.report.error = result.error
                    return
                self._show(result)
                if self.app.quit or self.app.reopen_requested or (limit and self.report.frames >= limit):
                    return
        finally:
            pipeline.close()
            source.close()

    def _poll(self, frame_number: int) -> None:
        for control in self.controls:
            for event in control.poll(frame_number):
                self.app.handle(event)
        key = getattr(self.sink, "last_key", -1)
        if key is not None and key >= 0:
            self.sink.last_key = -1
            event = key_event(key)
            if event:
                self.app.handle(event)

    def _show(self, result) -> None:
        """Apply the controls, classify, draw and record one frame."""
        app, timing = self.app, self.timing
        self._poll(self.report.frames if self.live else result.index)
        prediction = app.on_frame(result.frame, result.features) if app.state is not State.PAUSED else None
        now = time.perf_counter()
        if self._last is not None:
            instant = 1.0 / max(now - self._last, 1e-6)
            timing.fps = instant if timing.fps == 0 else 0.9 * timing.fps + 0.1 * instant
        self._first = self._first or now
        self._last = now
        timing.latency_ms = (now - result.captured_at) * 1e3
        timing.backbone_ms = result.backbone_s * 1e3
        self.sink.write(self.screen.draw(result.frame, app, timing))
        self._record(result, prediction)
        if self._bar is not None:
            self._bar.update(1)

    def _record(self, result, prediction) -> None:
        report, truth = self.report, self.truth
        expected = truth[result.index] if truth is not None and result.index < len(truth) else None
        label = None if prediction is None else prediction.label
        names = [c.name for c in self.app.classifier.classes]
        report.records.append({
            "frame": result.index, "state": self.app.state.value, "truth": expected, "prediction": label,
            "name": None if label is None else ("unknown" if label == UNKNOWN else names[label]),
            "score": None if prediction is None or label == UNKNOWN else round(float(prediction.scores[label]), 4),
            "preprocess_ms": round(result.preprocess_s * 1e3, 3), "backbone_ms": round(result.backbone_s * 1e3, 3),
            "latency_ms": round(self.timing.latency_ms, 3)})
        report.frames += 1
        if expected is not None:
            report.evaluated += 1
            report.correct += int(label == expected)

    def _show_error(self, message: str, quiet: bool = False) -> None:
        if not quiet:
            log.error("board: error: %s", message)
        self.app.on_error(message)
        self.sink.write(self.screen.draw(None, self.app, self.timing))

    def _wait_in_error(self, message: str) -> None:
        """Show the error until RESET (retry) or QUIT; the taught classes stay in memory and on disk."""
        self._show_error(message)
        while self.app.state is State.ERROR and not self.app.quit:
            self._poll(self.report.frames)
            self.sink.write(self.screen.draw(None, self.app, self.timing))
            time.sleep(0.05)


def _write_log(path: Path, config: DemoConfig, bundle, backend, report: DemoReport) -> None:
    data = {"config": asdict(config), "bundle": str(bundle.root), "model": bundle.name, "backend": backend.name,
            "backend_stats": backend.stats(),
            "frames": report.frames, "evaluated": report.evaluated, "correct": report.correct,
            "accuracy": report.accuracy, "fps": report.fps, "mean_backbone_ms": report.backbone_ms,
            "error": report.error, "per_frame": report.records}
    atomic_write_text(path, json.dumps(data, indent=1))
    log.info("board: wrote %s", path)


if __name__ == "__main__":
    from board.cli import main

    sys.exit(main(["demo"] + sys.argv[1:]))
