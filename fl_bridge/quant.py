"""Affine per-output-channel quantisation of message tensors, and bit packing of 2/4/8-bit codes.

For a tensor of ndim > 1, each slice along dim 0 gets its own scale and integer zero point:
`scale = (max - min) / (qmax - qmin)` over the slice's range widened to hold 0,
`zero = clamp(round(qmin - min / scale), qmin, qmax)`,
`q = clamp(round(x / scale) + zero, qmin, qmax)`, `x_hat = scale * (q - zero)`, with the signed
range qmin = -2^(b-1), qmax = 2^(b-1) - 1. A constant slice c (all-zero LoRA B at round 1) has
scale 0; it is sent as scale 0 and zero = c and decodes to c exactly. Codes are stored unsigned
(q - qmin) and packed 8/b per byte, first code in the low bits. The error of a non-constant slice
is at most scale / 2 per element.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BITS = (2, 4, 8)


@dataclass(frozen=True)
class QuantTensor:
    """A quantised tensor: packed codes, one float32 scale and zero per dim-0 slice, its shape."""

    packed: np.ndarray  # uint8, ceil(numel * bits / 8)
    scale: np.ndarray  # float32 (shape[0],)
    zero: np.ndarray  # float32 (shape[0],): integer zero point, or the value of a constant slice
    shape: tuple[int, ...]
    bits: int


def qrange(bits: int) -> tuple[int, int]:
    if bits not in BITS:
        raise ValueError(f"quantisation bits must be one of {BITS} (got {bits})")
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def packed_size(numel: int, bits: int) -> int:
    return (numel * bits + 7) // 8


def pack_bits(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack unsigned codes in [0, 2^bits) into bytes, 8/bits per byte, first code in the low bits."""
    codes = np.asarray(codes, dtype=np.uint8).ravel()
    if bits == 8:
        return codes.copy()
    per_byte = 8 // bits
    padded = np.zeros(-(-codes.size // per_byte) * per_byte, dtype=np.uint8)
    padded[: codes.size] = codes
    groups = padded.reshape(-1, per_byte)
    shifts = (np.arange(per_byte, dtype=np.uint8) * bits).astype(np.uint8)
    return np.bitwise_or.reduce(groups << shifts, axis=1).astype(np.uint8)


def unpack_bits(packed: np.ndarray, bits: int, numel: int) -> np.ndarray:
    """Inverse of `pack_bits`: the first `numel` codes as uint8."""
    packed = np.asarray(packed, dtype=np.uint8).ravel()
    if bits == 8:
        return packed[:numel].copy()
    per_byte = 8 // bits
    shifts = (np.arange(per_byte, dtype=np.uint8) * bits).astype(np.uint8)
    mask = np.uint8(2**bits - 1)
    return ((packed[:, None] >> shifts) & mask).ravel()[:numel]


def quantize(x: np.ndarray, bits: int) -> QuantTensor:
    """Per-dim-0-slice affine quantisation of a float tensor with ndim >= 2."""
    qmin, qmax = qrange(bits)
    x = np.asarray(x, dtype=np.float32)
    rows = x.reshape(x.shape[0], -1).astype(np.float64)
    lo, hi = rows.min(axis=1), rows.max(axis=1)
    constant = lo == hi
    lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)  # the grid holds 0 exactly
    scale = (hi - lo) / (qmax - qmin)
    scale = np.where(constant, 0.0, scale)
    safe = np.where(constant, 1.0, scale)
    zero = np.clip(np.round(qmin - lo / safe), qmin, qmax)
    q = np.clip(np.round(rows / safe[:, None]) + zero[:, None], qmin, qmax)
    q[constant] = qmin
    zero = np.where(constant, rows[:, 0], zero)
    codes = (q - qmin).astype(np.uint8)
    return QuantTensor(pack_bits(codes, bits), scale.astype(np.float32), zero.astype(np.float32), x.shape, bits)


def dequantize(t: QuantTensor) -> np.ndarray:
    """`scale * (q - zero)` per slice; a constant slice (scale 0) decodes to its value."""
    qmin, _ = qrange(t.bits)
    numel = int(np.prod(t.shape))
    q = unpack_bits(t.packed, t.bits, numel).astype(np.float32).reshape(t.shape[0], -1) + qmin
    scale, zero = t.scale[:, None], t.zero[:, None]
    out = np.where(scale == 0, zero, scale * (q - zero))
    return out.astype(np.float32).reshape(t.shape)
