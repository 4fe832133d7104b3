"""Every supported operator alone and in combination: compiled, emulated, compared with onnxruntime."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from compiler_helpers import assert_close, compile_and_compare, make_model, weights
from tensil.compiler.errors import CompileError
from tensil.compiler.frontend import graph_from_model
from tensil.compiler.passes import reference_forward
from tensil.compiler.pipeline import CompileOptions, compile_network
from tensil.arch import load_arch
from tensil.emulator import ModelRunner

RNG = np.random.default_rng(1)


def conv_model(ci=5, co=14, hw=8, k=3, stride=1, pads=(1, 1, 1, 1), group=1, bias=True, after=(), opset=13, **extra):
    inits = {"W": weights(RNG, co, ci // group, k, k)}
    ins = ["x", "W"]
    if bias:
        inits["B"] = weights(RNG, co, scale=0.3)
        ins.append("B")
    nodes = [helper.make_node("Conv", ins, ["c"], kernel_shape=[k, k], strides=[stride, stride], pads=list(pads),
                              group=group, **extra)]
    last = "c"
    for i, (op, kw, more_inits) in enumerate(after):
        out = f"a{i}"
        inputs = [last] + list(more_inits)
        for name in more_inits:
            inits[name] = more_inits[name]
        nodes.append(helper.make_node(op, inputs, [out], **kw))
        last = out
    nodes[-1].output[0] = "y"
    return make_model(nodes, [("x", [1, ci, hw, hw])], [("y", None)], inits, opset=opset)


@pytest.mark.parametrize("kw", [
    dict(),                                     # 3x3 pad 1: partial input and output tiles
    dict(ci=3, co=16, stride=2),                # strided, first-layer shape
    dict(k=1, pads=(0, 0, 0, 0), bias=False),   # 1x1, no bias, single weight tile
    dict(k=2, stride=2, pads=(0, 0, 1, 1), hw=7),  # asymmetric padding
    dict(ci=8, co=8, group=2),                  # grouped convolution (expanded block-diagonally)
    dict(ci=4, co=6, k=3, pads=(0, 0, 0, 0), auto_pad="SAME_UPPER", stride=2),
    dict(ci=26, co=30, hw=6),                   # three input tiles
])
def test_conv_variants(kw):
    if "auto_pad" in kw:
        kw = dict(kw)
        model = conv_model(**{k: v for k, v in kw.items() if k not in ("pads",)})
        del model.graph.node[0].attribute[[a.name for a in model.graph.node[0].attribute].index("pads")]
    else:
        model = conv_model(**kw)
    ours, ref, _ = compile_and_compare(model)
    assert_close(ours, ref)


def test_merged_rows_match_per_row():
    """Two stride-1 3x3 convs: the first has equal input/output pitch, so bands become one MatMul."""
    nodes = [helper.make_node("Conv", ["x", "W1"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["c", "W2"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    model = make_model(nodes, [("x", [1, 12, 9, 9])], [("y", None)],
                       {"W1": weights(RNG, 12, 12, 3, 3), "W2": weights(RNG, 5, 12, 3, 3)})
    a, ref, ca = compile_and_compare(model, merge_rows=True)
    b, _, cb = compile_and_compare(model, merge_rows=False)
    assert np.array_equal(a["y"], b["y"])  # same arithmetic, different instruction shapes
    assert len(ca.lowered.instrs) < len(cb.lowered.instrs)
    assert_close(a, ref)


@pytest.mark.parametrize("after", [
    [("Relu", {}, {})],
    [("LeakyRelu", {"alpha": 0.1}, {})],
    [("LeakyRelu", {}, {})],  # ONNX default alpha 0.01
    [("Clip", {}, {"lo": np.array(0.0, np.float32), "hi": np.array(0.5, np.float32)})],
    [("BatchNormalization", {"epsilon": 1e-3}, {"g": np.linspace(0.5, 1.5, 14, dtype=np.float32),
                                                 "b": np.linspace(-0.2, 0.2, 14, dtype=np.float32),
                                                 "m": np.linspace(-0.1, 0.1, 14, dtype=np.float32),
                                                 "v": np.linspace(0.5, 2.0, 14, dtype=np.float32)}),
     ("Relu", {}, {})],
    [("Relu", {}, {}), ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]}, {})],
    [("MaxPool", {"kernel_shape": [3, 3], "strides": [1, 1]}, {})],
    [("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2]}, {})],
    [("AveragePool", {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1], "count_include_pad": 1}, {})],
    [("GlobalAveragePool", {}, {})],
    [("ReduceMean", {"axes": [2, 3], "keepdims": 0}, {})],
    [("Add", {}, {"k": np.linspace(-1, 1, 14, dtype=np.float32).reshape(1, 14, 1, 1)})],
    [("Mul", {}, {"k": np.linspace(0.5, 1.5, 14, dtype=np.float32).reshape(1, 14, 1, 1)}), ("Relu", {}, {})],
])
def test_operators_after_conv(after):
    opset = 13 if after[0][0] != "ReduceMean" else 13
    ours, ref, _ = compile_and_compare(conv_model(after=after, opset=opset))
    assert_close(ours, ref)


def test_standalone_ops_on_the_input():
    """BN, activation and pooling with no convolution to fuse into: identity/diagonal layers."""
    c = 5
    nodes = [
        helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["bn"]),
        helper.make_node("LeakyRelu", ["bn"], ["l"], alpha=0.2),
        helper.make_node("MaxPool", ["l"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Add", ["p", "p2"], ["y"]),
        helper.make_node("AveragePool", ["x"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
    ]
    nodes = [nodes[0], nodes[1], nodes[2], nodes[4], nodes[3]]
    inits = {"g": np.full(c, 1.2, np.float32), "b": np.full(c, 0.1, np.float32), "m": np.zeros(c, np.float32),
             "v": np.ones(c, np.float32)}
    ours, ref, _ = compile_and_compare(make_model(nodes, [("x", [1, c, 8, 8])], [("y", None)], inits))
    assert_close(ours, ref)


def test_residual_concat_and_dense_head():
    """conv -> (conv, conv) -> Add, Concat on channels, Flatten of a spatial map -> Gemm."""
    nodes = [
        helper.make_node("Conv", ["x", "W1"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["ar"]),
        helper.make_node("Conv", ["ar", "W2"], ["b"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x", "W3"], ["s"], kernel_shape=[1, 1]),
        helper.make_node("Add", ["b", "s"], ["r"]),
        helper.make_node("Concat", ["r", "ar"], ["cat"], axis=1),
        helper.make_node("Flatten", ["cat"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "G", "gb"], ["y"], transB=1, alpha=0.5, beta=2.0),
    ]
    inits = {"W1": weights(RNG, 7, 4, 3, 3), "W2": weights(RNG, 5, 7, 3, 3), "W3": weights(RNG, 5, 4, 1, 1),
             "G": weights(RNG, 10, 12 * 4 * 4), "gb": weights(RNG, 10, scale=0.2)}
    model = make_model(nodes, [("x", [1, 4, 4, 4])], [("y", None)], inits)
    ours, ref, compiled = compile_and_compare(model)
    assert ours["y"].shape == (1, 10)
    assert_close(ours, ref, min_cos=0.995)  # 192-input dot products of weights quantized to 1/256
    x = np.random.default_rng(0).standard_normal((1, 4, 4, 4)).astype(np.float32)
    exact = reference_forward(compiled.network, {"x": x})["y"].reshape(1, 10)
    onnx_ref = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    assert np.allclose(exact, onnx_ref, atol=1e-4)  # the fused network itself is exact
    kinds = [len(s.terms) for s in compiled.network.steps]
    assert 2 in kinds  # the residual add was merged into one accumulating layer


def test_opset_forms_of_reshape_pad_clip():
    """Reshape with an attribute (opset 4) and with an input; Pad and Clip as attributes (opset 10)
    and as inputs (opset 13), around a Conv -> GAP -> Reshape head. onnxruntime lacks the opset-4
    kernels, so every form is compared with onnxruntime on the opset-13 model."""
    w = weights(RNG, 6, 3, 3, 3)

    def build(opset):
        inits = {"W": w}
        if opset >= 11:
            inits.update(pads=np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), lo=np.array(0.0, np.float32),
                         hi=np.array(1.0, np.float32), shape=np.array([1, -1], np.int64))
            pad = helper.make_node("Pad", ["x", "pads"], ["xp"], mode="constant")
            clip = helper.make_node("Clip", ["c", "lo", "hi"], ["cl"])
            reshape = helper.make_node("Reshape", ["g", "shape"], ["y"])
        else:
            pad = helper.make_node("Pad", ["x"], ["xp"], pads=[0, 0, 1, 1, 0, 0, 1, 1], mode="constant")
            clip = helper.make_node("Clip", ["c"], ["cl"], min=0.0, max=1.0)
            if opset >= 5:
                inits["shape"] = np.array([1, -1], np.int64)
                reshape = helper.make_node("Reshape", ["g", "shape"], ["y"])
            else:
                reshape = helper.make_node("Reshape", ["g"], ["y"], shape=[1, -1])
        nodes = [pad, helper.make_node("Conv", ["xp", "W"], ["c"], kernel_shape=[3, 3]), clip,
                 helper.make_node("GlobalAveragePool", ["cl"], ["g"]), reshape]
        return make_model(nodes, [("x", [1, 3, 6, 6])], [("y", None)], inits, opset)

    ours13, ref, _ = compile_and_compare(build(13))
    assert_close(ours13, ref)
    for opset in (4, 10):
        graph = graph_from_model(build(opset))
        compiled = compile_network(graph, load_arch("custom_perf"), "m")
        x = np.random.default_rng(0).standard_normal((1, 3, 6, 6)).astype(np.float32)
        ours = ModelRunner(compiled.loaded()).run({"x": x}, {"y": graph.io_shapes["y"]})
        assert np.array_equal(ours["y"], ours13["y"])


def test_matmul_with_constant_shape_chain_and_pynqz1():
    """PyTorch's Shape/Gather/Unsqueeze/Concat flatten chain folds away; runs on the A=8 arch too."""
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["g"]),
        helper.make_node("Shape", ["g"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "ax"], ["nu"]),
        helper.make_node("Concat", ["nu", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["g", "shape"], ["f"]),
        helper.make_node("MatMul", ["f", "M"], ["y"]),
    ]
    inits = {"zero": np.array(0, np.int64), "ax": np.array([0], np.int64), "minus1": np.array([-1], np.int64),
             "M": weights(RNG, 20, 9)}
    model = make_model(nodes, [("x", [1, 20, 5, 5])], [("y", None)], inits)
    for arch in ("custom_perf", "pynqz1"):
        ours, ref, _ = compile_and_compare(model, arch=arch)
        assert_close(ours, ref)


