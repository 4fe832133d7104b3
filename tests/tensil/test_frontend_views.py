"""Front-end relabelling: NHWC inputs, vectors through 1-sized axes, Softmax and Flatten outputs (hand-made ONNX)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from compiler_helpers import make_model, weights
from tensil.arch import load_arch
from tensil.compiler.errors import CompileError
from tensil.compiler.frontend import graph_from_model
from tensil.compiler.pipeline import compile_network
from tensil.emulator import ModelRunner

RNG = np.random.default_rng(7)


def run_both(model, x: np.ndarray):
    """(compiled output, what it should equal from onnxruntime, graph)."""
    graph = graph_from_model(model)
    compiled = compile_network(graph, load_arch("custom_perf"), "m")
    name = graph.inputs[0]
    ours = ModelRunner(compiled.loaded()).run({name: graph.to_host(name, x)}, {o: graph.io_shapes[o] for o in graph.outputs})
    out = graph.outputs[0]
    tensors = graph.reference_tensors()
    ref_model = make_model(list(model.graph.node), [(name, list(x.shape))], [(t, None) for t in tensors],
                           {i.name: numpy_helper.to_array(i) for i in model.graph.initializer},
                           opset=model.opset_import[0].version)
    sess = ort.InferenceSession(ref_model.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = graph.reference(out, dict(zip(tensors, sess.run(None, {name: x}))))
    return ours[out], ref, graph


def conv(x: str, y: str, ci: int, co: int, inits: dict, k: int = 3):
    inits[f"w_{y}"] = weights(RNG, co, ci, k, k)
    return helper.make_node("Conv", [x, f"w_{y}"], [y], pads=[k // 2] * 4)


def test_nhwc_input_behind_transpose_is_relabelled():
    inits = {}
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]), conv("t", "c", 3, 8, inits),
             helper.make_node("GlobalAveragePool", ["c"], ["y"])]
    model = make_model(nodes, [("x", [1, 6, 5, 3])], [("y", None)], inits)
    x = (RNG.standard_normal((1, 6, 5, 3)) + np.array([1.0, 0.0, -1.0])).astype(np.float32)
    ours, ref, graph = run_both(model, x)
    assert graph.io_shapes["x"] == [1, 3, 6, 5] and graph.onnx_shape("x") == [1, 6, 5, 3]
    assert np.abs(ours - ref).max() < 0.05


def test_a_transpose_of_an_input_with_two_consumers_moves_data():
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2], name="t"),
             helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["t", "t"], ["y"])]
    model = make_model(nodes, [("x", [1, 4, 4, 4])], [("y", None), ("r", None)])
    with pytest.raises(CompileError, match=r"node 't' \(Transpose\): Transpose with perm \[0, 3, 1, 2\].*moves data"):
        graph_from_model(model)


def test_a_vector_moved_through_unit_axes_reaches_the_output_as_1_c():
    inits = {}
    nodes = [conv("x", "c", 3, 16, inits), helper.make_node("GlobalAveragePool", ["c"], ["p"]),
             helper.make_node("Transpose", ["p"], ["q"], perm=[0, 2, 3, 1]),
             helper.make_node("Squeeze", ["q"], ["y"], axes=[1])]
    model = make_model(nodes, [("x", [1, 3, 6, 6])], [("y", None)], inits, opset=11)
    ours, ref, graph = run_both(model, RNG.standard_normal((1, 3, 6, 6)).astype(np.float32))
    assert graph.io_shapes["y"] == [1, 16] and graph.onnx_shape("y") == [1, 1, 16]
    assert np.abs(ours - ref).max() < 0.05


def test_a_vector_view_cannot_feed_a_convolution():
    inits = {"w": weights(RNG, 2, 1, 1, 1)}
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]),
             helper.make_node("Transpose", ["p"], ["q"], perm=[0, 2, 3, 1]),
             helper.make_node("Conv", ["q", "w"], ["y"], name="late")]
    model = make_model(nodes, [("x", [1, 4, 3, 3])], [("y", None)], inits)
    with pytest.raises(CompileError, match=r"node 'late' \(Conv\): .*1-sized axes were moved"):
        graph_from_model(model)


@pytest.mark.parametrize("order", ["nhwc", "onnx"])
def test_softmax_after_a_flattened_map_is_dropped_and_compared_with_its_input(order):
    from tensil.compiler.frontend import FrontendOptions

    inits = {}
    nodes = [conv("x", "c", 3, 5, inits), helper.make_node("Flatten", ["c"], ["f"], axis=1),
             helper.make_node("Softmax", ["f"], ["y"], axis=1, name="sm")]
    model = make_model(nodes, [("x", [1, 3, 3, 4])], [("y", None)], inits)
    graph = graph_from_model(model, FrontendOptions(flatten_order=order))
    assert graph.views["y"].onnx_name == "f" and graph.io_shapes["y"] == [1, 60]
    assert any("Softmax at the output is dropped" in w for w in graph.warnings)
    if order == "nhwc":
        ours, ref, _ = run_both(model, RNG.standard_normal((1, 3, 3, 4)).astype(np.float32))
        assert np.abs(ours - ref).max() < 0.05


def test_reshape_that_moves_data_says_what_is_accepted():
    nodes = [helper.make_node("Reshape", ["x", "s"], ["y"], name="r")]
    model = make_model(nodes, [("x", [1, 4, 2, 2])], [("y", None)], {"s": np.array([1, 2, 8], np.int64)})
    with pytest.raises(CompileError, match=r"node 'r' \(Reshape\): .*keep \(C, H, W\) or move 1-sized axes .*upstream"):
        graph_from_model(model)


@pytest.mark.parametrize("after, message", [
    ([], r"output 'y' is a Transpose\(0,2,3,1\) of a spatial map"),
    ([helper.make_node("Relu", ["y"], ["z"], name="late")], r"node 'late' \(Relu\): a Transpose\(0,2,3,1\) of a spatial"),
])
def test_an_nhwc_map_only_feeds_a_flatten(after, message):
    nodes = [helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1]), *after]
    model = make_model(nodes, [("x", [1, 4, 3, 3])], [("z" if after else "y", None)])
    with pytest.raises(CompileError, match=message):
        graph_from_model(model)
