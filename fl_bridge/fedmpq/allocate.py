"""FedMPQ's server-side bit re-allocation (the paper's Alg. 2, "pruning-growing"), usable outside
federated training: given a starting per-layer allocation b, the bits each layer lost to MSB pruning
(`pruned`), the layers' parameter counts m and an average budget v, return per-layer bits whose
parameter-weighted mean b.m/|m| meets v.

Layers are ranked by m * (pruned + 1), descending (a stable sort: ties keep layer order). Pruning
takes bits from the first-ranked layer down to `b_min` before touching the next, while the mean is
above v; growing adds bits to the last-ranked layers up to `b_max`, walking back, while the mean is
below v.

* `literal`: the paper's loops exactly: growing stops on the first mean >= v, so it can overshoot v
  by up to one layer's increment, and the first-ranked layer is never grown (`cur > 0`).
* `strict`: never over budget: a layer grows only if the mean stays <= v (the walk continues with
  smaller layers), and the first-ranked layer may grow too. If even `b_min` everywhere is over v,
  the budget cannot be met and `ValueError` is raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MODES = ("literal", "strict")


def average_bits(bits: Sequence[int], m: Sequence[int]) -> float:
    """Parameter-weighted mean bits b.m / |m|_1."""
    return sum(b * n for b, n in zip(bits, m)) / sum(m)


def ranking(m: Sequence[int], pruned: Sequence[int]) -> list[int]:
    """Layer indices sorted by m * (pruned + 1), descending, ties in layer order."""
    return sorted(range(len(m)), key=lambda i: -m[i] * (pruned[i] + 1))


@dataclass(frozen=True)
class Allocator:
    mode: str = "literal"
    b_min: int = 1
    b_max: int = 8

    def check(self) -> "Allocator":
        if self.mode not in MODES:
            raise ValueError(f"allocation mode must be one of {', '.join(MODES)} (got {self.mode!r})")
        if not 1 <= self.b_min <= self.b_max:
            raise ValueError(f"bit bounds must satisfy 1 <= b_min <= b_max (got {self.b_min}, {self.b_max})")
        return self

    def __call__(self, bits: Sequence[int], pruned: Sequence[int], m: Sequence[int], budget: float) -> list[int]:
        self.check()
        if not len(bits) == len(pruned) == len(m) or not m:
            raise ValueError("bits, pruned and m must have one entry per layer")
        bits = [min(max(int(b), self.b_min), self.b_max) for b in bits]
        order = ranking(m, pruned)
        return (self._literal if self.mode == "literal" else self._strict)(bits, order, m, budget)

    def _literal(self, b: list[int], d: list[int], m: Sequence[int], v_n: float) -> list[int]:
        total = sum(m)
        v = average_bits(b, m)
        cur = 0
        while v > v_n and cur < len(m):
            layer = d[cur]
            if b[layer] > self.b_min:
                b[layer] -= 1
                v -= m[layer] / total
            else:
                cur += 1
        cur = len(m) - 1
        while v < v_n and cur > 0:
            layer = d[cur]
            if b[layer] < self.b_max:
                b[layer] += 1
                v += m[layer] / total
            else:
                cur -= 1
        return b

    def _strict(self, b: list[int], d: list[int], m: Sequence[int], v_n: float) -> list[int]:
        total = sum(m)
        limit = v_n * total  # budget in bits; integer sums, no drift
        if self.b_min * total > limit + 1e-9:
            raise ValueError(f"budget {v_n} is below {self.b_min} bits per weight: it cannot be met")
        used = sum(bi * n for bi, n in zip(b, m))
        cur = 0
        while used > limit + 1e-9 and cur < len(m):
            layer = d[cur]
            if b[layer] > self.b_min:
                b[layer] -= 1
                used -= m[layer]
            else:
                cur += 1
        for layer in reversed(d):  # growing: smallest-ranked first, each as far as the budget allows
            while b[layer] < self.b_max and used + m[layer] <= limit + 1e-9:
                b[layer] += 1
                used += m[layer]
        return b
