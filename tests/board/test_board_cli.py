"""The CLI: each user error is one line on stderr, exit status 2, no traceback, no artifact."""

import subprocess
import sys

import pytest


def board(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "board", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


@pytest.mark.parametrize("args, message", [
    (["bundle", "--onnx", "nowhere/tiny.onnx", "--out", "OUT"],
     "board: error: ONNX file nowhere/tiny.onnx is missing (run `make export`)"),
    (["video", "--samples", "nowhere.npz", "--out", "OUT"],
     "board: error: --samples nowhere.npz: sample npz does not exist"),
    (["demo", "--bundle", "nowhere"], "board: error: bundle folder nowhere does not exist (run `make bundle`)"),
])
def test_user_errors(tmp_path, args, message):
    args = [a.replace("OUT", str(tmp_path / "out")) for a in args]
    done = board(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == message
    assert not (tmp_path / "out").exists()


def test_bundle_and_video_commands(tmp_path, samples_npz):
    from board_testdata import write_export

    onnx_path = write_export(tmp_path / "export")
    done = board("bundle", "--onnx", str(onnx_path), "--tensil", "none", "--fpga", "none", "--out",
                 str(tmp_path / "bundle"))
    assert done.returncode == 0, done.stderr
    assert "wrote bundle" in done.stderr and (tmp_path / "bundle" / "model.json").is_file()
    done = board("video", "--samples", str(samples_npz), "--out", str(tmp_path / "video"), "--classes", "2",
                 "--test-frames", "4")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "video").iterdir()) == ["events.txt", "truth.json", "video.avi"]
