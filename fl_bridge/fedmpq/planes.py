"""FedMPQ's fixed-point layers and their binary planes, in two representations.

* `sign-magnitude` (default): a b-bit layer is a sign plane and b-1 magnitude planes,
  `w = sign * step * sum_i 2^(i-1) M_i`, codes in [-(2^(b-1)-1), 2^(b-1)-1], `step = max|w| / (2^(b-1)-1)`
  (`precision.quantizers.SymmetricQuantizer`). The "most significant bit-plane" is the top
  magnitude plane: it is sparse when few weights are large, so pruning it (b -> b-1, same step)
  saturates only the weights that had it set.
* `literal` (the paper's Eq. 3): offset binary, b planes of `n = c + 2^(b-1)`, `w = step * c`, codes c
  in [-2^(b-1), 2^(b-1)-1], `step = 2 max|w| / (2^b - 1)` (s = 2 max|w|, Eq. 14) through
  `precision.quantizers.AffineQuantizer` with zero point 0. Its top plane is 1 exactly for the
  weights >= 0, so its density is about one half and MSB pruning almost never fires.

Pruning the top plane keeps the step (the LSB): the surviving values are unchanged and the codes
beyond the new range saturate to its bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fl_bridge.precision.quantizers import AffineQuantizer, SymmetricQuantizer

REPRESENTATIONS = ("sign-magnitude", "literal")
B_MIN = 2  # a 2-bit sign-magnitude layer is ternary; the literal 1-bit layer would hold {-step, 0} only
B_MAX = 8  # Alg. 2's ceiling


def check_bits(bits: int) -> None:
    if not B_MIN <= bits <= B_MAX:
        raise ValueError(f"layer bits must be in {B_MIN}..{B_MAX} (got {bits})")


def check_representation(representation: str) -> None:
    if representation not in REPRESENTATIONS:
        raise ValueError(f"representation must be one of {', '.join(REPRESENTATIONS)} (got {representation!r})")


def code_range(bits: int, representation: str) -> tuple[int, int]:
    """Smallest and largest code of a `bits`-bit layer."""
    check_bits(bits)
    half = 2 ** (bits - 1)
    return (-(half - 1), half - 1) if representation == "sign-magnitude" else (-half, half - 1)


def step_for(max_abs: float, bits: int, representation: str) -> float:
    """The LSB of a fresh `bits`-bit layer whose largest magnitude is `max_abs`."""
    check_representation(representation)
    check_bits(bits)
    if representation == "sign-magnitude":
        return SymmetricQuantizer(bits).step(max_abs)
    return 2.0 * max_abs / (2**bits - 1) if max_abs > 0 else 1.0


@dataclass(frozen=True)
class LayerCode:
    """One fixed-point layer: integer codes (value = step * code), its bits and representation."""

    codes: np.ndarray  # int64, the layer's shape
    bits: int
    step: float
    representation: str = "sign-magnitude"

    def values(self) -> np.ndarray:
        return (self.codes.astype(np.float64) * self.step).astype(np.float32)


def quantize(w: np.ndarray, bits: int, representation: str = "sign-magnitude",
             step: float | None = None) -> LayerCode:
    """Round `w` to a `bits`-bit layer (fresh step from max|w| unless given; saturating)."""
    x = torch.from_numpy(np.asarray(w, dtype=np.float64))
    if step is None:
        step = step_for(float(x.abs().max()) if x.numel() else 0.0, bits, representation)
    check_bits(bits)
    if representation == "sign-magnitude":
        codes = SymmetricQuantizer(bits).quantize(x, step)
    else:
        codes = AffineQuantizer(bits).quantize(x, torch.tensor(step, dtype=torch.float64),
                                               torch.tensor(0.0, dtype=torch.float64))
    return LayerCode(codes.numpy().astype(np.int64), bits, float(step), representation)


def planes(code: LayerCode) -> np.ndarray:
    """The binary planes (bits, numel) as bool, LSB first. Sign-magnitude: the b-1 magnitude planes,
    then the sign plane last; literal: the b planes of the offset code."""
    flat = code.codes.reshape(-1)
    if code.representation == "sign-magnitude":
        mag = np.abs(flat)
        bits = [(mag >> i) & 1 for i in range(code.bits - 1)] + [flat < 0]
    else:
        offset = flat + 2 ** (code.bits - 1)
        bits = [(offset >> i) & 1 for i in range(code.bits)]
    return np.stack(bits).astype(bool)


def from_planes(p: np.ndarray, bits: int, representation: str, shape: tuple[int, ...], step: float) -> LayerCode:
    """Inverse of `planes` (a negative sign with zero magnitude decodes to 0)."""
    weights = (1 << np.arange(p.shape[0], dtype=np.int64))[:, None]
    if representation == "sign-magnitude":
        mag = (p[:-1].astype(np.int64) * weights[:-1]).sum(0)
        codes = np.where(p[-1], -mag, mag)
    else:
        codes = (p.astype(np.int64) * weights).sum(0) - 2 ** (bits - 1)
    return LayerCode(codes.reshape(shape), bits, step, representation)


def prunable(code: LayerCode) -> np.ndarray:
    """The planes the group lasso and MSB pruning act on (LSB first): magnitude planes, or all planes."""
    p = planes(code)
    return p[:-1] if code.representation == "sign-magnitude" else p


def densities(code: LayerCode) -> np.ndarray:
    """Fraction of ones in each prunable plane (Eq. 13), LSB first."""
    return prunable(code).mean(axis=1)


def drop_top_plane(code: LayerCode) -> LayerCode:
    """b -> b-1 with the same step: codes beyond the new range saturate, the rest are unchanged."""
    lo, hi = code_range(code.bits - 1, code.representation)
    return LayerCode(np.clip(code.codes, lo, hi), code.bits - 1, code.step, code.representation)


def msb_prune(code: LayerCode, eps: float, b_min: int = B_MIN) -> LayerCode:
    """Drop the top prunable plane while its density is <= eps and the layer has more than b_min bits."""
    while code.bits > b_min and densities(code)[-1] <= eps:
        code = drop_top_plane(code)
    return code
