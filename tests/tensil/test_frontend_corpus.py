"""Issue 12's corpus: every model family compiled, emulated and compared with onnxruntime, and
`export check` giving the same answer as `compile` on each (accepted, or refused with the same message)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from export.errors import GraphCheckError
from export.graph_check import check_graph
from frontend_corpus import CORPUS, Entry, export
from tensil.arch import load_arch
from tensil.compiler.errors import CompileError
from tensil.compiler.frontend import FrontendOptions, graph_from_model
from tensil.compiler.pipeline import CompiledModel, compile_network
from tensil.report import verify

ARCH = load_arch("custom_perf")
ACCEPTED = [e for e in CORPUS if not e.refused]
REFUSED = [e for e in CORPUS if e.refused]
LOW_PRECISION = {"fire-concat"}  # random weights leave its activations a few steps of 1/256 wide


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, tuple[onnx.ModelProto, str]]:
    """Each entry exported once: (model, path of the .onnx file)."""
    folder = tmp_path_factory.mktemp("corpus")
    out = {}
    for entry in CORPUS:
        model = export(entry)
        path = folder / f"{entry.name}.onnx"
        onnx.save(model, str(path))
        out[entry.name] = (model, str(path))
    return out


def structured_input(entry: Entry) -> np.ndarray:
    """Noise plus a different offset per channel (iid noise alone hides a scrambled layout behind pooling)."""
    axis = 3 if entry.input_shape[-1] == 3 and entry.input_shape[1] != 3 else 1
    shape = [1] * len(entry.input_shape)
    shape[axis] = entry.input_shape[axis]
    offsets = np.linspace(-1.0, 1.0, entry.input_shape[axis]).reshape(shape)
    return (np.random.default_rng(3).standard_normal(entry.input_shape) * 0.5 + offsets).astype(np.float32)


def compile_model(model: onnx.ModelProto, options: FrontendOptions | None = None) -> CompiledModel:
    return compile_network(graph_from_model(model, options), ARCH, "m")


@pytest.mark.parametrize("entry", ACCEPTED, ids=lambda e: e.name)
def test_corpus_model_compiles_and_matches_onnxruntime(entry: Entry, corpus):
    model, path = corpus[entry.name]
    compiled = compile_model(model)
    report = verify(compiled, path, [{"x": structured_input(entry)}])
    precision = report["precision"]
    assert precision["one_rounding_vs_onnxruntime_cosine"] > 0.999, precision  # the right reference tensor
    if entry.name in LOW_PRECISION:
        assert 0.9 < report["min_cosine_similarity"] < 0.99
        assert "rounds every product" in precision["warning"]
    else:
        assert report["min_cosine_similarity"] > 0.99 and precision["warning"] is None, precision


@pytest.mark.parametrize("entry", CORPUS, ids=lambda e: e.name)
def test_export_check_and_compile_agree(entry: Entry, corpus):
    model, _ = corpus[entry.name]
    try:
        summary = check_graph(model)
    except GraphCheckError as e:
        checked = str(e)
    else:
        checked = None
        assert summary.input_shape == entry.input_shape
    try:
        compile_model(model)
    except CompileError as e:
        assert checked == f"not accepted by the Tensil compiler: {e}"
        assert entry.refused and entry.refused in str(e) and "upstream" in str(e)
    else:
        assert checked is None and not entry.refused


def test_flatten_output_orders_are_one_permutation(corpus):
    """NHWC order (upstream's, the default) and ONNX's order give the same features, permuted."""
    model, _ = corpus["protonet-conv4-flatten"]
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    from tensil.emulator import ModelRunner

    results = {}
    for order in ("nhwc", "onnx"):
        graph = graph_from_model(model, FrontendOptions(flatten_order=order))
        compiled = compile_network(graph, ARCH, "m")
        results[order] = (graph, ModelRunner(compiled.loaded()).run({"x": x}, {"y": graph.io_shapes["y"]})["y"])
    (g_nhwc, nhwc), (g_onnx, ours_onnx) = results["nhwc"], results["onnx"]
    assert "NHWC order" in " ".join(g_nhwc.warnings) and not g_onnx.warnings
    perm = np.array(g_nhwc.views["y"].perm)
    assert np.array_equal(nhwc.ravel(), ours_onnx.ravel()[perm])  # feature f of NHWC = ONNX feature perm[f]
    c, h, w = 8, 2, 2
    assert list(perm[:3]) == [0, h * w, 2 * h * w]  # (y, x, c): channels vary fastest


def test_compile_cli_explains_nhwc_input_softmax_and_precision(corpus, tmp_path, capsys):
    from tensil.cli import main

    _, path = corpus["keras-resnet-v2-nhwc-softmax"]
    assert main(["compile", "--onnx", path, "--out", str(tmp_path), "--samples", "1"]) == 0
    err = capsys.readouterr().err
    assert "Softmax at the output is dropped" in err and "precision: emulator cosine" in err
    report = json.loads((tmp_path / "keras_resnet_v2_nhwc_softmax_custom_perf.report.json").read_text())
    x = report["io"]["inputs"][0]
    assert x["onnx_shape"] == [1, 3, 16, 16] and x["onnx_model"]["shape"] == [1, 16, 16, 3]
    assert x["onnx_model"]["permutation"] == [0, 3, 1, 2]
    assert report["io"]["outputs"][0]["onnx_model"]["note"].startswith("Softmax dropped")
    assert report["verification"]["min_cosine_similarity"] > 0.99
    assert main(["compile", "--onnx", path, "--out", str(tmp_path), "--samples", "0", "--drop-softmax"]) == 0
    assert "warning" not in capsys.readouterr().err
