"""Bundle assembly (contract 5), its checks, and the demo's messages when the bundle is wrong."""

import shutil
import subprocess
import sys

import pytest

from board.bundle import BundleConfig, assemble_bundle, load_bundle
from board.demo import DemoConfig, run_demo
from board.errors import BackendError, BundleError

from board_testdata import write_export


def compiled_for(folder, onnx_path, arch_name):
    """A compiled model with the bundle's expected name (a hand-written program: contents unused here)."""
    pytest.importorskip("tensil.tmodel")
    from board_testdata import pointwise_model

    path, _, _ = pointwise_model(folder, arch_name)
    stem = f"{onnx_path.stem}_{arch_name}"
    for p in list(folder.glob(f"pointwise_{arch_name}.*")):
        text = p.read_bytes()
        if p.suffix == ".tmodel":
            text = text.replace(f"pointwise_{arch_name}".encode(), stem.encode())
        (folder / f"{stem}{p.suffix}").write_bytes(text)
        p.unlink()
    return folder / f"{stem}.tmodel"


def fake_fpga(folder, arch_name):
    out = folder / f"{arch_name}_50MHz"
    out.mkdir(parents=True)
    (out / "design.bit").write_bytes(b"bit")
    (out / "design.hwh").write_text("<hwh/>")
    return out


def test_bundle_with_model_and_bitstream(tmp_path):
    onnx_path = write_export(tmp_path / "export")
    compiled_for(tmp_path / "tensil", onnx_path, "custom_perf")
    fpga = fake_fpga(tmp_path / "fpga", "custom_perf")
    out = assemble_bundle(BundleConfig(onnx=str(onnx_path), tensil=str(tmp_path / "tensil"), fpga=str(fpga), verify_samples=0,
                                       out=str(tmp_path / "bundle")))
    bundle = load_bundle(out, check_hashes=True)
    assert bundle.backends() == ["onnx", "emulator", "tensil"]
    assert bundle.model_arch.same_hardware(bundle.bitstream_arch)
    assert bundle.meta["clock_mhz"] == 50
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["model.json", "model.onnx", "design.bit", "design.hwh", "tiny_custom_perf.tmodel",
         "tiny_custom_perf.tprog", "tiny_custom_perf.tdata"])
    assert not list(tmp_path.glob("bundle.tmp*"))


def test_model_and_bitstream_of_different_archs_are_refused(tmp_path):
    onnx_path = write_export(tmp_path / "export")
    compiled_for(tmp_path / "tensil", onnx_path, "custom_perf")
    fpga = fake_fpga(tmp_path / "fpga", "pynqz1")
    with pytest.raises(BundleError, match="compiled for custom_perf but .* built for pynqz1"):
        assemble_bundle(BundleConfig(onnx=str(onnx_path), tensil=str(tmp_path / "tensil"), fpga=str(fpga), verify_samples=0,
                                     out=str(tmp_path / "bundle")))
    assert not (tmp_path / "bundle").exists()


def test_bundle_missing_a_file_one_clear_line(onnx_bundle, tmp_path):
    broken = tmp_path / "bundle"
    shutil.copytree(onnx_bundle, broken)
    (broken / "model.onnx").unlink()
    with pytest.raises(BundleError, match="missing model.onnx"):
        load_bundle(broken)
    done = subprocess.run([sys.executable, "-m", "board", "demo", "--bundle", str(broken), "--backend", "onnx",
                           "--out", str(tmp_path / "demo")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("board: error: bundle")
    assert "Traceback" not in done.stderr


def test_backend_the_bundle_cannot_serve(onnx_bundle, tmp_path):
    with pytest.raises(BackendError, match="cannot serve the tensil backend"):
        run_demo(DemoConfig(bundle=str(onnx_bundle), backend="tensil", out=str(tmp_path)))
