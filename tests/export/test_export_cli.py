"""`python -m export` and `python -m export check`: outputs, and one-line errors with exit status 2."""

import subprocess
import sys

import pytest
import torch
from onnx import helper

from export.cli import main
from export_fixtures import gap_flatten, make_checkpoint, tiny_graph
from train.backbones import BackboneSpec


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith("export: error: ")
    return err[0]


@pytest.fixture
def checkpoint(tmp_path):
    path, _ = make_checkpoint(tmp_path / "tiny.pt", [BackboneSpec("resnet9", 4)])
    return path


def test_export_writes_onnx_and_sidecar_named_after_the_checkpoint(tmp_path, checkpoint, capsys):
    assert main(["--checkpoint", str(checkpoint), "--out", str(tmp_path / "out"), "--random-inputs", "2"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["tiny.json", "tiny.onnx"]
    assert capsys.readouterr().out.split() == [str(tmp_path / "out" / "tiny.onnx"), str(tmp_path / "out" / "tiny.json")]


@pytest.mark.parametrize("content", [None, b"not a checkpoint at all", "foreign"])
def test_missing_or_corrupt_checkpoint_is_one_line_exit_2_no_file(tmp_path, capsys, content):
    path = tmp_path / "bad.pt"
    if content == "foreign":
        torch.save({"weights": torch.zeros(3)}, path)
    elif content is not None:
        path.write_bytes(content)
    out = tmp_path / "out"
    assert main(["--checkpoint", str(path), "--out", str(out)]) == 2
    assert str(path) in error_line(capsys)
    assert not out.exists()


def test_bad_option_is_one_line_exit_2(tmp_path, checkpoint, capsys):
    assert main(["--checkpoint", str(checkpoint), "--out", str(tmp_path / "out"), "--opset", "13"]) == 2
    assert "opset" in error_line(capsys)


def test_check_accepts_our_export(tmp_path, checkpoint, capsys):
    main(["--checkpoint", str(checkpoint), "--out", str(tmp_path), "--random-inputs", "1"])
    capsys.readouterr()
    assert main(["check", "--onnx", str(tmp_path / "tiny.onnx")]) == 0
    out = capsys.readouterr().out
    assert "accepted for Tensil" in out and "[1, 20]" in out and "GlobalAveragePool x1" in out


def test_check_names_an_unsupported_operator(tmp_path, capsys):
    nodes = [helper.make_node("Sigmoid", ["input"], ["m"], name="gate"), *gap_flatten("m")]
    path = tmp_path / "foreign.onnx"
    path.write_bytes(tiny_graph(nodes).SerializeToString())
    assert main(["check", "--onnx", str(path)]) == 2
    assert "not accepted by the Tensil compiler: node 'gate' (Sigmoid): operator Sigmoid is not supported" in (
        error_line(capsys))


def test_check_prints_warnings_and_upstream_differences(tmp_path, capsys):
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], name="mean", axes=[2, 3], keepdims=0),
             helper.make_node("Softmax", ["m"], ["out"], name="probabilities", axis=1)]
    path = tmp_path / "foreign.onnx"
    path.write_bytes(tiny_graph(nodes, opset=13).SerializeToString())
    assert main(["check", "--onnx", str(path)]) == 0
    captured = capsys.readouterr()
    assert "accepted for Tensil" in captured.out
    assert "export: warning: node 'probabilities' (Softmax): Softmax at the output is dropped" in captured.err
    assert "opset 13: upstream reads only opset 9 or 10" in captured.err
    assert "operators ReduceMean: upstream refuses them" in captured.err
    assert main(["check", "--onnx", str(path), "--drop-softmax"]) == 0
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("content", [None, b"\x00garbage\xff" * 10])
def test_check_missing_or_corrupt_onnx(tmp_path, capsys, content):
    path = tmp_path / "model.onnx"
    if content is not None:
        path.write_bytes(content)
    assert main(["check", "--onnx", str(path)]) == 2
    assert str(path) in error_line(capsys)


def test_module_entry_point_exits_2_without_traceback(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "export", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [f"export: error: checkpoint {tmp_path / 'none.pt'} does not exist"]
    assert not (tmp_path / "out").exists()


def test_check_verifies_the_sidecar_beside_the_onnx(tmp_path, checkpoint, capsys):
    main(["--checkpoint", str(checkpoint), "--out", str(tmp_path), "--random-inputs", "1"])
    capsys.readouterr()
    assert main(["check", "--onnx", str(tmp_path / "tiny.onnx")]) == 0
    assert f"sidecar {tmp_path / 'tiny.json'} matches" in capsys.readouterr().out

    other, _ = make_checkpoint(tmp_path / "other.pt", [BackboneSpec("resnet9", 4, strided=False)])
    main(["--checkpoint", str(other), "--out", str(tmp_path), "--random-inputs", "1"])
    capsys.readouterr()
    assert main(["check", "--onnx", str(tmp_path / "tiny.onnx"), "--sidecar", str(tmp_path / "other.json")]) == 2
    assert "written for another ONNX file" in error_line(capsys)

    (tmp_path / "tiny.json").write_text("{not json")
    assert main(["check", "--onnx", str(tmp_path / "tiny.onnx")]) == 2
    assert "cannot be read as JSON" in error_line(capsys)


def test_output_folder_that_is_a_file_is_one_line_exit_2(tmp_path, checkpoint, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["--checkpoint", str(checkpoint), "--out", str(blocker), "--random-inputs", "1"]) == 2
    assert "is a file, not a folder" in error_line(capsys)
    assert blocker.read_text() == "not a folder"
