"""Checkpoint -> ONNX: Tensil operator set, onnxruntime-vs-torch parity, sidecar (contract 2)."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import export.pipeline
from export.config import ExportConfig
from export.errors import ExportError, GraphCheckError, ParityError
from export.files import sha256_file
from export.graph_check import UPSTREAM_OPS
from export.pipeline import export_checkpoint
from export_fixtures import make_checkpoint
from train.backbones import BackboneSpec
from train.checkpoint import build_model

CASES = {
    "resnet9-strided": ([BackboneSpec("resnet9", 8, strided=True)], 1),
    "resnet9-maxpool": ([BackboneSpec("resnet9", 8, strided=False)], 1),
    "resnet12-84px": ([BackboneSpec("resnet12", 4, strided=False, image_size=84)], 1),
    "resnet9-84px-batch2": ([BackboneSpec("resnet9", 4, strided=True, image_size=84)], 2),
    "ensemble-of-2": ([BackboneSpec("resnet9", 8), BackboneSpec("resnet9", 4)], 1),
    "resnet8-batchnorm": ([BackboneSpec("resnet8", 4)], 1),
}


def run_export(tmp_path, specs, batch=1, **options):
    path, ckpt = make_checkpoint(tmp_path / "net.pt", specs)
    config = ExportConfig(checkpoint=str(path), out=str(tmp_path / "out"), batch=batch, random_inputs=4, **options)
    return config, ckpt, export_checkpoint(config)


@pytest.mark.parametrize("case", CASES)
def test_export_matches_torch_and_uses_only_tensil_operators(tmp_path, case):
    specs, batch = CASES[case]
    config, ckpt, result = run_export(tmp_path, specs, batch)
    model = onnx.load(result.onnx_path)
    ops = {n.op_type for n in model.graph.node}
    assert ops <= UPSTREAM_OPS  # upstream Tensil reads our exports too
    assert result.sidecar["operators"] and not result.sidecar.get("warnings")
    assert "GlobalAveragePool" in ops and "BatchNormalization" not in ops  # folded into the convs
    assert model.opset_import[0].version == 10

    # An independent run: the file on disk through a fresh onnxruntime session vs the torch model.
    size = specs[0].image_size
    images = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(7))
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": images.numpy()})
    with torch.inference_mode():
        expected = build_model(ckpt)(images).numpy()
    assert got.shape == (batch, ckpt.feature_dim)
    np.testing.assert_allclose(got, expected, atol=1e-4 * max(1.0, np.abs(expected).max()), rtol=0)
    for figures in result.sidecar["parity"]["results"]:
        assert figures["max_abs_diff"] < 1e-4 and figures["min_cosine"] > 0.99999


def test_ensemble_concatenates_member_features(tmp_path):
    _, ckpt, result = run_export(tmp_path, CASES["ensemble-of-2"][0])
    model = onnx.load(result.onnx_path)
    assert [n.op_type for n in model.graph.node].count("GlobalAveragePool") == 2
    assert model.graph.node[-1].op_type == "Concat"
    assert result.sidecar["feature_dim"] == 40 + 20 == ckpt.feature_dim


def test_sidecar_follows_contract_2(tmp_path):
    config, ckpt, result = run_export(tmp_path, [BackboneSpec("resnet9", 8)], name="embedded")
    assert result.onnx_path == tmp_path / "out" / "embedded.onnx"
    sidecar = json.loads(result.sidecar_path.read_text())
    assert sidecar == json.loads(json.dumps(result.sidecar))
    assert sidecar["input"] == {"name": "input", "shape": [1, 3, 32, 32], "layout": "NCHW", "dtype": "float32"}
    assert sidecar["output"]["name"] == "Output" and sidecar["output"]["shape"] == [1, 40]
    assert sidecar["feature_dim"] == 40
    assert sidecar["preprocessing"] == ckpt.preprocessing.to_dict()
    assert sidecar["base_mean"] == pytest.approx(ckpt.base_mean.tolist())
    assert sidecar["opset"] == 10
    assert sidecar["operators"] == {"Add": 3, "Conv": 12, "Flatten": 1, "GlobalAveragePool": 1, "LeakyRelu": 9}
    assert "ReduceMean" not in sidecar["operators"]
    assert sidecar["source"]["sha256"] == sha256_file(config.checkpoint)
    assert sidecar["onnx"]["sha256"] == sha256_file(result.onnx_path)
    assert sidecar["source"]["members"] == [BackboneSpec("resnet9", 8).to_dict()]
    assert sidecar["config"] == config.to_dict()
    random = sidecar["parity"]["results"][0]
    assert random["inputs"] == "random" and random["count"] == 4
    assert sidecar["parity"]["dataset_inputs"] == "the checkpoint names no dataset"


def test_opset_9_is_also_accepted(tmp_path):
    _, _, result = run_export(tmp_path, [BackboneSpec("resnet9", 4)], opset=9)
    assert result.sidecar["opset"] == 9 == onnx.load(result.onnx_path).opset_import[0].version


def test_group_norm_backbone_fails_naming_the_node(tmp_path):
    with pytest.raises(GraphCheckError, match=r"not accepted by the Tensil compiler: node '.*' \(InstanceNormalization\): operator "
                       r"InstanceNormalization is not supported .*use BatchNormalization"):
        run_export(tmp_path, [BackboneSpec("resnet8", 4, norm="group")])
    assert not (tmp_path / "out").exists()


def test_parity_failure_leaves_no_artifact(tmp_path, monkeypatch):
    real_build = export.pipeline.to_tensil_onnx

    def tampered(*args, **kwargs):
        model = real_build(*args, **kwargs)
        weights = model.graph.initializer[0]
        array = onnx.numpy_helper.to_array(weights) * 1.01
        weights.CopyFrom(onnx.numpy_helper.from_array(array, weights.name))
        return model

    monkeypatch.setattr(export.pipeline, "to_tensil_onnx", tampered)
    with pytest.raises(ParityError, match="onnxruntime and torch disagree on random inputs"):
        run_export(tmp_path, [BackboneSpec("resnet9", 4)])
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    "options,message",
    [({"opset": 11}, "--opset 11"), ({"batch": 0}, "--batch 0"), ({"name": "a/b"}, "--name")],
)
def test_bad_options_are_one_line_errors(tmp_path, options, message):
    with pytest.raises(ExportError, match=message):
        run_export(tmp_path, [BackboneSpec("resnet9", 4)], **options)


@pytest.fixture(scope="module")
def dataset_cache(tmp_path_factory):
    """One synthetic-dataset cache for this module (rendering it is the slow part)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FSL_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


