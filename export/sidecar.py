"""The `<name>.json` sidecar of an exported ONNX (artifact contract 2)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import onnxruntime
import onnxsim
import torch

from export.config import ExportConfig
from export.errors import SidecarError
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
    dataset_inputs: str,
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
            "dataset_inputs": dataset_inputs,
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


def read_sidecar(path: Path) -> dict:
    """Load a sidecar written by `build_sidecar`; SidecarError with one line otherwise."""
    try:
        sidecar = json.loads(path.read_text())
    except FileNotFoundError:
        raise SidecarError(f"sidecar {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SidecarError(f"{path}: cannot be read as JSON ({type(e).__name__})") from None
    if not isinstance(sidecar, dict) or sidecar.get("format") != FORMAT or sidecar.get("version") != VERSION:
        raise SidecarError(f"{path}: not an export sidecar ({FORMAT!r} version {VERSION} expected)")
    return sidecar


def _name_and_shape(entry: object) -> tuple | None:
    return (entry.get("name"), entry.get("shape")) if isinstance(entry, dict) else None


def verify_sidecar(sidecar: dict, onnx_sha256: str, graph: GraphSummary, source: str, onnx_path: str = "") -> None:
    """SidecarError unless the sidecar describes exactly this ONNX file and interface."""
    if not isinstance(sidecar.get("onnx"), dict) or sidecar["onnx"].get("sha256") != onnx_sha256:
        other = f" than {onnx_path}" if onnx_path else ""
        raise SidecarError(f"{source}: the sidecar was written for another ONNX file{other} (sha256 differs)")
    if (
        _name_and_shape(sidecar.get("input")) != (graph.input_name, list(graph.input_shape))
        or _name_and_shape(sidecar.get("output")) != (graph.output_name, list(graph.output_shape))
        or sidecar.get("feature_dim") != graph.feature_dim
    ):
        raise SidecarError(f"{source}: the sidecar's input, output or feature_dim do not match the graph")