@pytest.mark.parametrize("build, message", [
    (lambda: make_model([helper.make_node("Sigmoid", ["x"], ["y"], name="act")], [("x", [1, 3, 4, 4])],
                        [("y", None)]), "node 'act' (Sigmoid): operator Sigmoid is not supported"),
    (lambda: conv_model(dilations=[2, 2]), "dilations"),
    (lambda: make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["N", 3, 4, 4])], [("y", None)]),
     "dynamic dimension"),
    (lambda: make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [2, 3, 4, 4])], [("y", None)]),
     "batch must be 1"),
    (lambda: conv_model(after=[("MaxPool", {"kernel_shape": [2, 2], "pads": [1, 1, 1, 1]}, {})]), "padding"),
    (lambda: make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [1, 3, 4, 4])], [("y", None)], opset=30),
     "opset 30"),
])
def test_refusals_name_the_problem(build, message):
    with pytest.raises(CompileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compile_network(graph_from_model(build()), load_arch("custom_perf"), "m")


def test_wide_layers_stream_weight_groups():
    """One output tile's weights of a 3x3 conv over 1200 channels exceed local memory: the
    weight tiles are streamed in groups, and the result is still right."""
    model = conv_model(ci=1200, co=4, hw=3)
    w = np.random.default_rng(4).standard_normal((4, 1200, 3, 3)).astype(np.float32) * 0.05  # >> 1/256
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(w, "W"))
    ours, ref, compiled = compile_and_compare(model, scale=0.5)
    assert [g.info.get("weights") for g in compiled.lowered.groups if g.kind == "layer"] == ["group"]
    assert_close(ours, ref, min_cos=0.995, rel=0.1)  # 10800-term sums, each product rounded


