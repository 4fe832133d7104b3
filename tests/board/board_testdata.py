"""Test data for board/ (generated, small): class pictures, a feature-extractor ONNX, a hand-written model.

The feature extractor is an honest stand-in for a trained backbone: a fixed random convolution,
ReLU and global average pooling, whose features separate the colours/shapes of the generated
classes. It tests the demo pipeline, not the quality of a backbone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np

from tensil.arch import load_arch
from tensil.fixed import quantize, to_bytes
from tensil.isa import DataFlow, DataMove, Layout, LoadWeight, MatMul, encode_program
from tensil.tmodel import write_model

FEATURES = 24
POINTWISE_PIXELS = 16
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
               "onnx": {"file": onnx_path.name, "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest()},
               "input": {"name": "input", "shape": [1, 3, IMAGE_SIZE, IMAGE_SIZE]},
               "output": {"name": "output", "shape": [1, FEATURES]}, "feature_dim": FEATURES,
               "preprocessing": PREPROCESSING,
               "base_mean": [0.05] * FEATURES if base_mean else None, "parity": {"note": "test export"}}
    (folder / f"{name}.json").write_text(json.dumps(sidecar))
    return onnx_path


def pointwise_model(folder, arch_name="custom_perf", load_consts_to_local=False, seed=0, lost_update=False):
    """A hand-written 1x1 convolution (3 -> A channels, bias) over a 4x4 image, built with
    tensil.isa: consts -> local -> array weights; input -> local -> MatMul -> acc -> local -> DRAM0.
    `lost_update`: instruction 4 accumulates into the accumulator instruction 3 wrote last, which
    the RTL gets wrong (a program every consumer must refuse)."""
    arch = load_arch(arch_name)
    a = arch.array_size
    rng = np.random.default_rng(seed)
    weights = np.zeros((a, a))
    weights[:3] = rng.normal(0, 0.5, size=(3, a))              # input lane k -> output lanes
    bias = rng.normal(0, 0.1, size=a)
    consts_raw, _ = quantize(np.vstack([bias, weights]), arch.dtype)
    program = encode_program([
        DataMove(DataFlow.DRAM1_TO_LOCAL, 100, 0, 0, 0, a),
        LoadWeight(100, 0, a),
        DataMove(DataFlow.DRAM0_TO_LOCAL, 0, 0, 0, 0, POINTWISE_PIXELS - 1),
        MatMul(0, 0, 0, 0, POINTWISE_PIXELS - 1),
        *([MatMul(0, 0, POINTWISE_PIXELS - 1, 0, 0, accumulate=True)] if lost_update else []),
        DataMove(DataFlow.ACC_TO_LOCAL, 200, 0, 0, 0, POINTWISE_PIXELS - 1),
        DataMove(DataFlow.LOCAL_TO_DRAM0, 200, 0, POINTWISE_PIXELS, 0, POINTWISE_PIXELS - 1),
    ], Layout.from_arch(arch))
    path = write_model(folder, f"pointwise_{arch_name}", arch, program, to_bytes(consts_raw, arch.dtype),
                       [("x", 0, POINTWISE_PIXELS)], [("y", POINTWISE_PIXELS, POINTWISE_PIXELS)], load_consts_to_local)
    return path, weights[:3], bias
