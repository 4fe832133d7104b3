"""Rounding of real values onto an integer grid: round-to-nearest (half away from zero) and
unbiased stochastic rounding driven by an explicit `torch.Generator` (one per client, seeded, so
a run is reproducible and clients draw independent noise).

`stochastic_round(x)` returns floor(x) + Bernoulli(x - floor(x)): E[result] = x exactly.
`shift_round(a, k)` divides integer-valued tensors by 2^k with either rule (NITI's right shift).
"""

from __future__ import annotations

from enum import Enum

import torch


class Rounding(str, Enum):
    NEAREST = "nearest"
    STOCHASTIC = "stochastic"


def round_nearest(x: torch.Tensor) -> torch.Tensor:
    """Round half away from zero (not torch.round's half-to-even: integer hardware rounds this way)."""
    return torch.sign(x) * torch.floor(torch.abs(x) + 0.5)


def stochastic_round(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """floor(x) + 1 with probability frac(x): unbiased, E = x."""
    low = torch.floor(x)
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return low + (noise < (x - low)).to(x.dtype)


def round_with(x: torch.Tensor, mode: Rounding, generator: torch.Generator | None = None) -> torch.Tensor:
    if mode == Rounding.STOCHASTIC:
        if generator is None:
            raise ValueError("stochastic rounding needs a seeded torch.Generator")
        return stochastic_round(x, generator)
    return round_nearest(x)


def shift_round(a: torch.Tensor, k: int, mode: Rounding, generator: torch.Generator | None = None) -> torch.Tensor:
    """`a / 2^k` rounded to an integer (k >= 0; k = 0 returns `a`); `a` holds integers (any dtype)."""
    if k <= 0:
        return a.clone()
    scaled = a.to(torch.float64) / float(2**k)  # exact: a power-of-two division of integers < 2^53
    return round_with(scaled, mode, generator).to(a.dtype)
