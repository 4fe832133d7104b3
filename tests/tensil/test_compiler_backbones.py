"""The exported backbones of `train/` compiled for custom_perf: emulator features vs onnxruntime,
and a few-shot proxy (NCM decisions of fixed-point vs float features on generated episodes)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export.onnx_build import to_tensil_onnx
from tensil.arch import load_arch
from tensil.compiler.frontend import graph_from_model
from tensil.compiler.pipeline import compile_network
from tensil.emulator import ModelRunner
from train.backbones import BackboneSpec, build_backbone

ARCH = load_arch("custom_perf")


def exported(spec: BackboneSpec) -> onnx.ModelProto:
    """The backbone with non-trivial BatchNorm statistics (so folding matters), exported at opset 10."""
    torch.manual_seed(0)
    model = build_backbone(spec).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return to_tensil_onnx(model, (1, spec.in_channels, spec.image_size, spec.image_size), 10, "input", "Output")


def features(model: onnx.ModelProto, images: np.ndarray):
    graph = graph_from_model(model)
    compiled = compile_network(graph, ARCH, "backbone")
    runner = ModelRunner(compiled.loaded())
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    shape = {"Output": graph.io_shapes["Output"]}
    ours = np.stack([runner.run({"input": x[None]}, shape)["Output"].ravel() for x in images])
    ref = np.stack([sess.run(None, {"input": x[None]})[0].ravel() for x in images])
    return ours, ref, compiled


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("spec, n", [
    (BackboneSpec("resnet9", 16, True, 3, 32), 2),     # the embedded default
    (BackboneSpec("resnet12", 16, False, 3, 32), 1),   # max-pool variant, four blocks
    (BackboneSpec("resnet9", 16, True, 3, 84), 1),     # 84x84: activations spill to DRAM0 in bands
])
def test_backbone_features_match_onnxruntime(spec, n):
    images = np.random.default_rng(0).standard_normal((n, 3, spec.image_size, spec.image_size)).astype(np.float32)
    ours, ref, compiled = features(exported(spec), images)
    assert ours.shape == ref.shape == (n, build_backbone(spec).feature_dim)
    assert cosines(ours, ref).min() >= 0.99
    if spec.image_size == 84:
        assert compiled.lowered.spilled  # the large variant exercised the DRAM0 path


def test_ncm_decisions_agree_on_generated_episodes():
    """Few-shot proxy: 5-way 1-shot nearest-class-mean on generated class templates; the
    fixed-point program must take the float model's decision on (almost) every query."""
    rng = np.random.default_rng(3)
    templates = rng.standard_normal((5, 3, 32, 32)).astype(np.float32)
    support = templates + 0.6 * rng.standard_normal(templates.shape).astype(np.float32)
    queries = np.repeat(templates, 3, axis=0) + 0.6 * rng.standard_normal((15, 3, 32, 32)).astype(np.float32)
    ours, ref, _ = features(exported(BackboneSpec()), np.concatenate([support, queries]))

    def decide(f: np.ndarray) -> np.ndarray:
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
        protos, q = f[:5], f[5:]
        return np.argmin(((q[:, None] - protos[None]) ** 2).sum(-1), axis=1)

    agree = (decide(ours) == decide(ref)).mean()
    assert agree >= 14 / 15
