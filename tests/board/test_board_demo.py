"""The headless demo end to end on generated videos (onnx and emulator backends)."""

import json

from board.demo import DemoConfig, run_demo


def test_headless_demo_reaches_90_percent_live_accuracy(onnx_bundle, generated_video, tmp_path):
    report = run_demo(DemoConfig(bundle=str(onnx_bundle), backend="onnx", video=str(generated_video),
                                 out=str(tmp_path)))
    log = json.loads((tmp_path / "log.json").read_text())
    assert report.error is None
    assert log["evaluated"] == 6 * 30
    assert log["accuracy"] >= 0.9, log["accuracy"]
    assert (tmp_path / "annotated.avi").stat().st_size > 0
    assert (tmp_path / "classes.npz").is_file()
    assert len(log["per_frame"]) == log["frames"]


def test_headless_demo_with_emulator_backend_on_a_short_video(tensil_bundle, samples_npz, tmp_path):
    from board.synthvideo import VideoConfig, generate_video

    generate_video(VideoConfig(samples=str(samples_npz), out=str(tmp_path / "video"), classes=3, shots=2,
                               test_frames=20))
    report = run_demo(DemoConfig(bundle=str(tensil_bundle), backend="emulator", video=str(tmp_path / "video"),
                                 out=str(tmp_path / "demo")))
    log = json.loads((tmp_path / "demo" / "log.json").read_text())
    assert report.error is None and log["backend"] == "emulator"
    assert log["backend_stats"]["program_bytes"] > 0
    assert log["evaluated"] == 60 and log["accuracy"] >= 0.9, log["accuracy"]
