"""HaLo-PS, the paper's precision selector (Alg. 1): each client walks down the precision tree
(bw, ba, be) one `step`-bit reduction at a time, taking among the three children the one with the
lowest modelled cost of its constrained metric (energy, latency or area); floors per dimension
are never crossed; ties (equal costs) go to the first dimension of `tie_break`. Unconstrained
clients keep their precision. When a step happens is `StepRule`'s business (the paper leaves it
open)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fl_bridge.halo.costs import METRICS, CostModel, Precision

DIMENSIONS = ("bw", "ba", "be")
CONSTRAINTS = (*METRICS, "none")
STEP_RULES = ("every-k", "every-round")
COST_DIGITS = 12  # costs equal to this many significant digits are ties


def children(precision: Precision, step: int, floors: Precision) -> dict[str, Precision]:
    """The reductions of one dimension by `step` bits that stay at or above the floors."""
    out = {}
    for i, dim in enumerate(DIMENSIONS):
        child = tuple(b - step if j == i else b for j, b in enumerate(precision))
        if child[i] >= floors[i]:
            out[dim] = child
    return out


def _key(value: float) -> float:
    return float(f"{value:.{COST_DIGITS}g}")


def select(precision: Precision, constraint: str, model: CostModel, step: int, floors: Precision,
           tie_break: tuple[str, ...] = ("be", "ba", "bw")) -> Precision:
    """One HaLo-PS step: the child with the lowest cost of `constraint` (ties: `tie_break` order);
    the precision itself for an unconstrained client or when every dimension is at its floor."""
    options = children(precision, step, floors)
    if constraint == "none" or not options:
        return precision
    return min(options.items(), key=lambda kv: (_key(model.cost(kv[1])[constraint]), tie_break.index(kv[0])))[1]


@dataclass(frozen=True)
class StepRule:
    """When clients step down: `every-round` (Alg. 1 read literally: before every round's training
    from round 2 on) or `every-k` (before rounds K+1, 2K+1, ...; K = 0 means ceil(rounds / 3))."""

    rule: str = "every-k"
    every: int = 0
    rounds: int = 100

    @property
    def k(self) -> int:
        if self.rule == "every-round":
            return 1
        return self.every or max(1, math.ceil(self.rounds / 3))

    def steps_before(self, rnd: int) -> bool:
        return rnd > 1 and (rnd - 1) % self.k == 0


def paths(start: Precision, constraints: list[str], model: CostModel, rule: StepRule, step: int, floors: Precision,
          tie_break: tuple[str, ...], rounds: int) -> list[list[Precision]]:
    """Every client's precision in rounds 1..rounds (list per client)."""
    out = []
    for constraint in constraints:
        p, path = start, []
        for rnd in range(1, rounds + 1):
            if rule.steps_before(rnd):
                p = select(p, constraint, model, step, floors, tie_break)
            path.append(p)
        out.append(path)
    return out
