"""`export.graph_check` is the compiler's front end: same acceptance, same messages, plus upstream notes."""

import numpy as np
import pytest
from onnx import helper, numpy_helper

from export.errors import GraphCheckError
from export.graph_check import check_export, check_graph
from export_fixtures import conv_weight, gap_flatten, tiny_graph
from tensil.compiler.errors import CompileError
from tensil.compiler.frontend import graph_from_model


def test_a_conv_leaky_pool_graph_is_accepted_and_summarised():
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("LeakyRelu", ["c"], ["a"], name="act", alpha=0.1),
        helper.make_node("MaxPool", ["a"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        *gap_flatten("p"),
    ]
    summary = check_graph(tiny_graph(nodes, initializers=[conv_weight()]))
    assert summary.input_shape == (1, 4, 8, 8) and summary.output_shape == (1, 4)
    assert summary.operators == {"Conv": 1, "Flatten": 1, "GlobalAveragePool": 1, "LeakyRelu": 1, "MaxPool": 1}
    assert summary.warnings == () and summary.upstream == ()


def _heads() -> dict:
    """Graphs the old allow-list and the compiler judged differently (issue 12), all compilable."""
    w = numpy_helper.from_array(np.full((3, 4), 0.1, np.float32), "fc")
    gemm = [helper.make_node("GlobalAveragePool", ["input"], ["p"]), helper.make_node("Flatten", ["p"], ["f"], axis=1),
            helper.make_node("Gemm", ["f", "fc"], ["out"], transB=1)]
    clip = [helper.make_node("Clip", ["input"], ["r6"], min=0.0, max=6.0), *gap_flatten("r6")]
    avg = [helper.make_node("AveragePool", ["input"], ["a"], kernel_shape=[2, 2], strides=[2, 2]), *gap_flatten("a")]
    flat = [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Flatten", ["c"], ["out"], axis=1)]
    return {"gemm": (gemm, [w], (1, 3)), "relu6": (clip, [], (1, 4)), "avgpool": (avg, [], (1, 4)),
            "flatten-output": (flat, [conv_weight()], (1, 256))}


@pytest.mark.parametrize("case", _heads())
def test_check_accepts_what_the_compiler_accepts(case):
    nodes, inits, out_shape = _heads()[case]
    model = tiny_graph(nodes, initializers=inits, output_shape=out_shape)
    graph = graph_from_model(model)
    summary = check_graph(model)
    assert summary.output_shape == out_shape and list(summary.warnings) == graph.warnings


@pytest.mark.parametrize("node,message", [
    (helper.make_node("Sigmoid", ["input"], ["x"], name="n"), "operator Sigmoid is not supported"),
    (helper.make_node("MaxPool", ["input"], ["x"], name="n", kernel_shape=[3, 3], strides=[1, 1], pads=[1] * 4),
     "MaxPool padding"),
    (helper.make_node("Conv", ["input", "w"], ["x"], name="n", pads=[2, 2, 2, 2], dilations=[2, 2]), "dilations"),
    (helper.make_node("Conv", ["input", "input"], ["x"], name="n", pads=[1] * 4), "must be a constant"),
    (helper.make_node("Concat", ["input", "input"], ["x"], name="n", axis=2), "channel axis"),
    (helper.make_node("Resize", ["input", "", "s"], ["x"], name="n", mode="linear"), "mode 'linear'"),
    (helper.make_node("Transpose", ["input"], ["x"], name="n", perm=[0, 1, 3, 2]), "moves data"),
])
def test_refusals_are_the_compilers_messages(node, message):
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")
    model = tiny_graph([node, *gap_flatten("x")], initializers=[conv_weight(), scales])
    with pytest.raises(CompileError) as compiled:
        graph_from_model(model)
    with pytest.raises(GraphCheckError) as checked:
        check_graph(model)
    assert str(checked.value) == f"not accepted by the Tensil compiler: {compiled.value}"
    assert "node 'n' (" in str(checked.value) and message in str(checked.value)


def test_upstream_differences_are_listed():
    nodes = [helper.make_node("LeakyRelu", ["input"], ["a"], name="act"),
             helper.make_node("ReduceMean", ["a"], ["m"], axes=[2, 3], keepdims=0),
             helper.make_node("Identity", ["m"], ["out"])]
    summary = check_graph(tiny_graph(nodes, opset=13))
    assert summary.upstream == ("opset 13: upstream reads only opset 9 or 10",
                                "operators Identity, ReduceMean: upstream refuses them",
                                "node 'act' (LeakyRelu): upstream does not apply the default alpha 0.01")


def test_a_symbolic_batch_is_refused():
    with pytest.raises(GraphCheckError, match="dynamic dimension 'N'"):
        check_graph(tiny_graph(gap_flatten(), input_shape=("N", 4, 8, 8), output_shape=("N", 4)))


def test_an_export_for_batch_2_is_checked_at_batch_1():
    model = tiny_graph(gap_flatten(), input_shape=(2, 4, 8, 8), output_shape=(2, 4))
    with pytest.raises(GraphCheckError, match="batch must be 1"):
        check_graph(model)
    summary = check_export(model, 2)
    assert summary.input_shape == (2, 4, 8, 8) and summary.output_shape == (2, 4)


def test_initializers_listed_as_inputs_are_constants_here_and_inputs_upstream():
    model = tiny_graph(
        [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]), *gap_flatten("c")],
        initializers=[conv_weight()],
    )
    model.graph.input.append(helper.make_tensor_value_info("w", 1, [4, 4, 3, 3]))
    summary = check_graph(model)
    assert summary.input_name == "input"
    assert summary.upstream == ("initializers listed as graph inputs: upstream makes them run-time inputs",)
