"""The cosine-with-restarts schedule and the batched augmentations."""

from __future__ import annotations

import math

import pytest
import torch

from train.augment import Augment, AugmentConfig, color_jitter, random_flip, random_resized_crop, to_input
from train.checkpoint import Preprocessing
from train.schedule import CosineRestarts


def test_peaks_decay_by_gamma_and_cosine_per_step():
    s = CosineRestarts(base_lr=0.1, cycle_steps=10, gamma=0.9)
    assert [s.lr(c * 10) for c in range(3)] == pytest.approx([0.1, 0.09, 0.081])
    within = [s.lr(t) for t in range(10, 20)]
    assert all(a > b for a, b in zip(within, within[1:]))  # decreases every step
    assert s.lr(15) == pytest.approx(0.09 * 0.5)
    assert s.lr(13) == pytest.approx(0.09 * 0.5 * (1 + math.cos(math.pi * 0.3)))
    assert [s.is_restart(t) for t in (0, 9, 10, 20)] == [False, False, True, True]


def test_identity_crop_is_identity():
    x = torch.rand(3, 3, 12, 12)
    out = random_resized_crop(x, (1.0, 1.0), (1.0, 1.0), torch.Generator().manual_seed(0))
    assert torch.allclose(out, x, atol=1e-5)


def test_crop_zooms_in():
    x = torch.zeros(1, 1, 16, 16)
    x[..., 4:12, 4:12] = 1.0  # a centred square covering a quarter of the area
    out = random_resized_crop(x.repeat(50, 1, 1, 1), (0.05, 0.3), (1.0, 1.0), torch.Generator().manual_seed(1))
    assert out.mean() > x.mean()  # small crops sample the middle more densely than the border


def test_jitter_flip_and_normalisation():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 8, 8)
    j = color_jitter(x, 0.4, 0.4, 0.4, gen)
    assert j.shape == x.shape and j.min() >= 0 and j.max() <= 1 and not torch.equal(j, x)
    f = random_flip(x, gen)
    flipped = [torch.equal(f[i], x[i].flip(2)) for i in range(64)]
    assert 10 < sum(flipped) < 54 and all(fl or torch.equal(f[i], x[i]) for i, fl in enumerate(flipped))
    pre = Preprocessing(8, 8, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    u8 = torch.full((1, 3, 8, 8), 255, dtype=torch.uint8)
    assert torch.allclose(to_input(u8, pre), torch.full((1, 3, 8, 8), 2.0))
    out = Augment(AugmentConfig(), pre)(torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8), gen)
    assert out.dtype == torch.float32 and out.shape == (4, 3, 8, 8) and out.abs().max() <= 2.0 + 1e-6
