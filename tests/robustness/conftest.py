"""Session fixtures of the robustness matrix: one tiny artifact of every kind, built once
(checkpoint, ONNX + sidecar, compiled model, bundle, sample npz, video), plus a per-case workspace."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from robustness_support import TINY_FIT  # noqa: F401 - re-exported for the fixtures below


@dataclass(frozen=True)
class Artifacts:
    root: Path
    checkpoint: Path   # contract 1, finished
    onnx: Path         # contract 2, sidecar next to it
    tensil: Path       # folder with <onnx stem>_custom_perf.tmodel/.tprog/.tdata/.report.json
    bundle: Path       # contract 5 folder (onnx + emulator)
    samples: Path      # `train sample-images` npz
    video: Path        # `board video` folder




@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Artifacts:
    import os

    root = tmp_path_factory.mktemp("artifacts")
    os.environ.setdefault("FSL_CACHE_DIR", str(root / "cache"))
    from board.bundle import BundleConfig, assemble_bundle
    from board.synthvideo import VideoConfig, generate_video
    from export.config import ExportConfig
    from export.pipeline import export_checkpoint
    from tensil.cli import main as tensil_main
    from train.cli import main as train_main

    ckpt = root / "backbone" / "tiny.pt"
    assert train_main(["fit", *TINY_FIT, "--out", str(ckpt)]) == 0
    onnx = export_checkpoint(ExportConfig(checkpoint=str(ckpt), out=str(root / "export"), random_inputs=2,
                                          real_inputs=0)).onnx_path
    assert tensil_main(["compile", "--onnx", str(onnx), "--out", str(root / "tensil"), "--samples", "1"]) == 0
    bundle = assemble_bundle(BundleConfig(onnx=str(onnx), tensil=str(root / "tensil"), fpga=None,
                                          out=str(root / "bundle"), verify_samples=0))
    report = json.loads((root / "tensil" / f"{onnx.stem}_custom_perf.report.json").read_text())
    np.save(root / "x.npy", np.zeros(report["io"]["inputs"][0]["onnx_shape"], np.float32))  # an emulate input
    samples = root / "samples.npz"
    assert train_main(["sample-images", "--classes", "2", "--per-class", "5", "--image-size", "32",
                       "--out", str(samples)]) == 0
    generate_video(VideoConfig(samples=str(samples), out=str(root / "video"), classes=2, shots=1,
                               frames_per_shot=2, settle_frames=1, test_frames=4, hold_frames=2, width=64,
                               height=48))
    return Artifacts(root, ckpt, onnx, root / "tensil", bundle, samples, root / "video")


@pytest.fixture
def workspace(tmp_path, artifacts) -> Path:
    """A fresh folder holding copies of every artifact (cases damage their own copies)."""
    ws = tmp_path / "ws"
    for name in ("backbone", "export", "tensil", "bundle", "video"):
        shutil.copytree(artifacts.root / name, ws / name)
    shutil.copy2(artifacts.samples, ws / "samples.npz")
    shutil.copy2(artifacts.root / "x.npy", ws / "x.npy")
    return ws
