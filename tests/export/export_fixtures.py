"""Checkpoints and tiny ONNX graphs generated for the export tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from train.backbones import BackboneSpec, build_backbone
from train.checkpoint import BackboneCheckpoint, Member, Preprocessing, save_checkpoint


def randomise_norms(net: torch.nn.Module, seed: int) -> None:
    """Give every BatchNorm non-trivial statistics so that folding it into the Conv is really tested."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def make_checkpoint(
    path: Path, specs: list[BackboneSpec], dataset: str = ""
) -> tuple[Path, BackboneCheckpoint]:
    members = []
    for seed, spec in enumerate(specs):
        torch.manual_seed(seed)
        net = build_backbone(spec)
        randomise_norms(net, seed)
        members.append(Member(spec, net.state_dict()))
    size = specs[0].image_size
    dim = sum(build_backbone(s).feature_dim for s in specs)
    ckpt = BackboneCheckpoint(
        members,
        Preprocessing(image_size=size, resize=size * 9 // 8),
        base_mean=torch.linspace(0, 1, dim),
        dataset=dataset,
        metrics={"novel_5way_1shot": 0.42},
        config={"epochs": 0},
    )
    save_checkpoint(ckpt, path)
    return path, ckpt


def tiny_graph(
    nodes: list, output_shape=(1, 4), opset: int = 10, initializers=(), input_shape=(1, 4, 8, 8)
) -> onnx.ModelProto:
    """A one-input one-output graph `input` -> ... -> `out` around the given nodes."""
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, list(output_shape))],
        initializer=list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 5
    return model


def gap_flatten(source: str = "input") -> list:
    return [
        helper.make_node("GlobalAveragePool", [source], ["pooled"], name="gap"),
        helper.make_node("Flatten", ["pooled"], ["out"], name="flatten", axis=1),
    ]


def conv_weight(cout: int = 4, cin: int = 4, k: int = 3) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ones((cout, cin, k, k), np.float32), "w")
