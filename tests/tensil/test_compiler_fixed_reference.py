"""Property test: random small graphs, compiled and emulated, equal bit for bit the numpy
reference of the fixed-point semantics the compiler promises (`fixed_reference.py`)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper

from compiler_helpers import make_model
from fixed_reference import reference
from tensil.arch import from_dict, load_arch
from tensil.compiler.errors import CompileError
from tensil.compiler.frontend import graph_from_model
from tensil.compiler.pipeline import compile_network
from tensil.emulator import ModelRunner

ARCH = load_arch("custom_perf")
# Same data type and array, memories so small that activations spill to DRAM0, layers run in
# bands of rows and wide layers stream their weights in groups.
TINY = from_dict({**ARCH.to_json_dict(), "local_depth": 256, "accumulator_depth": 48, "dram0_depth": 1 << 16,
                  "dram1_depth": 1 << 16}, name="tiny")


@st.composite
def graphs(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    c = draw(st.integers(1, 14))
    h = draw(st.integers(3, 9))
    w = draw(st.integers(3, 9))
    scale = draw(st.sampled_from([0.5, 1.0, 6.0]))  # 6.0 drives saturation
    nodes, inits = [], {}
    cur, shape = "x", (c, h, w)
    for li in range(draw(st.integers(1, 3))):
        k = draw(st.sampled_from([1, 3]))
        stride = draw(st.sampled_from([1, 2])) if min(shape[1:]) >= 3 else 1
        pad = (draw(st.integers(0, 1)) if min(shape[1:]) >= 3 else 1) if k == 3 else 0
        co = draw(st.integers(1, 26))
        weight = rng.standard_normal((co, shape[0], k, k)) * scale / math.sqrt(shape[0] * k * k)
        inits[f"W{li}"] = weight.astype(np.float32)
        inits[f"B{li}"] = (rng.standard_normal(co) * 0.3).astype(np.float32)
        nodes.append(helper.make_node("Conv", [cur, f"W{li}", f"B{li}"], [f"c{li}"], kernel_shape=[k, k],
                                      strides=[stride, stride], pads=[pad] * 4))
        cur = f"c{li}"
        shape = (co, (shape[1] + 2 * pad - k) // stride + 1, (shape[2] + 2 * pad - k) // stride + 1)
        act = draw(st.sampled_from(["none", "relu", "leaky"]))
        if act != "none":
            kw = {"alpha": draw(st.sampled_from([0.1, 0.2, 0.01]))} if act == "leaky" else {}
            nodes.append(helper.make_node("Relu" if act == "relu" else "LeakyRelu", [cur], [f"a{li}"], **kw))
            cur = f"a{li}"
        if min(shape[1:]) >= 2 and draw(st.booleans()):
            nodes.append(helper.make_node("MaxPool", [cur], [f"p{li}"], kernel_shape=[2, 2], strides=[2, 2]))
            cur = f"p{li}"
            shape = (shape[0], shape[1] // 2, shape[2] // 2)
    if draw(st.booleans()):
        nodes.append(helper.make_node("GlobalAveragePool", [cur], ["g"]))
        cur = "g"
    nodes[-1].output[0] = "y"
    return make_model(nodes, [("x", [1, c, h, w])], [("y", None)], inits), rng.standard_normal((1, c, h, w)) * 2


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(), st.sampled_from([ARCH, TINY]))
def test_emulated_program_equals_fixed_point_reference(case, arch):
    model, x = case
    graph = graph_from_model(model)
    try:
        compiled = compile_network(graph, arch, "m")
    except CompileError as e:  # the tiny arch cannot hold every random layer
        assert arch is TINY and "does not fit" in str(e)
        return
    x = x.astype(np.float32)
    ours = ModelRunner(compiled.loaded()).run({"x": x}, {"y": graph.io_shapes["y"]})["y"]
    expected = reference(compiled, x).reshape(ours.shape)
    assert np.array_equal(ours, expected.astype(np.float32))


def test_tiny_arch_exercises_spills_bands_and_weight_groups():
    """A fixed graph on the tiny arch goes through every planner path and stays bit-exact."""
    rng = np.random.default_rng(7)
    nodes = [helper.make_node("Conv", ["x", "W0", "B0"], ["c0"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("LeakyRelu", ["c0"], ["a0"], alpha=0.1),
             helper.make_node("Conv", ["a0", "W1", "B1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("MaxPool", ["c1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["p1"], ["y"])]
    inits = {"W0": rng.standard_normal((40, 3, 3, 3)).astype(np.float32) * 0.3,
             "B0": rng.standard_normal(40).astype(np.float32) * 0.1,
             "W1": rng.standard_normal((20, 40, 3, 3)).astype(np.float32) * 0.08,
             "B1": rng.standard_normal(20).astype(np.float32) * 0.1}
    graph = graph_from_model(make_model(nodes, [("x", [1, 3, 12, 12])], [("y", None)], inits))
    compiled = compile_network(graph, TINY, "m")
    low = compiled.lowered
    assert low.spilled
    assert any(g.info.get("bands", 1) > 1 for g in low.groups)
    assert any(g.info.get("weights") == "group" for g in low.groups)
    x = rng.standard_normal((1, 3, 12, 12)).astype(np.float32)
    ours = ModelRunner(compiled.loaded()).run({"x": x}, {"y": graph.io_shapes["y"]})["y"]
    assert np.array_equal(ours, reference(compiled, x).reshape(ours.shape).astype(np.float32))
