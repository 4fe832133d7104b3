"""Rounding of real values onto an integer grid: round-to-nearest (half away from zero) and
unbiased stochastic rounding driven by an explicit `torch.Generator` (one per client, seeded, so
a run is reproducible and clients draw independent noise).

`stochastic_round(x)` returns floor(x) + Bernoulli(x - floor(x)): E[result] = x exactly.
`shift_round(a, k)` divides an integer tensor by 2^k in integer arithmetic with either rule
(NITI's right shift): nearest = sign(a) * ((|a| + 2^(k-1)) >> k), stochastic = (a + r) >> k with r
uniform in [0, 2^k) (floor shift; unbiased).
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
    """`a / 2^k` rounded to an integer, in int64 arithmetic; k <= 0 shifts left (exact)."""
    if a.is_floating_point():
        raise TypeError("shift_round works on integer tensors")
    a = a.to(torch.int64)
    if k <= 0:
        return a * (1 << -k)
    if mode == Rounding.STOCHASTIC:
        if generator is None:
            raise ValueError("stochastic rounding needs a seeded torch.Generator")
        r = torch.randint(0, 1 << k, a.shape, generator=generator, dtype=torch.int64)
        return torch.div(a + r, 1 << k, rounding_mode="floor")
    return torch.sign(a) * torch.div(a.abs() + (1 << (k - 1)), 1 << k, rounding_mode="floor")
