"""Session fixtures for board/ tests (data from board_testdata: generated, small)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from board_testdata import class_pictures, write_export


@pytest.fixture(scope="session")
def samples_npz(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("samples") / "samples.npz"
    np.savez(path, **class_pictures())
    return path


@pytest.fixture(scope="session")
def onnx_bundle(tmp_path_factory) -> Path:
    from board.bundle import BundleConfig, assemble_bundle

    root = tmp_path_factory.mktemp("onnx_bundle")
    onnx_path = write_export(root / "export")
    return assemble_bundle(BundleConfig(onnx=str(onnx_path), tensil=None, fpga=None, out=str(root / "bundle")))


@pytest.fixture(scope="session")
def generated_video(tmp_path_factory, samples_npz) -> Path:
    from board.synthvideo import VideoConfig, generate_video

    out = tmp_path_factory.mktemp("video")
    generate_video(VideoConfig(samples=str(samples_npz), out=str(out), classes=6, test_frames=30))
    return out


@pytest.fixture(scope="session")
def tensil_bundle(tmp_path_factory) -> Path:
    """The tiny ONNX compiled by our Tensil compiler for custom_perf, bundled with its ONNX."""
    pytest.importorskip("tensil.compiler.pipeline")
    from board.bundle import BundleConfig, assemble_bundle
    from tensil.arch import load_arch
    from tensil.compiler.pipeline import compile_onnx
    from tensil.tmodel import write_model

    root = tmp_path_factory.mktemp("tensil_bundle")
    onnx_path = write_export(root / "export")
    arch = load_arch("custom_perf")
    compiled = compile_onnx(onnx_path, arch, name=f"{onnx_path.stem}_custom_perf")
    write_model(root / "tensil", compiled.name, arch, compiled.program, compiled.consts, compiled.inputs,
                compiled.outputs)
    return assemble_bundle(BundleConfig(onnx=str(onnx_path), tensil=str(root / "tensil"), fpga=None,
                                        out=str(root / "bundle")))
