"""Split on channels (any part sizes), Sub and Mul of two activations, which upstream Tensil accepts:
compiled, emulated and compared with onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from compiler_helpers import assert_close, compile_and_compare, make_model, weights


def conv(name: str, x: str, out: str, rng, co: int, ci: int, inits: dict):
    inits[f"W{name}"], inits[f"B{name}"] = weights(rng, co, ci, 3, 3), weights(rng, co, scale=0.2)
    return helper.make_node("Conv", [x, f"W{name}", f"B{name}"], [out], kernel_shape=[3, 3], pads=[1, 1, 1, 1])


def test_sub_of_two_activations():
    rng, inits = np.random.default_rng(0), {}
    nodes = [conv("a", "x", "a", rng, 20, 4, inits), conv("b", "x", "b", rng, 20, 4, inits),
             helper.make_node("Sub", ["a", "b"], ["d"]), helper.make_node("Relu", ["d"], ["y"])]
    ours, ref, compiled = compile_and_compare(make_model(nodes, [("x", [1, 4, 6, 6])], [("y", None)], inits))
    assert_close(ours, ref)
    assert np.any(ref["y"] > 0.5)  # not an all-zero comparison
    # both terms read x through the same tap packing: one copy layer, one buffer
    assert sum(s.name.endswith("taps_in_lanes") for s in compiled.network.steps) == 1


def test_sub_where_neither_side_comes_from_a_layer():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Sub", ["x", "r"], ["y"])]  # min(x, 0)
    ours, ref, _ = compile_and_compare(make_model(nodes, [("x", [1, 3, 4, 4])], [("y", None)]))
    assert_close(ours, ref)


@pytest.mark.parametrize("opset, form", [(11, "attribute"), (13, "input"), (11, "equal")])
def test_split_on_channels(opset, form):
    rng, inits = np.random.default_rng(1), {}
    sizes = [6, 6] if form == "equal" else [5, 7]
    split_inputs, split_attrs = ["c"], {"axis": 1}
    if form == "attribute":
        split_attrs["split"] = sizes
    elif form == "input":
        inits["sizes"] = np.array(sizes, np.int64)
        split_inputs.append("sizes")
    nodes = [conv("c", "x", "c", rng, 12, 3, inits),
             helper.make_node("Split", split_inputs, ["s0", "s1"], **split_attrs),
             conv("p", "s0", "p", rng, 4, sizes[0], inits), conv("q", "s1", "q", rng, 4, sizes[1], inits),
             helper.make_node("Concat", ["p", "q"], ["y"], axis=1)]
    model = make_model(nodes, [("x", [1, 3, 6, 6])], [("y", None)], inits, opset=opset)
    ours, ref, compiled = compile_and_compare(model)
    assert_close(ours, ref)
    assert sum(1 for s in compiled.network.steps if getattr(s, "copy", False)) >= 2  # the parts are copies


def test_split_off_the_channel_axis_is_refused():
    from tensil.compiler.errors import CompileError
    from tensil.compiler.frontend import graph_from_model

    nodes = [helper.make_node("Split", ["x"], ["a", "b"], axis=2), helper.make_node("Add", ["a", "b"], ["y"])]
    with pytest.raises(CompileError, match="Split is only supported on the channel axis"):
        graph_from_model(make_model(nodes, [("x", [1, 3, 4, 4])], [("y", None)], opset=11))


def test_mul_of_two_activations():
    """A gating product (as in squeeze-excitation-free attention blocks): SIMD Mul per vector."""
    rng, inits = np.random.default_rng(2), {}
    nodes = [conv("a", "x", "a", rng, 14, 3, inits), conv("b", "x", "b", rng, 14, 3, inits),
             helper.make_node("Relu", ["b"], ["g"]), helper.make_node("Mul", ["a", "g"], ["m"]),
             conv("c", "m", "y", rng, 6, 14, inits)]
    ours, ref, compiled = compile_and_compare(make_model(nodes, [("x", [1, 3, 7, 5])], [("y", None)], inits))
    assert_close(ours, ref)
    assert any(type(s).__name__ == "Product" for s in compiled.network.steps)


def test_div_of_two_activations_is_refused_like_upstream():
    from tensil.compiler.errors import CompileError
    from tensil.compiler.frontend import graph_from_model

    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Div", ["x", "r"], ["y"])]
    with pytest.raises(CompileError, match="Div of two activations is not supported .upstream v1.0.15 refuses"):
        graph_from_model(make_model(nodes, [("x", [1, 3, 4, 4])], [("y", None)]))


@pytest.mark.parametrize("op, shape, const_first", [
    ("Add", [1, 6, 5, 4], False), ("Mul", [1, 1, 5, 4], False), ("Sub", [5, 4], True), ("Div", [1, 6, 5, 1], False),
    ("Sub", [1, 6, 1, 1], True),  # a per-channel constant on the left: c - x
])
def test_constants_that_vary_over_the_map(op, shape, const_first):
    """Upstream broadcasts constants of any shape; ours become a constant tensor (or a per-channel
    affine) and then an ordinary two-tensor operation."""
    rng, inits = np.random.default_rng(4), {}
    inits["K"] = (rng.uniform(0.5, 1.5, shape) * (1 if op == "Div" else rng.choice([-1, 1], shape))).astype(np.float32)
    operands = ["K", "c"] if const_first else ["c", "K"]
    nodes = [conv("c", "x", "c", rng, 6, 3, inits), helper.make_node(op, operands, ["y"])]
    ours, ref, compiled = compile_and_compare(make_model(nodes, [("x", [1, 3, 5, 4])], [("y", None)], inits))
    assert_close(ours, ref)
