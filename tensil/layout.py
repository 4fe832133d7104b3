"""Host-side tensor layouts: ONNX-shaped float arrays <-> vectors of A raw scalars in DRAM0.

The layout upstream Tensil uses for *every* activation (graph inputs, outputs and the
intermediates of its default `local-isolated` strategy), docs/tensil.md "Memories and data layout":

* 4-D tensors (N, C, H, W) are stored NHWC, pixel-major, with channels padded with zeros to
  `Cv = ceil(C / A)` vectors: vector `((n*H + h)*W + w)*Cv + c // A`, lane `c % A`.
  `N*H*W*Cv` vectors. (An RGB 32x32 image on A=12 is 1024 vectors, lanes 3..11 zero.)
* 2-D tensors (N, F): vector `n*Fv + f // A`, lane `f % A`, `Fv = ceil(F / A)`.
* 1-D tensors (L,): vector `l // A`, lane `l % A`.

This module uses the same layout, so Tensil's own PYNQ driver and `tensil emulate` read our
inputs and outputs. Float -> raw conversion for inputs rounds half to even like the upstream
PYNQ driver (`np.round`), but saturates instead of wrapping (the driver lets 128.0 wrap to
-128.0); the compiler's constants round half up (see `tensil.fixed.quantize`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tensil import fixed
from tensil.arch import Arch

INPUT_ROUNDING = "half_even"


class LayoutError(ValueError):
    """An array whose shape or rank has no Tensil vector layout, or a wrong vector count."""


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def vector_count(shape: Sequence[int], array_size: int) -> int:
    """Number of DRAM vectors a tensor of this ONNX shape occupies."""
    shape = tuple(int(d) for d in shape)
    if len(shape) == 4:
        n, c, h, w = shape
        return n * h * w * _ceil_div(c, array_size)
    if len(shape) == 2:
        n, f = shape
        return n * _ceil_div(f, array_size)
    if len(shape) == 1:
        return _ceil_div(shape[0], array_size)
    raise LayoutError(f"tensors of rank {len(shape)} (shape {shape}) have no Tensil layout: ranks 1, 2 and 4 only")


def to_vectors(x: np.ndarray, array_size: int) -> np.ndarray:
    """ONNX-shaped array (any dtype) -> (vectors, A) array in Tensil's layout, padding lanes 0."""
    x = np.asarray(x)
    if x.ndim == 4:
        x = np.transpose(x, (0, 2, 3, 1))  # NCHW -> NHWC
    elif x.ndim not in (1, 2):
        raise LayoutError(f"tensors of rank {x.ndim} (shape {x.shape}) have no Tensil layout: ranks 1, 2 and 4 only")
    inner = x.shape[-1]
    padded = _ceil_div(inner, array_size) * array_size
    pad = [(0, 0)] * (x.ndim - 1) + [(0, padded - inner)]
    return np.pad(x, pad).reshape(-1, array_size)


def from_vectors(vectors: np.ndarray, shape: Sequence[int], array_size: int) -> np.ndarray:
    """(vectors, A) array -> ONNX-shaped array, dropping padding lanes (inverse of `to_vectors`)."""
    shape = tuple(int(d) for d in shape)
    vectors = np.asarray(vectors)
    need = vector_count(shape, array_size)
    if vectors.ndim != 2 or vectors.shape[1] != array_size or vectors.shape[0] != need:
        raise LayoutError(f"shape {shape} needs {need} vectors of {array_size} lanes, got an array of {vectors.shape}")
    if len(shape) == 4:
        n, c, h, w = shape
        return vectors.reshape(n, h, w, -1)[..., :c].transpose(0, 3, 1, 2)
    return vectors.reshape(shape[:-1] + (-1,))[..., : shape[-1]]


def pack_input(x: np.ndarray, arch: Arch, rounding: str = INPUT_ROUNDING) -> tuple[np.ndarray, int]:
    """Float tensor as the ONNX model takes it -> (raw vectors int64 (V, A), n_saturated)."""
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        raise LayoutError("input contains NaN or infinity")
    raw, n_overflow = fixed.quantize(x, arch.dtype, rounding=rounding, saturate=True)
    return to_vectors(raw, arch.array_size), n_overflow


def unpack_output(raw: np.ndarray, shape: Sequence[int], arch: Arch) -> np.ndarray:
    """Raw vectors -> float32 tensor of the ONNX output shape (padding lanes dropped)."""
    return fixed.dequantize(from_vectors(raw, shape, arch.array_size), arch.dtype).astype(np.float32)
