"""Shared helpers of the compiler tests: tiny ONNX graphs, compile + emulate vs onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from tensil.arch import load_arch
from tensil.compiler.frontend import graph_from_model
from tensil.compiler.pipeline import CompileOptions, compile_network
from tensil.emulator import ModelRunner


def make_model(nodes, inputs, outputs, inits=None, opset=13) -> onnx.ModelProto:
    """inputs/outputs: [(name, shape)], shape None for outputs lets onnx infer nothing (float)."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def weights(rng, *shape, scale=None) -> np.ndarray:
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    return (rng.standard_normal(shape) * (scale or 1.0 / np.sqrt(fan_in))).astype(np.float32)


def compile_and_compare(model: onnx.ModelProto, arch: str = "custom_perf", seed: int = 0, scale: float = 1.0,
                        merge_rows: bool = False):
    """Compile, emulate one random input, run onnxruntime; returns (ours, ref, compiled)."""
    graph = graph_from_model(model)
    compiled = compile_network(graph, load_arch(arch), "m", CompileOptions(merge_rows=merge_rows))
    rng = np.random.default_rng(seed)
    feeds = {n: (rng.standard_normal(graph.io_shapes[n]) * scale).astype(np.float32) for n in graph.inputs}
    shapes = {o: graph.io_shapes[o] for o in graph.outputs}
    ours = ModelRunner(compiled.loaded()).run(feeds, shapes)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    return ours, ref, compiled


def assert_close(ours: dict, ref: dict, min_cos: float = 0.999, rel: float = 0.03) -> None:
    for name, r in ref.items():
        o = ours[name]
        assert o.shape == r.shape, (name, o.shape, r.shape)
        a, b = o.ravel().astype(np.float64), r.ravel().astype(np.float64)
        cos = a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)
        err = np.abs(a - b).max()
        assert cos >= min_cos, (name, cos, err)
        assert err <= 0.02 + rel * np.abs(b).max(), (name, cos, err)
