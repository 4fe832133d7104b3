"""FedMPQ's aggregation (the paper's Eq. 15): every reply dequantized to float, averaged with
p_n = v_n |D_n| / sum_i v_i |D_i| over the round's participants (high-budget, data-rich clients
weigh more; the baselines use p_n = |D_n| / sum |D_i|), and the real-valued consensus bit
allocation b = sum_n p_n b_n, rounded to the nearest integer (halves up) before Alg. 2."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def aggregation_weights(budgets: Sequence[float], examples: Sequence[int], by_budget: bool = True) -> np.ndarray:
    """p_n for the participants, summing to 1."""
    raw = np.asarray(examples, dtype=np.float64) * (np.asarray(budgets, dtype=np.float64) if by_budget else 1.0)
    if raw.size == 0 or raw.sum() <= 0:
        raise ValueError("aggregation needs at least one participant with examples")
    return raw / raw.sum()


def weighted_average(models: Sequence[dict[str, np.ndarray]], weights: np.ndarray) -> dict[str, np.ndarray]:
    """sum_n p_n W_n per tensor (float64 accumulation, float32 result)."""
    return {name: sum(w * m[name].astype(np.float64) for m, w in zip(models, weights)).astype(np.float32)
            for name in models[0]}


def consensus_bits(bits: Sequence[Sequence[int]], weights: np.ndarray) -> tuple[list[float], list[int]]:
    """(sum_n p_n b_n per layer, rounded to the nearest integer, halves up)."""
    real = (np.asarray(bits, dtype=np.float64) * weights[:, None]).sum(axis=0)
    return real.tolist(), [int(np.floor(x + 0.5)) for x in real]