def test_parity_on_images_of_the_checkpoints_dataset(tmp_path, dataset_cache):
    path, ckpt = make_checkpoint(tmp_path / "net.pt", [BackboneSpec("resnet9", 8)], dataset="synthetic")
    config = ExportConfig(checkpoint=str(path), out=str(tmp_path / "out"), random_inputs=2, real_inputs=6, batch=4)
    parity = export_checkpoint(config).sidecar["parity"]
    assert [r["inputs"] for r in parity["results"]] == ["random", "dataset"]
    dataset = parity["results"][1]
    assert dataset["count"] == 6 and dataset["max_abs_diff"] < 1e-4 and dataset["min_cosine"] > 0.99999
    assert parity["dataset_inputs"] == "6 images of the novel split of 'synthetic' (32 px)"


def test_an_unloadable_dataset_is_reported_not_fatal(tmp_path, dataset_cache):
    path, _ = make_checkpoint(tmp_path / "net.pt", [BackboneSpec("resnet9", 4)], dataset="miniimagenet")
    config = ExportConfig(checkpoint=str(path), out=str(tmp_path / "out"), random_inputs=2, data_root=str(tmp_path))
    parity = export_checkpoint(config).sidecar["parity"]
    assert [r["inputs"] for r in parity["results"]] == ["random"]
    assert parity["dataset_inputs"].startswith("dataset 'miniimagenet' could not be loaded: ")
