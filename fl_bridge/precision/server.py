"""The server side of quantized federated training: the broadcast quantizer, Q-FedUpdate's
FP32 master model, and the "effective update" statistics of the Q-FedUpdate paper.

Q-FedAvg (the naive baseline) keeps the average of the clients' dequantized models as the new
global model; the next broadcast re-quantizes it, and every averaged change smaller than half a
weight LSB rounds away. Q-FedUpdate keeps a full-precision master `w` and applies the averaged
update to it (`w <- w - sum_k n_k/n (w_d - w_d^k)`), which is the same as adding the broadcast's
quantization residual back (`average + (w - w_d)`, the paper's Eq. 8): error feedback on the
broadcast quantizer, so sub-LSB updates accumulate until they cross a rounding boundary.
"""

from __future__ import annotations

import numpy as np
import torch

from fl_bridge.codec import CodecConfig, Layout, decode, encode, quantised
from fl_bridge.precision.optim import grid_exponent

Tensors = dict[str, np.ndarray]


def broadcast_values(master: Tensors, layout: Layout, codec: CodecConfig) -> Tensors:
    """What every client receives: the master model through the message codec (float32)."""
    return decode(encode(master, layout, codec), layout, codec)


def apply_update(master: Tensors, broadcast: Tensors, averaged: Tensors, error_feedback: bool) -> Tensors:
    """The next global model: Q-FedUpdate (`error_feedback`) or Q-FedAvg (the plain average)."""
    if not error_feedback:
        return {n: v.astype(np.float32) for n, v in averaged.items()}
    return {n: (averaged[n].astype(np.float64) + master[n].astype(np.float64) - broadcast[n].astype(np.float64))
            .astype(np.float32) for n in averaged}


def lsb(values: np.ndarray, bits: int) -> float:
    """The grid step of a broadcast tensor (the clients' training grid, `optim.grid_exponent`)."""
    return 2.0 ** grid_exponent(torch.from_numpy(np.asarray(values, dtype=np.float64)), bits)


def update_statistics(layout: Layout, codec: CodecConfig, broadcast: Tensors, averaged: Tensors,
                      next_broadcast: Tensors) -> dict[str, float]:
    """Over the integer-coded entries of a power-of-two message: `effective_update_fraction`, the
    share of aggregated updates |w_d - average| >= LSB/2 (the paper's effective updates), and
    `broadcast_changed_fraction`, the share of entries whose broadcast value changes next round."""
    if codec.scale != "pow2" or codec.bits == 32:
        return {}
    effective = changed = total = 0
    for name, shape in layout:
        if not quantised(shape, codec.bits):
            continue
        step = lsb(broadcast[name], codec.bits)
        delta = np.abs(broadcast[name].astype(np.float64) - averaged[name].astype(np.float64))
        effective += int(np.count_nonzero(delta >= step / 2))
        changed += int(np.count_nonzero(next_broadcast[name] != broadcast[name]))
        total += delta.size
    return {"effective_update_fraction": effective / max(total, 1),
            "broadcast_changed_fraction": changed / max(total, 1)}
