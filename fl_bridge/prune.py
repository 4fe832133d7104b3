"""Magnitude pruning with one global threshold over a whole message (thesis section 4.2).

`threshold = sort(|w|)[int(N * rate)]` over every pruned tensor together; entries below it are
set to zero. Only tensors with ndim > 1 (conv and linear weights, LoRA factors) are pruned: the
1-D norm and bias vectors are tiny and are the first a global threshold would wipe out.
Stateless: no masks; pruned weights may regrow in the next local training.
"""

from __future__ import annotations

import numpy as np


def prunable(array: np.ndarray) -> bool:
    return array.ndim > 1


def global_threshold(arrays: dict[str, np.ndarray], rate: float) -> float:
    """The magnitude below which a fraction `rate` of the prunable entries lies."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"pruning rate must be in [0, 1) (got {rate})")
    mags = [np.abs(a).ravel() for a in arrays.values() if prunable(a)]
    if rate == 0.0 or not mags:
        return 0.0
    flat = np.concatenate(mags)
    k = int(flat.size * rate)
    return float(np.partition(flat, k)[k])


def prune(arrays: dict[str, np.ndarray], rate: float) -> dict[str, np.ndarray]:
    """A copy of `arrays` with every prunable entry of magnitude < the global threshold zeroed."""
    thr = global_threshold(arrays, rate)
    if thr == 0.0:
        return dict(arrays)
    return {n: np.where(np.abs(a) < thr, 0, a).astype(a.dtype) if prunable(a) else a for n, a in arrays.items()}


def sparsity(arrays: dict[str, np.ndarray]) -> float:
    """Fraction of zeros among the prunable entries."""
    sizes = [(a.size, int(np.count_nonzero(a == 0))) for a in arrays.values() if prunable(a)]
    total = sum(s for s, _ in sizes)
    return sum(z for _, z in sizes) / total if total else 0.0
