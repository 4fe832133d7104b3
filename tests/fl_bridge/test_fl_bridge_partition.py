"""LDA partitioning: sizes, reproducibility, heterogeneity against alpha, IID, client sampling."""

from __future__ import annotations

import numpy as np
import pytest

from fl_bridge.partition import histograms, lda_partition, sample_clients

LABELS = np.repeat(np.arange(10), 100)


def test_partitions_are_disjoint_equal_sized_and_reproducible():
    parts = lda_partition(LABELS, 8, 0.5, seed=3, per_client=100)
    assert [len(p) for p in parts] == [100] * 8
    flat = np.concatenate(parts)
    assert len(np.unique(flat)) == flat.size
    again = lda_partition(LABELS, 8, 0.5, seed=3, per_client=100)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other = lda_partition(LABELS, 8, 0.5, seed=4, per_client=100)
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other))


def test_histograms_follow_the_concentration():
    def mean_max_share(alpha: float) -> float:
        h = histograms(LABELS, lda_partition(LABELS, 10, alpha, seed=0), 10)
        assert h.sum() == LABELS.size and h.shape == (10, 10)
        return float((h.max(axis=1) / h.sum(axis=1)).mean())

    skewed, mild, iid = mean_max_share(0.1), mean_max_share(10.0), mean_max_share(float("inf"))
    assert skewed > 0.5 > mild
    assert iid < 0.25


def test_whole_split_is_used_by_default():
    parts = lda_partition(LABELS, 7, 1.0, seed=0)
    assert sum(len(p) for p in parts) == 7 * (LABELS.size // 7)


@pytest.mark.parametrize("clients,per_client,alpha", [(0, 10, 1.0), (20, 100, 1.0), (5, 10, 0.0)])
def test_bad_partition_requests(clients, per_client, alpha):
    with pytest.raises(ValueError):
        lda_partition(LABELS, clients, alpha, seed=0, per_client=per_client)


def test_client_sampling_is_seeded_per_round():
    r1 = sample_clients(20, 5, seed=0, server_round=1)
    assert r1 == sample_clients(20, 5, seed=0, server_round=1)
    assert len(set(r1)) == 5 and all(0 <= c < 20 for c in r1)
    assert any(sample_clients(20, 5, 0, r) != r1 for r in range(2, 6))
    with pytest.raises(ValueError):
        sample_clients(4, 5, 0, 1)
