"""Bad input: no camera, camera unplugged mid-run, and what happens to the taught classes."""

import subprocess
import sys

import numpy as np

from board.app import AppConfig, FewShotApp, State
from board.controls import Action, Event
from board.demo import DemoConfig, run_demo
from board.errors import CameraError
from board.fewshot import FewShotClassifier, NcmConfig
from board.sources import VideoFileSource


def test_no_camera_is_one_clear_line(onnx_bundle, tmp_path):
    done = subprocess.run([sys.executable, "-m", "board", "demo", "--bundle", str(onnx_bundle), "--backend", "onnx",
                           "--camera", "57", "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == "board: error: no camera at index 57 (is it plugged in?)"
    assert "Traceback" not in done.stderr


class UnpluggedAfter:
    """A camera that delivers `n` frames of a video and then fails like an unplugged USB camera."""

    def __init__(self, video, n):
        self._video, self._left = VideoFileSource(video), n

    def read(self):
        if self._left == 0:
            raise CameraError("camera 0 stopped delivering frames (unplugged?)")
        self._left -= 1
        return self._video.read()

    def close(self):
        self._video.close()


def test_camera_unplugged_mid_run_keeps_the_taught_classes(onnx_bundle, generated_video, tmp_path):
    classes_file = tmp_path / "classes.npz"
    report = run_demo(DemoConfig(bundle=str(onnx_bundle), backend="onnx", video=str(generated_video),
                                 out=str(tmp_path), classes_file=str(classes_file)),
                      open_source=lambda cfg: UnpluggedAfter(generated_video / "video.avi", 60))
    assert report.error == "camera 0 stopped delivering frames (unplugged?)"
    assert report.frames == 60
    saved = FewShotClassifier(24, None, NcmConfig())
    saved.restore(classes_file, "tiny")
    assert len(saved.classes) >= 2 and all(c.shots for c in saved.classes)
    assert (tmp_path / "log.json").is_file() and (tmp_path / "annotated.avi").is_file()


def test_reset_after_an_error_keeps_classes_and_reopens():
    app = FewShotApp(FewShotClassifier(2, None, NcmConfig()), AppConfig(frames_per_shot=1), "m")
    app.handle(Event(Action.SHOT))
    app.on_frame(np.zeros((8, 8, 3), np.uint8), np.ones(2))
    app.handle(Event(Action.INFER))
    app.on_error("camera 0 stopped delivering frames (unplugged?)")
    assert app.state is State.ERROR
    app.handle(Event(Action.SHOT))                     # ignored while in error
    app.handle(Event(Action.RESET))
    assert app.state is State.TEACH and app.reopen_requested
    assert len(app.classifier.classes) == 1 and len(app.classifier.classes[0].shots) == 1


def test_app_controls_add_shots_while_inferring_undo_delete():
    app = FewShotApp(FewShotClassifier(2, None, NcmConfig()), AppConfig(frames_per_shot=2), "m")
    frame = np.zeros((8, 8, 3), np.uint8)
    for action, feats in ((Action.NEXT_CLASS, [1, 0]), (Action.NEXT_CLASS, [0, 1])):
        app.handle(Event(action))
        app.on_frame(frame, np.array(feats))
        app.on_frame(frame, np.array(feats))
    app.handle(Event(Action.INFER))
    assert app.state is State.INFER
    app.handle(Event(Action.SHOT, 0))                  # more shots while inferring
    app.on_frame(frame, np.array([1, 0.1]))
    assert app.state is State.CAPTURE
    app.on_frame(frame, np.array([1, 0.1]))
    assert app.state is State.INFER and len(app.classifier.classes[0].shots) == 2
    assert app.on_frame(frame, np.array([0, 1])).label == 1
    app.handle(Event(Action.UNDO))
    assert len(app.classifier.classes[0].shots) == 1
    app.handle(Event(Action.DELETE_CLASS))             # current class is 0
    assert [c.name for c in app.classifier.classes] == ["class 1"]
    app.handle(Event(Action.SHOT, 5))
    assert "teach class 1 before class 5" in app.message


def test_a_crashing_backend_ends_the_run_with_a_message(onnx_bundle, generated_video, tmp_path, monkeypatch):
    from board import backends

    def broken(self, batch):
        raise FloatingPointError("overflow")

    monkeypatch.setattr(backends.OnnxBackend, "features", broken)
    report = run_demo(DemoConfig(bundle=str(onnx_bundle), backend="onnx", video=str(generated_video),
                                 out=str(tmp_path)))
    assert report.error == "onnx backend failed: FloatingPointError: overflow"
    assert report.frames == 0


def test_desktop_window_without_any_toolkit_says_so(onnx_bundle, generated_video, tmp_path, monkeypatch):
    import sys

    import cv2
    import pytest

    from board.errors import BoardError

    try:
        cv2.namedWindow("probe")
        cv2.destroyWindow("probe")
        pytest.skip("this OpenCV has window support")
    except cv2.error:
        pass
    monkeypatch.setitem(sys.modules, "tkinter", None)          # no Tk: the window falls back to OpenCV's
    with pytest.raises(BoardError, match="no window toolkit: install tkinter"):
        run_demo(DemoConfig(bundle=str(onnx_bundle), backend="onnx", video=str(generated_video),
                            display="window", out=str(tmp_path)))


def test_accelerator_hanging_mid_run_times_out_and_keeps_classes(tensil_bundle, samples_npz, tmp_path, monkeypatch):
    from board.emulated_pynq import EmulatedTcu
    from board.synthvideo import VideoConfig, generate_video

    generate_video(VideoConfig(samples=str(samples_npz), out=str(tmp_path / "video"), classes=2, shots=1,
                               test_frames=5))
    consume = EmulatedTcu.consume
    calls = {"n": 0}

    def hang_after_a_while(self, stream):
        calls["n"] += 1
        if calls["n"] > 30:                 # configuration + ~25 frames, then the TCU stalls
            self.hung = True
        consume(self, stream)

    monkeypatch.setattr(EmulatedTcu, "consume", hang_after_a_while)
    report = run_demo(DemoConfig(bundle=str(tensil_bundle), backend="emulator", video=str(tmp_path / "video"),
                                 out=str(tmp_path / "demo"), timeout=0.3))
    assert "did not finish the program within 0.3 s" in report.error
    saved = FewShotClassifier(24, None, NcmConfig())
    saved.restore(tmp_path / "demo" / "classes.npz", "tiny")
    assert len(saved.classes) == 2


def test_restore_at_start_skips_classes_of_another_model(tmp_path):
    path = tmp_path / "classes.npz"
    old = FewShotClassifier(2, None, NcmConfig())
    old.add_class("cup")
    old.save(path, "old-model")
    app = FewShotApp(FewShotClassifier(2, None, NcmConfig()), AppConfig(classes_file=str(path), restore=True), "new")
    assert app.classifier.classes == [] and "not restored" in app.message and path.is_file()
    same = FewShotApp(FewShotClassifier(2, None, NcmConfig()), AppConfig(classes_file=str(path), restore=True),
                      "old-model")
    assert [c.name for c in same.classifier.classes] == ["cup"]


def test_bitstream_of_another_arch_is_one_clear_error(tensil_bundle, generated_video, tmp_path):
    """The bundle says custom_perf; the (emulated) bitstream really is pynqz1: no hang, one line."""
    import pytest

    from board.errors import AcceleratorTimeoutError
    from tensil.arch import load_arch

    with pytest.raises(AcceleratorTimeoutError, match="not built for custom_perf, or the TCU is hung"):
        run_demo(DemoConfig(bundle=str(tensil_bundle), backend="emulator", video=str(generated_video),
                            out=str(tmp_path), timeout=0.3), hardware_arch=load_arch("pynqz1"))


def test_reset_forgets_the_saved_classes_too(tmp_path):
    """RESET (outside an error) is a change like any other: the autosaved file follows it."""
    path = tmp_path / "classes.npz"
    kept = FewShotClassifier(2, None, NcmConfig())
    kept.add_class("cup")
    kept.save(path, "m")
    app = FewShotApp(FewShotClassifier(2, None, NcmConfig()), AppConfig(classes_file=str(path), restore=True), "m")
    assert [c.name for c in app.classifier.classes] == ["cup"]
    app.handle(Event(Action.RESET))
    again = FewShotApp(FewShotClassifier(2, None, NcmConfig()), AppConfig(classes_file=str(path), restore=True), "m")
    assert again.classifier.classes == []


def test_demo_refuses_a_compiled_program_the_hardware_gets_wrong(tensil_bundle, generated_video, tmp_path, capsys):
    """A bundle whose program accumulates back to back into one accumulator (the RTL loses such
    updates): `board demo` on the emulated board says so in one line and exits 2."""
    from board.bundle import BundleConfig, assemble_bundle
    from board.cli import main
    from tensil.isa import Layout, MatMul, decode, encode_program
    from tensil.tmodel import read_model, write_model

    loaded = read_model(next(tensil_bundle.glob("*.tmodel")))
    layout = Layout.from_arch(loaded.arch)
    program = decode(loaded.program, layout)
    at = next(i for i, ins in enumerate(program) if isinstance(ins, MatMul))
    last = program[at].acc_addr + (program[at].size << program[at].acc_stride)
    program.insert(at + 1, MatMul(program[at].local_addr, 0, last, 0, 0, accumulate=True))
    man = loaded.manifest
    write_model(tmp_path / "tensil", man.name, loaded.arch, encode_program(program, layout), loaded.consts,
                man.inputs, man.outputs)
    bundle = assemble_bundle(BundleConfig(onnx=str(next((tensil_bundle.parent / "export").glob("*.onnx"))),
                                          tensil=str(tmp_path / "tensil"), fpga=None, out=str(tmp_path / "bundle"),
                                          verify_samples=0))
    capsys.readouterr()
    rc = main(["demo", "--bundle", str(bundle), "--backend", "emulator", "--video", str(generated_video),
               "--out", str(tmp_path / "demo")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert f"instruction {at + 1} (MatMul" in err[0] and "breaks rule acc-read-after-write" in err[0]
