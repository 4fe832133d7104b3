"""The export stage: checkpoint -> checked, parity-verified ONNX + sidecar, written atomically."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import onnx
from torch import nn

from export.config import ExportConfig
from export.errors import ExportError, GraphCheckError
from export.files import commit_files, json_bytes, sha256_bytes, sha256_file
from export.graph_check import GraphSummary, check_export
from export.inputs import dataset_images, random_images
from export.onnx_build import to_tensil_onnx
from export.parity import ParityFigures, compare, onnx_session, require_agreement
from export.sidecar import build_sidecar
from safeio import output_lock
from train.checkpoint import BackboneCheckpoint, build_model, load_checkpoint

log = logging.getLogger("export")


@dataclass(frozen=True)
class ExportResult:
    onnx_path: Path
    sidecar_path: Path
    sidecar: dict


def model_input_shape(ckpt: BackboneCheckpoint, batch: int) -> tuple[int, int, int, int]:
    """The fixed NCHW input shape every member of the checkpoint takes."""
    takes = {(m.spec.in_channels, m.spec.image_size) for m in ckpt.members}
    if len(takes) != 1:
        raise ExportError(f"ensemble members take different inputs (channels, size): {sorted(takes)}")
    channels, size = takes.pop()
    if ckpt.preprocessing.image_size != size:
        raise ExportError(
            f"preprocessing crops {ckpt.preprocessing.image_size} px but the backbone takes {size} px"
        )
    return batch, channels, size, size


def build_checked_graph(
    config: ExportConfig, ckpt: BackboneCheckpoint, model: nn.Module
) -> tuple[onnx.ModelProto, GraphSummary]:
    """Export and simplify `model`, then insist on the Tensil rules and the expected interface."""
    shape = model_input_shape(ckpt, config.batch)
    families = "+".join(m.spec.family for m in ckpt.members)
    log.info(
        "exporting %s (%s, %d features) at opset %d, input %s",
        config.checkpoint, families, model.feature_dim, config.opset, list(shape),
    )
    doc = f"features of {families} from {Path(config.checkpoint).name}"
    proto = to_tensil_onnx(model, shape, config.opset, config.input_name, config.output_name, doc)
    graph = check_export(proto, config.batch)
    expected = (config.input_name, shape, config.output_name, (config.batch, model.feature_dim))
    found = (graph.input_name, graph.input_shape, graph.output_name, graph.output_shape)
    if found != expected:
        raise GraphCheckError(f"exported graph has (input, shape, output, shape) {found}, expected {expected}")
    log.info("graph accepted by the Tensil front end: %s", ", ".join(f"{op} x{n}" for op, n in graph.operators.items()))
    for warning in graph.warnings:
        log.warning("warning: %s", warning)
    return proto, graph


def verify_parity(
    config: ExportConfig, ckpt: BackboneCheckpoint, model: nn.Module, onnx_bytes: bytes
) -> tuple[list[ParityFigures], str]:
    """Compare onnxruntime with torch on random and dataset inputs; ParityError on disagreement."""
    session = onnx_session(onnx_bytes)
    channels_size = model_input_shape(ckpt, config.batch)[1:]
    noise = random_images(channels_size, config.random_inputs, config.seed)
    parity = [compare(model, session, noise, config.batch, "random")]
    images, dataset_note = dataset_images(ckpt, config.real_inputs, config.data_root)
    log.info("dataset inputs: %s", dataset_note)
    if images is not None:
        parity.append(compare(model, session, images, config.batch, "dataset"))
    for figures in parity:
        log.info(
            "parity on %d %s inputs: max |diff| %.3g (features up to %.3g), cosine min %.8f",
            figures.count, figures.inputs, figures.max_abs_diff, figures.feature_scale, figures.min_cosine,
        )
        require_agreement(figures, config.atol, config.min_cosine)
    return parity, dataset_note


def export_checkpoint(config: ExportConfig) -> ExportResult:
    """Export `config.checkpoint`; ExportError (or CheckpointError/BackboneError) with one line on failure."""
    config.validate()
    ckpt = load_checkpoint(config.checkpoint)
    if ckpt.metrics.get("complete") is False:
        raise ExportError(f"{config.checkpoint} is the partial checkpoint of an unfinished training run "
                          f"(run the same `train fit` again to finish it)")
    with output_lock(config.onnx_path, "export", ExportError):
        return _export(config, ckpt)


def _export(config: ExportConfig, ckpt: BackboneCheckpoint) -> ExportResult:
    model = build_model(ckpt)
    proto, graph = build_checked_graph(config, ckpt, model)
    onnx_bytes = proto.SerializeToString()
    parity, dataset_note = verify_parity(config, ckpt, model, onnx_bytes)
    hashes = (sha256_file(config.checkpoint), sha256_bytes(onnx_bytes))
    sidecar = build_sidecar(config, ckpt, *hashes, graph, parity, dataset_note)
    try:
        commit_files({config.onnx_path: onnx_bytes, config.sidecar_path: json_bytes(sidecar)})
    except OSError as e:
        raise ExportError(f"cannot write the artifacts to {config.out}: {e.strerror or e}") from None
    log.info("wrote %s (%d bytes) and %s", config.onnx_path, len(onnx_bytes), config.sidecar_path)
    return ExportResult(config.onnx_path, config.sidecar_path, sidecar)