def test_network_that_cannot_fit():
    """A 3000-pixel-wide row does not fit the accumulators even one row at a time."""
    model = conv_model(ci=3, co=4, hw=3)
    model.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 3000
    with pytest.raises(CompileError, match="does not fit the architecture"):
        compile_network(graph_from_model(model), load_arch("custom_perf"), "m")


def test_taps_into_lanes_pass_is_exact_and_cheaper():
    """RGB-like 3x3 conv: the packed network computes the same float function, and the program
    needs fewer weight tiles."""
    model = conv_model(ci=3, co=16, hw=10, after=[("LeakyRelu", {"alpha": 0.1}, {})])
    graph = graph_from_model(model)
    arch = load_arch("custom_perf")
    packed = compile_network(graph, arch, "m", CompileOptions(pack_taps=True))
    plain = compile_network(graph_from_model(model), arch, "m", CompileOptions(pack_taps=False))
    assert any(s.copy for s in packed.network.steps) and not any(getattr(s, "copy", False) for s in plain.network.steps)
    x = np.random.default_rng(2).standard_normal((1, 3, 10, 10))
    a = reference_forward(packed.network, {"x": x})["y"]
    b = reference_forward(plain.network, {"x": x})["y"]
    assert np.allclose(a, b, atol=1e-9)
    count = lambda c: sum(type(i).__name__ == "LoadWeight" for i in c.lowered.instrs)  # noqa: E731
    assert count(packed) < count(plain)
    ours, ref, _ = compile_and_compare(model)
    assert_close(ours, ref)
