"""Few-shot evaluation as EASY does it: features -> `ME` processing -> NCM over random episodes.

Accuracies are fractions in [0, 1]; `ci95` is the half-width of the 95% normal confidence
interval of the mean over episodes (1.96 * std / sqrt(episodes)).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from train.augment import to_input
from train.checkpoint import Preprocessing

if TYPE_CHECKING:
    from train.datasets import ImageSplit

EPISODE_BATCH = 250


class FewShotError(ValueError):
    """An episode setting the data cannot satisfy (too few classes or samples per class)."""


class FewShotResult(NamedTuple):
    """Mean accuracy (fraction in [0, 1]) and 95% CI half-width over `episodes` episodes."""

    accuracy: float
    ci95: float
    episodes: int = 0


@torch.no_grad()
def extract_features(model: nn.Module, images: "np.ndarray | torch.Tensor | ImageSplit", pre: Preprocessing,
                     batch_size: int = 256, device: str | torch.device = "cpu") -> torch.Tensor:
    """Features (N, D) float32 on the CPU of uint8 NCHW images (or an ImageSplit's images),
    in eval mode, batched."""
    images = getattr(images, "images", images)
    was_training = model.training
    model.eval()
    out = [model(to_input(images[i : i + batch_size], pre, device)).float().cpu()
           for i in range(0, len(images), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, getattr(model, "feature_dim", 0))


def me_process(features: torch.Tensor, base_mean: torch.Tensor | None) -> torch.Tensor:
    """EASY's `ME`: subtract the base-class mean (when given), then L2-normalise each row."""
    x = features.float()
    if base_mean is not None:
        x = x - base_mean.to(x).view(1, -1)
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def sample_episodes(labels: torch.Tensor, ways: int, per_class: int, episodes: int,
                    gen: torch.Generator) -> torch.Tensor:
    """Indices (episodes, ways, per_class) into `labels`: `ways` distinct classes per episode,
    `per_class` distinct samples of each, uniformly at random (classes with too few samples
    are never drawn)."""
    labels = torch.as_tensor(labels, dtype=torch.long)
    classes, counts = torch.unique(labels, return_counts=True)
    eligible = classes[counts >= per_class]
    if len(eligible) < ways:
        raise FewShotError(f"{ways}-way episodes with {per_class} images per class need {ways} classes "
                           f"with that many images; the split has {len(eligible)}")
    members = [torch.nonzero(labels == c).flatten() for c in eligible]
    longest = max(len(m) for m in members)
    table = torch.full((len(members), longest), -1, dtype=torch.long)
    for i, m in enumerate(members):
        table[i, : len(m)] = m
    sizes = torch.tensor([len(m) for m in members])
    chosen = torch.rand(episodes, len(members), generator=gen).argsort(dim=1)[:, :ways]  # (E, W)
    keys = torch.rand(episodes, ways, longest, generator=gen)
    keys = keys.masked_fill(torch.arange(longest).view(1, 1, -1) >= sizes[chosen].unsqueeze(-1), 2.0)
    slots = keys.argsort(dim=2)[:, :, :per_class]  # random distinct valid positions
    return table[chosen.unsqueeze(-1), slots]


def ncm_accuracy(features: torch.Tensor, episodes: torch.Tensor, shots: int) -> torch.Tensor:
    """Per-episode NCM accuracy: class means of the first `shots` samples, Euclidean argmin
    for the rest. `features` already processed; `episodes` (E, W, shots + queries)."""
    x = features[episodes]  # (E, W, S+Q, D)
    protos = x[:, :, :shots].mean(dim=2)  # (E, W, D)
    queries = x[:, :, shots:]  # (E, W, Q, D)
    e, w, q, d = queries.shape
    dist = torch.cdist(queries.reshape(e, w * q, d), protos)  # (E, W*Q, W)
    truth = torch.arange(w).repeat_interleave(q).view(1, -1)
    return (dist.argmin(dim=2) == truth).float().mean(dim=1)


def evaluate_fewshot(features: torch.Tensor, labels: torch.Tensor | np.ndarray, base_mean: torch.Tensor | None,
                     ways: int = 5, shots: int = 1, queries: int = 15, episodes: int = 2000,
                     seed: int = 0) -> FewShotResult:
    """NCM accuracy over seeded random episodes on raw backbone `features` (N, D) with their
    class `labels`; `ME` processing with `base_mean` is applied here (None: only L2)."""
    if min(ways, shots, queries, episodes) < 1:
        raise FewShotError("ways, shots, queries and episodes must all be at least 1")
    processed = me_process(torch.as_tensor(features), base_mean)
    gen = torch.Generator().manual_seed(seed)
    accs = []
    for start in range(0, episodes, EPISODE_BATCH):
        idx = sample_episodes(labels, ways, shots + queries, min(EPISODE_BATCH, episodes - start), gen)
        accs.append(ncm_accuracy(processed, idx, shots))
    acc = torch.cat(accs).double()
    std = float(acc.std(unbiased=True)) if episodes > 1 else 0.0
    return FewShotResult(float(acc.mean()), 1.96 * std / math.sqrt(episodes), episodes)


def fewshot_scores(features: torch.Tensor, labels: torch.Tensor | np.ndarray, base_mean: torch.Tensor | None,
                   shots: Sequence[int], ways: int = 5, queries: int = 15, episodes: int = 2000, seed: int = 0,
                   prefix: str = "") -> dict[str, float]:
    """`evaluate_fewshot` for every shot count, as {f"{prefix}{k}shot": accuracy, f"{prefix}{k}shot_ci95": ci}."""
    out: dict[str, float] = {}
    for k in shots:
        r = evaluate_fewshot(features, labels, base_mean, ways=ways, shots=k, queries=queries, episodes=episodes,
                             seed=seed)
        out[f"{prefix}{k}shot"], out[f"{prefix}{k}shot_ci95"] = r.accuracy, r.ci95
    return out
