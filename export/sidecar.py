"""The `<name>.json` sidecar of an exported ONNX (artifact contract 2)."""

from __future__ import annotations

import onnx
import onnxruntime
import onnxsim
import torch

from export.config import ExportConfig
from export.graph_check import GraphSummary
from export.parity import ParityFigures
from train.checkpoint import BackboneCheckpoint

FORMAT = "fsl-onnx-sidecar"
VERSION = 1


def build_sidecar(
    config: ExportConfig,
    ckpt: BackboneCheckpoint,
    checkpoint_sha256: str,
    onnx_sha256: str,
    graph: GraphSummary,
    parity: list[ParityFigures],
    real_inputs_note: str,
) -> dict:
    """Everything a later stage needs to use the ONNX without the checkpoint."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "onnx": {"file": config.onnx_path.name, "sha256": onnx_sha256},
        "input": {"name": graph.input_name, "shape": list(graph.input_shape), "layout": "NCHW", "dtype": "float32"},
        "output": {"name": graph.output_name, "shape": list(graph.output_shape), "dtype": "float32"},
        "feature_dim": graph.feature_dim,
        "preprocessing": ckpt.preprocessing.to_dict(),
        "base_mean": None if ckpt.base_mean is None else [float(v) for v in ckpt.base_mean.flatten()],
        "opset": graph.opset,
        "operators": graph.operators,
        "parity": {
            "tolerance": {"atol_relative": config.atol, "min_cosine": config.min_cosine},
            "results": [p.to_dict() for p in parity],
            "real_inputs": real_inputs_note,
        },
        "source": {
            "checkpoint": str(config.checkpoint),
            "sha256": checkpoint_sha256,
            "members": [m.spec.to_dict() for m in ckpt.members],
            "dataset": ckpt.dataset,
            "metrics": ckpt.metrics,
        },
        "tools": {
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxsim": onnxsim.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "config": config.to_dict(),
    }
