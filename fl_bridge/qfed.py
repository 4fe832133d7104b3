"""Q-FedUpdate / Q-FedAvg in the federation: which model the clients, the evaluation and the
deployment see. The server state holds the FP32 model (Q-FedUpdate's master, or Q-FedAvg's plain
average); the global model of a quantized run is what the clients receive: that state through
the INT8 message codec, with the frozen base (FLoCoRA) on its INT8 grid, run with INT8
activations. Other methods see the state as it is."""

from __future__ import annotations

import contextlib

import numpy as np

from fl_bridge.codec import Layout
from fl_bridge.config import RunConfig
from fl_bridge.evaluate import Evaluator
from fl_bridge.model import FLModel, set_communicated
from fl_bridge.precision.engine import snap_frozen
from fl_bridge.precision.fakequant import LayerPrecision, fake_quantized
from fl_bridge.precision.server import broadcast_values


def global_tensors(cfg: RunConfig, state: dict[str, np.ndarray], layout: Layout) -> dict[str, np.ndarray]:
    return broadcast_values(state, layout, cfg.codec) if cfg.quantized_training else state


def load_global(model: FLModel, cfg: RunConfig, state: dict[str, np.ndarray], layout: Layout) -> FLModel:
    """Put the global model of `state` into `model` (built by `build_model`) in place."""
    if cfg.quantized_training:
        snap_frozen(model, cfg.quant_bits)
    set_communicated(model, global_tensors(cfg, state, layout))
    return model


def inference(model: FLModel, cfg: RunConfig) -> contextlib.AbstractContextManager:
    """INT8 activations in every conv/linear layer for quantized runs; float otherwise."""
    if not cfg.quantized_training:
        return contextlib.nullcontext(model)
    return fake_quantized(model, LayerPrecision(None, cfg.quant_bits, None), errors=False)


def evaluate_global(evaluator: Evaluator, model: FLModel, cfg: RunConfig) -> dict:
    with inference(model, cfg):
        return evaluator.evaluate(model)

