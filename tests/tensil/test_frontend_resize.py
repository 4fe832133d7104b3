"""Bilinear Resize (mode linear, half-pixel centres, integer factors), as upstream Tensil takes
it: compiled, emulated and compared value by value with onnxruntime; what stays refused says why."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from compiler_helpers import assert_close, compile_and_compare, make_model, weights
from tensil.compiler.errors import CompileError
from tensil.compiler.frontend import graph_from_model
from tensil.compiler.graph import Upsample


def resize_model(scales=None, sizes=None, mode="linear", coords="half_pixel", c=14, hw=(5, 6), opset=13):
    rng = np.random.default_rng(3)
    inits = {"W0": weights(rng, c, 3, 3, 3), "B0": weights(rng, c, scale=0.2),
             "W1": weights(rng, 5, c, 3, 3), "B1": weights(rng, 5, scale=0.2), "roi": np.zeros(0, np.float32)}
    resize_inputs = ["c0", "roi"]
    if scales is not None:
        inits["scales"] = np.array(scales, np.float32)
        resize_inputs.append("scales")
    else:
        inits["sizes"] = np.array(sizes, np.int64)
        resize_inputs += ["", "sizes"]
    nodes = [helper.make_node("Conv", ["x", "W0", "B0"], ["c0"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Resize", resize_inputs, ["u"], mode=mode, coordinate_transformation_mode=coords),
             helper.make_node("Conv", ["u", "W1", "B1"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    return make_model(nodes, [("x", [1, 3, *hw])], [("y", None)], inits, opset=opset)


@pytest.mark.parametrize("scales, sizes, coords", [
    ([1, 1, 2, 2], None, "half_pixel"),
    ([1, 1, 3, 4], None, "pytorch_half_pixel"),
    (None, [1, 14, 5, 12], "half_pixel"),   # sizes instead of scales: rows x1, columns x2
])
def test_bilinear_upsampling_matches_onnxruntime(scales, sizes, coords):
    ours, ref, compiled = compile_and_compare(resize_model(scales, sizes, coords=coords))
    assert_close(ours, ref, min_cos=0.9995)
    assert any(isinstance(s, Upsample) for s in compiled.network.steps)


def test_interpolation_matrix_is_onnxruntime_s():
    """The float reference of the IR (used by the report) against onnxruntime's Resize alone."""
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((1, 2, 4, 5)).astype(np.float32)
    node = helper.make_node("Resize", ["x", "roi", "scales"], ["y"], mode="linear",
                            coordinate_transformation_mode="half_pixel")
    model = make_model([node], [("x", [1, 2, 4, 5])], [("y", None)],
                       {"roi": np.zeros(0, np.float32), "scales": np.array([1, 1, 2, 4], np.float32)})
    ref = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0][0]
    ours = Upsample("u", "x", "y", (2, 4)).forward(x[0].astype(np.float64))
    np.testing.assert_allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"scales": [1, 1, 2, 2], "mode": "nearest"}, "mode 'linear' with half-pixel centres"),
    ({"scales": [1, 1, 2, 2], "coords": "align_corners"}, "mode 'linear' with half-pixel centres"),
    ({"scales": [1, 1, 2, 3]}, "columns by a power of two"),
    ({"scales": [1, 1, 0.5, 0.5]}, "grow by an integer factor"),
])
def test_what_stays_refused_says_why(kwargs, message):
    with pytest.raises(CompileError, match=message):
        graph_from_model(resize_model(**kwargs))
