"""`python -m tensil compile | emulate | inspect`: outputs, and one clear line + exit 2 + no
partial files on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from compiler_helpers import make_model, weights
from hazard_programs import LOST_UPDATE_INDEX, write_lost_update_model
from tensil.cli import main

ROOT = Path(__file__).resolve().parents[2]


def small_model(path: Path, op: str = "Relu", c: int = 5, dims=(1, 3, 8, 8)) -> Path:
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node(op, ["c"], ["r"], name="act"),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["y"])]
    model = make_model(nodes, [("x", list(dims))], [("y", None)],
                       {"W": weights(rng, c, 3, 3, 3), "B": weights(rng, c, scale=0.2)}, opset=10)
    onnx.save(model, path)
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture()
def compiled(tmp_path, capsys):
    onnx_path = small_model(tmp_path / "net.onnx")
    rc, _, err = run(capsys, "compile", "--onnx", str(onnx_path), "--arch", "custom_perf", "--out",
                     str(tmp_path / "out"), "--samples", "1")
    assert rc == 0, err
    return onnx_path, tmp_path / "out" / "net_custom_perf.tmodel"


def test_compile_writes_model_and_report(compiled):
    onnx_path, tmodel = compiled
    names = sorted(p.name for p in tmodel.parent.iterdir())
    assert names == [f"net_custom_perf.{e}" for e in ("cycles.png", "report.json", "tdata", "tmodel", "tprog")]
    manifest = json.loads(tmodel.read_text())
    assert list(manifest) == ["name", "prog", "consts", "inputs", "outputs", "arch", "load_consts_to_local"]
    report = json.loads(tmodel.with_name("net_custom_perf.report.json").read_text())
    assert report["io"]["outputs"][0]["onnx_shape"] == [1, 5]
    assert report["verification"]["min_cosine_similarity"] > 0.99
    assert report["estimate"]["tensil_cycles"] > 0 and report["layers"]
    assert report["config"]["arch"] == "custom_perf"


def test_emulate_returns_the_onnx_shape(compiled, tmp_path, capsys):
    onnx_path, tmodel = compiled
    x = np.random.default_rng(5).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    rc, _, err = run(capsys, "emulate", "--tmodel", str(tmodel), "--input", str(tmp_path / "x.npy"), "--out",
                     str(tmp_path / "y.npy"))
    assert rc == 0, err
    y = np.load(tmp_path / "y.npy")
    ref = ort.InferenceSession(str(onnx_path)).run(None, {"x": x})[0]
    assert y.shape == ref.shape == (1, 5) and np.abs(y - ref).max() < 0.05


def test_emulate_takes_and_gives_the_onnx_tensors_of_an_nhwc_model(tmp_path, capsys):
    """NHWC input behind Transpose(0,3,1,2) (Keras), a Flatten of the NCHW map as the output
    (compiled in upstream's NHWC order, put back in ONNX's by emulate)."""
    rng = np.random.default_rng(2)
    nodes = [helper.make_node("Transpose", ["x"], ["xc"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["xc", "W", "B"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["y"])]
    model = make_model(nodes, [("x", [1, 6, 6, 3])], [("y", None)],
                       {"W": weights(rng, 4, 3, 3, 3), "B": weights(rng, 4, scale=0.2)})
    onnx.save(model, tmp_path / "keras.onnx")
    rc, _, err = run(capsys, "compile", "--onnx", str(tmp_path / "keras.onnx"), "--out", str(tmp_path / "out"),
                     "--samples", "0")
    assert rc == 0, err
    x = rng.standard_normal((1, 6, 6, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    rc, _, err = run(capsys, "emulate", "--tmodel", str(tmp_path / "out" / "keras_custom_perf.tmodel"),
                     "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy"))
    assert rc == 0, err
    y = np.load(tmp_path / "y.npy")
    ref = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    assert y.shape == ref.shape == (1, 144) and np.abs(y - ref).max() < 0.05


def test_inspect_prints_listing_memory_and_estimate(compiled, capsys):
    _, tmodel = compiled
    rc, out, err = run(capsys, "inspect", "--tmodel", str(tmodel), "--listing", "--memory", "--estimate", "--mhz", "50")
    assert rc == 0, err
    assert "MatMul" in out and "local memory peak" in out and "KCycles" in out and "ms@50MHz" in out
    assert "hardware rules: all pass; 0 AXI burst(s) would cross a 4 KiB boundary" in out


def bad(capsys, *argv) -> str:
    rc, _, err = run(capsys, *argv)
    lines = err.strip().splitlines()
    assert rc == 2 and lines and lines[-1].startswith("tensil: error: ") and "Traceback" not in err, err
    return lines[-1]


def test_bad_inputs_to_compile_leave_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    cases = [
        (small_model(tmp_path / "sig.onnx", op="Sigmoid"), "custom_perf", "node 'act' (Sigmoid)"),
        (small_model(tmp_path / "dyn.onnx", dims=("N", 3, 8, 8)), "custom_perf", "dynamic dimension"),
        (small_model(tmp_path / "big.onnx", c=5, dims=(1, 3, 8, 8)), str(tmp_path / "bad.tarch"), "missing key"),
        (tmp_path / "missing.onnx", "custom_perf", "does not exist"),
    ]
    (tmp_path / "bad.tarch").write_text(json.dumps({"data_type": "FP16BP8", "array_size": 12}))
    for onnx_path, arch, message in cases:
        line = bad(capsys, "compile", "--onnx", str(onnx_path), "--arch", arch, "--out", str(out))
        assert message in line
    assert not out.exists() or not any(out.iterdir())


def test_network_that_does_not_fit(tmp_path, capsys):
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "W"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    onnx.save(make_model(nodes, [("x", [1, 3, 4, 3000])], [("y", None)], {"W": weights(rng, 4, 3, 3, 3)}),
              tmp_path / "wide.onnx")
    line = bad(capsys, "compile", "--onnx", str(tmp_path / "wide.onnx"), "--out", str(tmp_path / "out"))
    assert "does not fit" in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_bad_model_files(compiled, tmp_path, capsys):
    _, tmodel = compiled
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 3, 8, 8), np.float32))
    y = tmp_path / "y.npy"
    # another architecture than the one asked for
    assert "another architecture" in bad(capsys, "emulate", "--tmodel", str(tmodel), "--input", str(x), "--out",
                                         str(y), "--arch", "pynqz1")
    # wrong input shape
    np.save(tmp_path / "x2.npy", np.zeros((1, 3, 9, 9), np.float32))
    assert "shape" in bad(capsys, "emulate", "--tmodel", str(tmodel), "--input", str(tmp_path / "x2.npy"), "--out",
                          str(y))
    (tmp_path / "x.txt").write_text("1 2 3")
    assert "is not a .npy file" in bad(capsys, "emulate", "--tmodel", str(tmodel), "--input", str(tmp_path / "x.txt"),
                                       "--out", str(y))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    message = bad(capsys, "emulate", "--tmodel", str(tmodel), "--input", str(tmp_path / "obj.npy"), "--out", str(y))
    assert "not a plain numeric .npy array" in message and "pickle" not in message.split("(")[0]
    for ext in ("tprog", "tdata"):
        f = tmodel.with_name(f"net_custom_perf.{ext}")
        data = f.read_bytes()
        f.write_bytes(data[:-8])
        assert "truncated" in bad(capsys, "emulate", "--tmodel", str(tmodel), "--input", str(x), "--out", str(y))
        assert "truncated" in bad(capsys, "inspect", "--tmodel", str(tmodel))
        f.write_bytes(data)
    assert not y.exists()


def test_emulate_refuses_a_program_the_hardware_gets_wrong(tmp_path, capsys):
    """A hand-written program with back-to-back accumulations into one address (the RTL loses
    every second update): one line naming the instruction and the rule, exit 2, no output."""
    from tensil.arch import load_arch

    tmodel = write_lost_update_model(tmp_path, load_arch("custom_perf"))
    np.save(tmp_path / "x.npy", np.ones((1, 1, 4, 4), np.float32))
    out = tmp_path / "y.npy"
    proc = subprocess.run([sys.executable, "-m", "tensil", "emulate", "--tmodel", str(tmodel), "--input",
                           str(tmp_path / "x.npy"), "--out", str(out), "--output-shape", "1,1"],
                          cwd=ROOT, capture_output=True, text=True)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"tensil: error: instruction {LOST_UPDATE_INDEX} (MatMul")
    assert "breaks rule acc-read-after-write" in lines[0]
    assert not out.exists()
    rc, printed, _ = run(capsys, "inspect", "--tmodel", str(tmodel))  # inspect still describes it
    assert rc == 0 and f"hardware rules: REFUSED, instruction {LOST_UPDATE_INDEX}" in printed


def test_upstream_backend_says_why_it_cannot_run(tmp_path, capsys):
    from tensil.upstream import UpstreamError, docker_engine

    try:
        docker_engine()
        pytest.skip("a Docker engine answers here; the no-engine path cannot be shown")
    except UpstreamError:
        pass
    onnx_path = small_model(tmp_path / "net.onnx")
    line = bad(capsys, "compile", "--onnx", str(onnx_path), "--backend", "upstream", "--out", str(tmp_path / "o"))
    assert "Docker" in line
    assert not (tmp_path / "o").exists()


def test_module_entry_point(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tensil", "inspect", "--tmodel", str(tmp_path / "none.tmodel")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.startswith("tensil: error: ") and "Traceback" not in r.stderr


def test_report_names_the_saturating_layer(tmp_path, capsys):
    """A layer whose outputs exceed FP16BP8's +-128 is named, with its excess and saturation counts."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="loud"),
             helper.make_node("Relu", ["c"], ["y"])]
    onnx.save(make_model(nodes, [("x", [1, 3, 6, 6])], [("y", None)], {"W": weights(rng, 4, 3, 3, 3) * 200}),
              tmp_path / "loud.onnx")
    rc, _, err = run(capsys, "compile", "--onnx", str(tmp_path / "loud.onnx"), "--out", str(tmp_path / "out"))
    assert rc == 0, err
    report = json.loads((tmp_path / "out" / "loud_custom_perf.report.json").read_text())
    over = report["fixed_point"]["activations"]["saturating_layers"]
    assert over and over[0]["layer"] == "loud" and over[0]["over_by"] > 1
    assert report["verification"]["emulator_saturations_by_layer"]["loud"]["mac_saturations"] > 0
    assert "warning: layer loud" in err
