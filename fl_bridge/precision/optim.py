"""Optimiser steps that keep weights on their integer grid: `w = codes * 2^exponent`, the exponent
of each tensor fixed for the whole local training (NITI), codes saturating at +-qmax.

* `NITIUpdate` (Q-FedUpdate's Eq. 2): the gradient is shifted so that its largest magnitude has
  `eta` bits, `g_eta = round_s(g / 2^(ceil(log2 max|g|) - eta))`, then `codes -= g_eta`. `eta` is
  an integer "learning rate" in weight LSBs (at most 2^eta LSBs per step). Optional, both off by
  default as in the paper's Eq. 2: integer weight decay `decay_shift` = d > 0 adds
  `round_s(codes / 2^d)` to the step (a decay factor of 2^-d per step, in expectation, without a
  multiply), and NITI's integer momentum `momentum` = M in sixteenths:
  `m = clip(floor(m * M / 16) + step)`, `codes -= m` (m saturates at +-qmax like the codes).
* `GridSGD`: an ordinary SGD step (lr, momentum, weight decay) on the float value, then the new
  weight is rounded back onto its grid (stochastic rounding keeps sub-LSB steps in expectation).

The exponent of a tensor is chosen once from its values (`grid_exponent`); an all-zero tensor
(FLoCoRA's B factor at round 1) gets the exponent a default-initialised layer of its shape would
have (max |w| = 1/sqrt(fan_in), PyTorch's Kaiming-uniform bound for conv/linear weights).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from fl_bridge.precision.quantizers import Pow2Quantizer, pow2_exponent
from fl_bridge.precision.rounding import Rounding, round_with, stochastic_round


def ceil_log2(m: float) -> int:
    """ceil(log2 m) for m > 0, exact at powers of two."""
    mantissa, exponent = math.frexp(m)  # m = mantissa * 2^exponent, mantissa in [0.5, 1)
    return exponent - 1 if mantissa == 0.5 else exponent


def grid_exponent(w: torch.Tensor, bits: int) -> int:
    """The per-tensor exponent of `w` on a `bits` grid; for an all-zero tensor, that of a fresh layer."""
    max_abs = float(w.detach().abs().max()) if w.numel() else 0.0
    if max_abs == 0.0:
        fan_in = max(1, w[0].numel()) if w.dim() > 1 else 1
        max_abs = 1.0 / math.sqrt(fan_in)
    return pow2_exponent(max_abs, bits)


class _GridOptimizer(torch.optim.Optimizer):
    """Shared bookkeeping: each parameter's exponent, chosen at construction, and snapping."""

    def __init__(self, params: Iterable[torch.nn.Parameter], defaults: dict, bits: int,
                 generator: torch.Generator):
        super().__init__(params, defaults)
        self.quantizer, self.generator = Pow2Quantizer(bits, Rounding.NEAREST), generator
        self.exponents: dict[torch.nn.Parameter, int] = {}
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    e = grid_exponent(p, bits)
                    self.exponents[p] = e
                    p.copy_(self.quantizer.fake(p, e))  # already on the grid: unchanged

    def codes(self, p: torch.nn.Parameter) -> torch.Tensor:
        return torch.round(p.detach() * 2.0 ** (-self.exponents[p]))

    def _store(self, p: torch.nn.Parameter, codes: torch.Tensor) -> None:
        q = self.quantizer.qmax
        p.copy_(codes.clamp_(-q, q) * 2.0 ** self.exponents[p])


class NITIUpdate(_GridOptimizer):
    """`codes -= round_s(g >> (ceil(log2 max|g|) - eta))`, saturating (Q-FedUpdate Eq. 2); optional
    integer weight decay (`decay_shift`) and NITI's integer momentum (`momentum`, in sixteenths)."""

    def __init__(self, params: Iterable[torch.nn.Parameter], eta: int, generator: torch.Generator, bits: int = 8,
                 rounding: Rounding = Rounding.STOCHASTIC, momentum: int = 0, decay_shift: int = 0):
        if eta < 0:
            raise ValueError(f"eta must be >= 0 (got {eta})")
        if not 0 <= momentum < 16:
            raise ValueError(f"integer momentum is in sixteenths, 0..15 (got {momentum})")
        if decay_shift < 0:
            raise ValueError(f"decay shift must be >= 0, 0 = no weight decay (got {decay_shift})")
        super().__init__(params, {"eta": eta}, bits, generator)
        self.rounding, self.momentum, self.decay_shift = rounding, momentum, decay_shift

    @staticmethod
    def shift_of(grad: torch.Tensor, eta: int) -> int | None:
        """The right shift that leaves max|g| with `eta` bits (None for an all-zero gradient)."""
        m = float(grad.abs().max())
        return None if m == 0 or not math.isfinite(m) else ceil_log2(m) - eta

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - torch's signature
        q = self.quantizer.qmax
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                shift = self.shift_of(p.grad, group["eta"])
                if shift is None and not self.decay_shift:
                    continue
                codes = self.codes(p).to(torch.float64)
                step = torch.zeros_like(codes) if shift is None else \
                    round_with(p.grad.to(torch.float64) * 2.0 ** (-shift), self.rounding, self.generator)
                if self.decay_shift:
                    step += round_with(codes * 2.0 ** (-self.decay_shift), self.rounding, self.generator)
                if self.momentum:
                    buf = self.state[p].get("momentum")
                    carried = torch.zeros_like(codes) if buf is None else torch.floor(buf * self.momentum / 16)
                    step = self.state[p]["momentum"] = (carried + step).clamp_(-q, q)
                self._store(p, (codes - step).to(p.dtype))


class GridSGD(_GridOptimizer):
    """SGD (momentum, Nesterov, weight decay) on the float value, then stochastic rounding onto the grid."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, generator: torch.Generator,
                 momentum: float = 0.0, weight_decay: float = 0.0, bits: int = 8):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay}, bits, generator)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                if group["momentum"] > 0:
                    buf = self.state[p].setdefault("momentum", torch.zeros_like(p))
                    buf.mul_(group["momentum"]).add_(g)
                    g = g + group["momentum"] * buf  # Nesterov
                target = p - group["lr"] * g
                self._store(p, stochastic_round(target * 2.0 ** (-self.exponents[p]), self.generator))


class Optimizers:
    """Several optimisers stepped together (grid weights + float 1-D parameters)."""

    def __init__(self, *optimizers: torch.optim.Optimizer):
        self.optimizers = optimizers

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.optimizers:
            o.step()
