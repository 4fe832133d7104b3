"""What a HaLo-FL client uploads: its weights as its forward pass used them, `bw` bits on a
power-of-two grid per tensor (the paper's communication cost is model size x bw), in the
smallest message container that holds them (the codec packs 2, 4 or 8 bits: 6-bit codes travel
in 8-bit slots, losslessly, and the analytic bits count 6)."""

from __future__ import annotations

import numpy as np
import torch

from fl_bridge.codec import CodecConfig, Layout, quantised
from fl_bridge.precision.quantizers import Pow2Quantizer
from fl_bridge.quant import BITS


def container_bits(bw: int) -> int:
    """The narrowest message width (2, 4 or 8 bits) that holds bw-bit codes."""
    return min(b for b in BITS if b >= bw)


def upload_codec(bw: int) -> CodecConfig:
    return CodecConfig(container_bits(bw), scale="pow2")


def forward_weights(tensors: dict[str, np.ndarray], layout: Layout, bw: int) -> dict[str, np.ndarray]:
    """Every quantised (ndim > 1) tensor rounded to its bw-bit power-of-two grid, as the forward
    pass's weight quantizer (`FakeQuantW`, round to nearest) sees it; 1-D tensors unchanged."""
    q = Pow2Quantizer(bw)
    out = dict(tensors)
    for name, shape in layout:
        if quantised(shape, 8):
            out[name] = q.fake(torch.from_numpy(np.asarray(tensors[name], dtype=np.float64))).numpy().astype(np.float32)
    return out
