"""Cosine annealing per step with warm restarts whose peak decays by `gamma` each cycle (EASY)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class CosineRestarts:
    """lr(step) = base_lr * gamma**cycle * (1 + cos(pi * t / cycle_steps)) / 2, t = step within
    the cycle; the lr reaches 0 at the end of each cycle, then restarts at the decayed peak."""

    base_lr: float
    cycle_steps: int
    gamma: float = 0.9

    def __post_init__(self) -> None:
        if self.cycle_steps < 1:
            raise ValueError("a cosine cycle needs at least one step")

    def cycle(self, step: int) -> int:
        return step // self.cycle_steps

    def is_restart(self, step: int) -> bool:
        """True at the first step of every cycle after the first (momentum is reset there)."""
        return step > 0 and step % self.cycle_steps == 0

    def lr(self, step: int) -> float:
        t = step % self.cycle_steps
        peak = self.base_lr * self.gamma ** self.cycle(step)
        return peak * 0.5 * (1.0 + math.cos(math.pi * t / self.cycle_steps))
