"""Shared test data for board/: synthetic class pictures, a small feature-extractor ONNX, bundles.

The feature extractor is an honest stand-in for a trained backbone: a fixed random convolution,
ReLU and global average pooling, whose features separate the colours/shapes of the generated
classes. It tests the demo pipeline, not the quality of a backbone.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

FEATURES = 24
IMAGE_SIZE = 32
PREPROCESSING = {"image_size": IMAGE_SIZE, "resize": 36, "mean": [0.5, 0.45, 0.4], "std": [0.25, 0.25, 0.25],
                 "channel_order": "RGB"}


def class_pictures(classes: int = 6, per_class: int = 10, size: int = 64, seed: int = 0) -> dict:
    """The `train sample-images` npz layout: images (N,H,W,3) uint8 RGB, labels, class_names."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for k in range(classes):
        hue = int(180 * k / classes)
        for _ in range(per_class):
            hsv = np.zeros((size, size, 3), np.uint8)
            hsv[..., 0] = (hue + rng.integers(-4, 5)) % 180
            hsv[..., 1] = rng.integers(150, 230)
            hsv[..., 2] = rng.integers(150, 230)
            img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
            centre = tuple(int(v) for v in rng.integers(size // 3, 2 * size // 3, size=2))
            shade = (255, 255, 255) if k % 2 else (0, 0, 0)
            if k % 3 == 0:
                cv2.circle(img, centre, size // 4, shade, -1)
            elif k % 3 == 1:
                cv2.rectangle(img, (centre[0] - size // 5, centre[1] - size // 5),
                              (centre[0] + size // 5, centre[1] + size // 5), shade, -1)
            else:
                for x in range(0, size, 8):
                    cv2.line(img, (x, 0), (x, size), shade, 2)
            images.append(img)
            labels.append(k)
    return {"images": np.stack(images), "labels": np.array(labels),
            "class_names": np.array([f"synthetic-{k}" for k in range(classes)])}


def feature_onnx(path: Path, features: int = FEATURES, seed: int = 1) -> None:
    """Conv(3->F, 3x3, stride 2, pad 1) + ReLU + GlobalAveragePool + Reshape -> (1, F), opset 10."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 0.4, size=(features, 3, 3, 3)).astype(np.float32)
    bias = rng.normal(0, 0.1, size=(features,)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w", "b"], ["conv"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["conv"], ["relu"]),
         helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
         helper.make_node("Reshape", ["pool", "shape"], ["output"])],
        "features",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, IMAGE_SIZE, IMAGE_SIZE])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, features])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b"),
         numpy_helper.from_array(np.array([1, features], dtype=np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    model.ir_version = 6
    onnx.save(model, str(path))


def write_export(folder: Path, name: str = "tiny", base_mean: bool = True) -> Path:
    """An export/ output: <name>.onnx and its sidecar (contract 2)."""
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = folder / f"{name}.onnx"
    feature_onnx(onnx_path)
    sidecar = {"format": "fsl-onnx-sidecar", "version": 1,
               "input": {"name": "input", "shape": [1, 3, IMAGE_SIZE, IMAGE_SIZE]},
               "output": {"name": "output", "shape": [1, FEATURES]}, "feature_dim": FEATURES,
               "preprocessing": PREPROCESSING,
               "base_mean": [0.05] * FEATURES if base_mean else None, "parity": {"note": "test export"}}
    (folder / f"{name}.json").write_text(json.dumps(sidecar))
    return onnx_path


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
