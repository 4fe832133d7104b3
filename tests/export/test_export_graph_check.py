"""The Tensil allow-list and acceptance rules of `export.graph_check`, on hand-made graphs."""

import pytest
from onnx import helper, numpy_helper
import numpy as np

from export.errors import GraphCheckError
from export.graph_check import check_graph
from export_fixtures import conv_weight, gap_flatten, tiny_graph


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


@pytest.mark.parametrize("op", ["ReduceMean", "Identity", "Sigmoid"])
def test_an_operator_outside_the_allow_list_is_named(op):
    attrs = {"axes": [2, 3], "keepdims": 1} if op == "ReduceMean" else {}
    nodes = [helper.make_node(op, ["input"], ["x"], name="offender", **attrs), *gap_flatten("x")]
    with pytest.raises(GraphCheckError, match=rf"node 'offender' \({op}\) is not accepted"):
        check_graph(tiny_graph(nodes))


@pytest.mark.parametrize(
    "node,message",
    [
        (helper.make_node("LeakyRelu", ["input"], ["x"], name="n"), "alpha attribute must be present"),
        (
            helper.make_node("MaxPool", ["input"], ["x"], name="n", kernel_shape=[3, 3], strides=[1, 1], pads=[1] * 4),
            "padding is ignored",
        ),
        (helper.make_node("MaxPool", ["input"], ["x"], name="n", kernel_shape=[2, 2]), "kernel_shape and strides"),
        (helper.make_node("Conv", ["input", "w"], ["x"], name="n", pads=[2, 2, 2, 2], dilations=[2, 2]), "dilations"),
        (
            helper.make_node("Conv", ["input", "computed_w"], ["x"], name="n", pads=[1] * 4),
            "weights must be an initializer",
        ),
    ],
)
def test_attributes_tensil_would_ignore_are_rejected(node, message):
    computed_weight = helper.make_node("Relu", ["w"], ["computed_w"], name="weight_maker")
    model = tiny_graph([computed_weight, node, *gap_flatten("x")], initializers=[conv_weight()])
    with pytest.raises(GraphCheckError, match=rf"node 'n' \({node.op_type}\): .*{message}"):
        check_graph(model)


def test_flatten_needs_an_explicit_axis():
    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["p"]), helper.make_node("Flatten", ["p"], ["out"])]
    with pytest.raises(GraphCheckError, match=r"node '#1' \(Flatten\): .*axis=1"):
        check_graph(tiny_graph(nodes))


def test_concat_must_be_along_channels():
    nodes = [
        helper.make_node("Concat", ["input", "input"], ["c"], name="cat", axis=2),
        helper.make_node("GlobalAveragePool", ["c"], ["p"]),
        helper.make_node("Flatten", ["p"], ["out"], axis=1),
    ]
    with pytest.raises(GraphCheckError, match="channel concatenation"):
        check_graph(tiny_graph(nodes))


@pytest.mark.parametrize("opset", [8, 11, 13])
def test_only_opsets_9_and_10_are_accepted(opset):
    with pytest.raises(GraphCheckError, match=f"opset {opset} is not accepted"):
        check_graph(tiny_graph(gap_flatten(), opset=opset))


def test_a_symbolic_batch_is_rejected():
    with pytest.raises(GraphCheckError, match="fixed shape"):
        check_graph(tiny_graph(gap_flatten(), input_shape=("N", 4, 8, 8), output_shape=("N", 4)))


def test_a_4d_output_is_rejected():
    model = tiny_graph([helper.make_node("GlobalAveragePool", ["input"], ["out"])], output_shape=(1, 4, 1, 1))
    with pytest.raises(GraphCheckError, match=r"must be \(batch, features\)"):
        check_graph(model)


def test_initializers_listed_as_inputs_are_rejected():
    model = tiny_graph(
        [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]), *gap_flatten("c")],
        initializers=[conv_weight()],
    )
    model.graph.input.append(helper.make_tensor_value_info("w", 1, [4, 4, 3, 3]))
    with pytest.raises(GraphCheckError, match="listed as graph inputs"):
        check_graph(model)


def test_double_initializers_are_rejected():
    weight = numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float64), "w")
    model = tiny_graph([helper.make_node("Conv", ["input", "w"], ["c"]), *gap_flatten("c")], initializers=[weight])
    with pytest.raises(GraphCheckError, match="DOUBLE"):
        check_graph(model)
