"""ME processing, episode sampling, NCM and the confidence interval."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from train.fewshot import FewShotError, evaluate_fewshot, fewshot_scores, me_process, ncm_accuracy, sample_episodes


def test_me_centres_then_normalises():
    feats = torch.tensor([[3.0, 4.0], [1.0, 1.0]])
    out = me_process(feats, torch.tensor([1.0, 1.0]))
    assert torch.allclose(out[0], torch.tensor([2.0, 3.0]) / math.sqrt(13))
    assert torch.allclose(out.norm(dim=1)[0], torch.tensor(1.0))
    assert torch.allclose(me_process(feats, None)[0], torch.tensor([0.6, 0.8]))


def test_episodes_distinct_classes_and_samples():
    labels = torch.arange(10).repeat_interleave(7)
    labels = torch.cat([labels, torch.full((3,), 10)])  # class 10 is too small to be drawn
    idx = sample_episodes(labels, ways=5, per_class=6, episodes=200, gen=torch.Generator().manual_seed(1))
    assert idx.shape == (200, 5, 6)
    lab = labels[idx]
    assert (lab == lab[:, :, :1]).all()  # one class per row
    assert all(len(set(e[:, 0].tolist())) == 5 for e in lab)  # distinct classes
    assert all(len(set(r.tolist())) == 6 for r in idx.reshape(-1, 6))  # distinct samples
    assert 10 not in lab.unique().tolist()
    assert set(lab.unique().tolist()) == set(range(10))  # every eligible class is drawn
    with pytest.raises(FewShotError, match="need 5 classes"):
        sample_episodes(labels, ways=5, per_class=8, episodes=1, gen=torch.Generator())


def test_ncm_against_a_loop():
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(60, 8, generator=gen)
    labels = torch.arange(6).repeat_interleave(10)
    idx = sample_episodes(labels, 3, 4, 20, gen)
    acc = ncm_accuracy(feats, idx, shots=2)
    for e in range(20):
        protos = torch.stack([feats[idx[e, w, :2]].mean(0) for w in range(3)])
        right = sum(int(torch.argmin(((protos - feats[idx[e, w, q]]) ** 2).sum(1))) == w
                    for w in range(3) for q in range(2, 4))
        assert acc[e].item() == pytest.approx(right / 6)


def test_evaluate_separable_features_and_ci():
    labels = np.repeat(np.arange(8), 20)
    feats = torch.eye(8)[labels] * 5 + 0.01 * torch.randn(160, 8, generator=torch.Generator().manual_seed(0))
    res = evaluate_fewshot(feats, torch.as_tensor(labels), feats.mean(0), ways=5, shots=1, queries=5, episodes=100)
    assert res.accuracy == 1.0 and res.ci95 == 0.0 and res.episodes == 100
    mean, ci = res[:2]
    noise = torch.randn(160, 8, generator=torch.Generator().manual_seed(1))
    chance = evaluate_fewshot(noise, labels, None, ways=4, shots=1, queries=5, episodes=400, seed=3)
    assert abs(chance.accuracy - 0.25) < 4 * chance.ci95 + 0.02 and 0 < chance.ci95 < 0.05
    again = evaluate_fewshot(noise, labels, None, ways=4, shots=1, queries=5, episodes=400, seed=3)
    assert again == chance


def test_scores_are_evaluate_fewshot_per_shot_count():
    gen = torch.Generator().manual_seed(0)
    labels = np.repeat(np.arange(6), 25)
    features = torch.randn(len(labels), 8, generator=gen) + torch.from_numpy(labels).float()[:, None] * 0.3
    base_mean = features.mean(0)
    scores = fewshot_scores(features, labels, base_mean, (1, 5), ways=5, queries=10, episodes=40, seed=3,
                            prefix="fewshot_")
    assert sorted(scores) == ["fewshot_1shot", "fewshot_1shot_ci95", "fewshot_5shot", "fewshot_5shot_ci95"]
    for k in (1, 5):
        r = evaluate_fewshot(features, labels, base_mean, ways=5, shots=k, queries=10, episodes=40, seed=3)
        assert (scores[f"fewshot_{k}shot"], scores[f"fewshot_{k}shot_ci95"]) == (r.accuracy, r.ci95)
    assert scores["fewshot_5shot"] != scores["fewshot_1shot"]
