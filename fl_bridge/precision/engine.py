"""The INT8 client training engine used by Q-FedUpdate / Q-FedAvg (fast: INT8 storage,
fake-quantized compute).

Weights of every trained conv/linear tensor live on a power-of-two INT8 grid (exponent fixed for
the round); each conv/linear layer quantizes its input activation (per-tensor exponent of the
batch, round to nearest) and the error at its output in backward (stochastic rounding); the
grid weights are updated by `NITIUpdate` (or `GridSGD`). Float32 remains in the 1-D parameters
(BatchNorm affine, biases), trained with SGD, and in BatchNorm's arithmetic: the engine is
"hybrid", not integer-only (NITI has no BatchNorm). Frozen weights (FLoCoRA's base) are rounded
onto their INT8 grid once (`snap_frozen`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fl_bridge.precision.fakequant import LayerPrecision
from fl_bridge.precision.optim import GridSGD, NITIUpdate, Optimizers, grid_exponent
from fl_bridge.precision.quantizers import Pow2Quantizer
from fl_bridge.precision.rounding import Rounding

UPDATES = ("niti", "sgd")


@dataclass(frozen=True)
class Int8Training:
    """How a client trains in low precision (sent to clients inside each task)."""

    bits: int = 8
    update: str = "niti"  # niti: Eq. 2 integer update with `eta`; sgd: SGD then stochastic rounding
    eta: int = 3
    act_rounding: str = Rounding.NEAREST.value
    error_rounding: str = Rounding.STOCHASTIC.value
    # lower precisions of the forward weights, activations and errors (HaLo-FL's bw, ba, be);
    # None = `bits` for activations and errors, and the stored grid weights as they are
    weight_bits: int | None = None
    act_bits: int | None = None
    error_bits: int | None = None
    # niti only, both off by default as in the paper's Eq. 2 (`optim.NITIUpdate`)
    momentum: int = 0  # NITI's integer momentum, in sixteenths
    decay_shift: int = 0  # integer weight decay: round(codes / 2^d) more per step

    def check(self) -> "Int8Training":
        if self.update not in UPDATES:
            raise ValueError(f"grid update must be one of {', '.join(UPDATES)} (got {self.update!r})")
        if not 0 <= self.eta <= 7:
            raise ValueError(f"eta (bits of the integer weight update) must be in 0..7 (got {self.eta})")
        for bits in (self.bits, self.weight_bits, self.act_bits, self.error_bits):
            if bits is not None:
                Pow2Quantizer(bits)  # raises for unsupported bits
        for mode in (self.act_rounding, self.error_rounding):
            Rounding(mode)  # raises for an unknown rounding
        if not 0 <= self.momentum <= 15 or self.decay_shift < 0:
            raise ValueError(f"integer momentum must be in 0..15 sixteenths and the decay shift >= 0 "
                             f"(got {self.momentum}, {self.decay_shift})")
        return self

    def layers(self) -> LayerPrecision:
        """Activations and errors at `bits` (or `act_bits`, `error_bits`); weights as stored on
        their grid, or fake-quantized to `weight_bits` (round to nearest, STE) in the forward pass."""
        return LayerPrecision(self.weight_bits, self.act_bits or self.bits, self.error_bits or self.bits,
                              Rounding(self.act_rounding), Rounding(self.error_rounding))


def parse_eta_schedule(text: str) -> list[tuple[int, int]]:
    """`"ROUND:ETA,..."` (e.g. `"1:5,11:4,16:3"`, NITI's decay 5 -> 4 -> 3) as sorted (round, eta)
    pairs; "" = no schedule. ValueError for a malformed one."""
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            rnd, eta = (int(v) for v in item.split(":"))
        except ValueError:
            raise ValueError(f"eta schedule {text!r}: each item is ROUND:ETA with integers (got {item!r})") from None
        if rnd < 1 or not 0 <= eta <= 7:
            raise ValueError(f"eta schedule {text!r}: rounds start at 1 and eta is in 0..7 (got {item!r})")
        pairs.append((rnd, eta))
    if len({r for r, _ in pairs}) != len(pairs):
        raise ValueError(f"eta schedule {text!r}: a round appears twice")
    return sorted(pairs)


def eta_for_round(schedule: str, default: int, server_round: int) -> int:
    """The eta of `server_round`: that of the last schedule item at or before it, else `default`."""
    eta = default
    for rnd, value in parse_eta_schedule(schedule):
        if rnd <= server_round:
            eta = value
    return eta


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(trained tensors with ndim > 1: on the integer grid, other trained parameters: float32)."""
    trained = [p for p in model.parameters() if p.requires_grad]
    return [p for p in trained if p.dim() > 1], [p for p in trained if p.dim() <= 1]


def make_optimizer(model: nn.Module, cfg: Int8Training, lr: float, momentum: float, weight_decay: float,
                   generator: torch.Generator) -> Optimizers:
    """Grid optimiser for the weight tensors + float SGD (Nesterov) for the 1-D parameters."""
    grid, flat = split_parameters(model)
    if cfg.update == "niti":
        grid_opt: torch.optim.Optimizer = NITIUpdate(grid, cfg.eta, generator, cfg.bits, momentum=cfg.momentum,
                                                     decay_shift=cfg.decay_shift)
    else:
        grid_opt = GridSGD(grid, lr, generator, momentum, weight_decay, cfg.bits)
    opts: list[torch.optim.Optimizer] = [grid_opt]
    if flat:
        opts.append(torch.optim.SGD(flat, lr=lr, momentum=momentum, weight_decay=weight_decay,
                                    nesterov=momentum > 0))
    return Optimizers(*opts)


@torch.no_grad()
def snap_frozen(model: nn.Module, bits: int) -> None:
    """Round every frozen weight tensor (ndim > 1) onto its power-of-two grid, in place."""
    q = Pow2Quantizer(bits)
    for p in model.parameters():
        if not p.requires_grad and p.dim() > 1:
            p.copy_(q.fake(p, grid_exponent(p, bits)))
