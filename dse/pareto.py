"""The accuracy/latency Pareto front and the choice of a point under a frame-rate budget."""

from __future__ import annotations

from typing import Sequence


def accuracy_key(rows: Sequence[dict], shots: int = 1) -> str:
    """The accuracy a sweep is judged on: fixed point (what the board computes) when measured."""
    fixed = f"fixed_{shots}shot"
    return fixed if rows and all(r.get(fixed) is not None for r in rows) else f"float_{shots}shot"


def pareto_front(rows: Sequence[dict], acc: str, latency: str = "latency_ms") -> list[dict]:
    """Rows no other row beats (lower or equal latency and higher or equal accuracy, one strictly),
    sorted by latency. Equal rows are all kept."""
    def dominated(r: dict) -> bool:
        return any(o[latency] <= r[latency] and o[acc] >= r[acc] and (o[latency] < r[latency] or o[acc] > r[acc])
                   for o in rows)

    return sorted((r for r in rows if not dominated(r)), key=lambda r: (r[latency], -r[acc]))


def budget_ms(fps: float) -> float:
    """Backbone time per frame allowed by a frame rate."""
    return 1e3 / fps


def pick(rows: Sequence[dict], fps: float, acc: str, require_fit: bool = True) -> dict | None:
    """The most accurate row within the budget (ties: the faster), or None."""
    ok = [r for r in rows if r["latency_ms"] <= budget_ms(fps) and (r.get("fits") or not require_fit)]
    return max(ok, key=lambda r: (r[acc], -r["latency_ms"])) if ok else None
