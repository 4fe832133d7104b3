"""Uniform quantizers with saturation, in torch (so the training engines and the message codec
share them).

Power-of-two (symmetric, NITI's block floating point): a tensor is `codes * 2^exponent` with
integer codes in [-qmax, qmax], qmax = 2^(bits-1) - 1 (the code -2^(bits-1) is never produced,
so the grid is symmetric), and `exponent = ceil(log2(max|x| / qmax))` per tensor: the smallest
power-of-two step that holds max|x| without saturating. Values beyond qmax * 2^exponent (an
exponent fixed earlier, e.g. a weight's during local training) saturate to +-qmax.

Symmetric with a real step (FedMPQ's sign-magnitude bit-planes): codes in [-qmax, qmax], i.e. a
sign bit and bits-1 magnitude bits, times `step = max|x| / qmax` per tensor; values beyond
qmax * step (a step fixed earlier) saturate.

Affine: `codes = clamp(round(x / scale) + zero, qmin, qmax)`, `x_hat = scale * (codes - zero)`,
scale and integer zero point from a clipping range [lo, hi] widened to hold 0 (per tensor, or per
channel when lo/hi have a shape that broadcasts against x); inputs outside the range saturate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from fl_bridge.precision.rounding import Rounding, round_with

SUPPORTED_BITS = (2, 3, 4, 5, 6, 7, 8, 16)


def _check_bits(bits: int) -> None:
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"quantizer bits must be one of {SUPPORTED_BITS} (got {bits})")


def pow2_qmax(bits: int) -> int:
    _check_bits(bits)
    return 2 ** (bits - 1) - 1


def pow2_exponent(max_abs: float, bits: int) -> int:
    """Smallest integer e with max_abs <= qmax * 2^e (0 for max_abs == 0, whose codes are all 0)."""
    qmax = pow2_qmax(bits)
    if not math.isfinite(max_abs):
        raise ValueError(f"cannot choose an exponent for max |x| = {max_abs}")
    if max_abs <= 0:
        return 0
    e = math.ceil(math.log2(max_abs / qmax))
    while max_abs > qmax * 2.0**e:  # guard the float log2 at exact powers of two
        e += 1
    while max_abs <= qmax * 2.0 ** (e - 1):
        e -= 1
    return e


@dataclass(frozen=True)
class _Symmetric:
    """Codes in [-qmax, qmax] of a symmetric per-tensor quantizer, given its step."""

    bits: int = 8
    rounding: Rounding = Rounding.NEAREST

    def __post_init__(self) -> None:
        _check_bits(self.bits)

    @property
    def qmax(self) -> int:
        return pow2_qmax(self.bits)

    def codes(self, x: torch.Tensor, step: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """Integer-valued codes of x / step in x's float dtype; saturates at +-qmax."""
        return round_with(x.detach() / step, self.rounding, generator).clamp_(-self.qmax, self.qmax)


@dataclass(frozen=True)
class Pow2Quantizer(_Symmetric):
    """Symmetric per-tensor quantizer with a power-of-two step."""

    def exponent(self, x: torch.Tensor) -> int:
        return pow2_exponent(float(x.detach().abs().max()) if x.numel() else 0.0, self.bits)

    def quantize(self, x: torch.Tensor, exponent: int | None = None,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, int]:
        """(integer-valued codes in x's float dtype, exponent); saturates at +-qmax."""
        e = self.exponent(x) if exponent is None else int(exponent)
        return self.codes(x, 2.0**e, generator), e

    @staticmethod
    def dequantize(codes: torch.Tensor, exponent: int) -> torch.Tensor:
        return codes * 2.0**exponent

    def fake(self, x: torch.Tensor, exponent: int | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        codes, e = self.quantize(x, exponent, generator)
        return self.dequantize(codes, e)


@dataclass(frozen=True)
class SymmetricQuantizer(_Symmetric):
    """Symmetric per-tensor quantizer with a real step: `x ~ codes * step`, codes in [-qmax, qmax]."""

    def step(self, max_abs: float) -> float:
        """The step that puts max_abs on the largest code (1.0 for an all-zero tensor, whose codes are 0)."""
        if not math.isfinite(max_abs):
            raise ValueError(f"cannot choose a step for max |x| = {max_abs}")
        return max_abs / self.qmax if max_abs > 0 else 1.0

    def quantize(self, x: torch.Tensor, step: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """Integer-valued codes in x's float dtype; saturates at +-qmax."""
        return self.codes(x, step, generator)

    @staticmethod
    def dequantize(codes: torch.Tensor, step: float) -> torch.Tensor:
        return codes * step


@dataclass(frozen=True)
class AffineQuantizer:
    """Affine quantizer over a clipping range, signed codes [-2^(b-1), 2^(b-1) - 1]."""

    bits: int = 8
    rounding: Rounding = Rounding.NEAREST

    def __post_init__(self) -> None:
        _check_bits(self.bits)

    @property
    def qrange(self) -> tuple[int, int]:
        return -(2 ** (self.bits - 1)), 2 ** (self.bits - 1) - 1

    def params(self, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, integer zero point) of the range [lo, hi] widened to hold 0; a degenerate range
        (lo == hi == 0) gets scale 1 so that it encodes 0 exactly."""
        qmin, qmax = self.qrange
        lo, hi = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)
        scale = (hi - lo) / (qmax - qmin)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        zero = torch.clamp(round_with(qmin - lo / scale, Rounding.NEAREST), qmin, qmax)
        return scale, zero

    def quantize(self, x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        qmin, qmax = self.qrange
        return torch.clamp(round_with(x.detach() / scale, self.rounding, generator) + zero, qmin, qmax)

    @staticmethod
    def dequantize(codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
        return scale * (codes - zero)

    def fake(self, x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        scale, zero = self.params(lo, hi)
        return self.dequantize(self.quantize(x, scale, zero, generator), scale, zero)
