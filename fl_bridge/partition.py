"""Non-IID partitioning of a labelled split among clients: FLoCoRA's LDA (Dirichlet) procedure.

Every client gets the same number of samples. Client p draws a class distribution from
Dir(alpha * 1_C); then, for each of its samples, a class c from that distribution (an epsilon
floor on every non-exhausted class, zero on exhausted ones, renormalised) and takes the last
remaining sample of c. alpha = inf gives an IID split. One `np.random.Generator(seed)` drives
every draw, so a seed reproduces the partition exactly.
"""

from __future__ import annotations

import math

import numpy as np

EPSILON = 1e-5


def _iid(labels: np.ndarray, num_clients: int, per_client: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(labels.size)[: num_clients * per_client]
    return [np.sort(part) for part in order.reshape(num_clients, per_client)]


def lda_partition(
    labels: np.ndarray, num_clients: int, alpha: float, seed: int, per_client: int | None = None
) -> list[np.ndarray]:
    """Indices of `labels` for each client (`per_client` each, default an equal share of all)."""
    labels = np.asarray(labels)
    if num_clients < 1:
        raise ValueError("the number of clients must be >= 1")
    per_client = labels.size // num_clients if per_client is None else per_client
    if per_client < 1 or per_client * num_clients > labels.size:
        raise ValueError(f"{num_clients} clients x {per_client} samples do not fit in {labels.size} samples")
    if not alpha > 0:
        raise ValueError(f"Dirichlet concentration alpha must be > 0 or inf (got {alpha})")
    rng = np.random.default_rng(seed)
    if math.isinf(alpha):
        return _iid(labels, num_clients, per_client, rng)
    classes = np.unique(labels)
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in classes]
    priors = rng.dirichlet(np.full(classes.size, alpha), size=num_clients)
    parts = []
    for p in range(num_clients):
        open_ = np.array([len(pool) > 0 for pool in pools])
        dist = np.where(open_, priors[p] + EPSILON, 0.0)
        dist /= dist.sum()
        taken = []
        for _ in range(per_client):
            c = int(rng.choice(classes.size, p=dist))
            taken.append(pools[c].pop())
            if not pools[c] and dist.sum() > dist[c]:
                dist[c] = 0.0
                dist /= dist.sum()
        parts.append(np.sort(np.array(taken, dtype=np.int64)))
    return parts


def histograms(labels: np.ndarray, parts: list[np.ndarray], num_classes: int) -> np.ndarray:
    """(clients, classes) matrix of sample counts."""
    labels = np.asarray(labels)
    return np.stack([np.bincount(labels[idx], minlength=num_classes) for idx in parts])


def sample_clients(num_clients: int, per_round: int, seed: int, server_round: int) -> list[int]:
    """The clients (partition ids) that train in `server_round`, reproducible from the seed."""
    if not 1 <= per_round <= num_clients:
        raise ValueError(f"clients per round must be in 1..{num_clients} (got {per_round})")
    rng = np.random.default_rng([seed, server_round])
    return sorted(int(c) for c in rng.choice(num_clients, size=per_round, replace=False))
