"""EASY's training criteria: rotation self-supervision of batch quarters and manifold-mixup CE."""

from __future__ import annotations

import torch
from torch.nn import functional as F

ROTATIONS = 4


def rotate_quarters(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split the batch into four consecutive quarters and rotate quarter k by k * 90 degrees
    (counter-clockwise); returns the rotated batch and the rotation labels 0..3 (int64).

    With a batch size not divisible by 4 the quarters are `torch.tensor_split`'s near-equal parts.
    """
    parts, labels = [], []
    for k, part in enumerate(torch.tensor_split(x, ROTATIONS, dim=0)):
        parts.append(torch.rot90(part, k, dims=(2, 3)))
        labels.append(torch.full((part.shape[0],), k, dtype=torch.long, device=x.device))
    return torch.cat(parts), torch.cat(labels)


def mixup_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, perm: torch.Tensor, lam: float) -> torch.Tensor:
    """lam * CE(logits, y) + (1 - lam) * CE(logits, y[perm]): the loss of a mixed batch."""
    return lam * F.cross_entropy(logits, labels) + (1.0 - lam) * F.cross_entropy(logits, labels[perm])


def beta22(gen: torch.Generator) -> float:
    """One draw of Beta(2, 2) from a torch Generator: X / (X + Y) with X, Y ~ Gamma(2, 1), each
    Gamma(2, 1) the sum of two Exp(1) draws (so the whole run's randomness is one generator)."""
    u = torch.rand(4, generator=gen, dtype=torch.float64).clamp_min(1e-12)
    x, y = -torch.log(u[0] * u[1]), -torch.log(u[2] * u[3])
    return float(x / (x + y))
