"""Rotation and mixup losses, Beta(2, 2) draws, the EASY heads and the two-pass step."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from train.backbones import BackboneSpec, Mixup, build_backbone, parameter_count
from train.easy import EasyNet, FitConfig, train_step
from train.losses import beta22, mixup_cross_entropy, rotate_quarters


def test_rotate_quarters_rotates_each_quarter_by_its_label():
    x = torch.arange(8 * 2 * 5 * 5, dtype=torch.float32).view(8, 2, 5, 5)
    xr, labels = rotate_quarters(x)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert torch.equal(xr[0], x[0])
    # a quarter turn counter-clockwise sends the top-right corner to the top-left
    assert torch.equal(xr[2, :, 0, 0], x[2, :, 0, -1])
    assert torch.equal(xr[4], x[4].flip(1).flip(2))  # half turn
    assert torch.equal(torch.rot90(xr[6], 1, dims=(1, 2)), x[6])  # three quarters + one = identity
    _, odd = rotate_quarters(torch.zeros(6, 1, 4, 4))
    assert sorted(set(odd.tolist())) == [0, 1, 2, 3]


def test_mixup_cross_entropy_formula():
    gen = torch.Generator().manual_seed(0)
    logits, y = torch.randn(6, 4, generator=gen), torch.tensor([0, 1, 2, 3, 0, 1])
    perm = torch.tensor([5, 4, 3, 2, 1, 0])
    assert torch.allclose(mixup_cross_entropy(logits, y, perm, 1.0), F.cross_entropy(logits, y))
    by_hand = 0.3 * F.cross_entropy(logits, y) + 0.7 * F.cross_entropy(logits, y[perm])
    assert torch.allclose(mixup_cross_entropy(logits, y, perm, 0.3), by_hand)


def test_input_mixup_mixes_images():
    net = build_backbone(BackboneSpec(feature_maps=4, image_size=16)).eval()
    x = torch.randn(4, 3, 16, 16)
    perm = torch.tensor([1, 0, 3, 2])
    mixed = net(x, Mixup(0, 0.25, perm))
    assert torch.allclose(mixed, net(0.25 * x + 0.75 * x[perm]), atol=1e-5)


def test_beta22_moments():
    gen = torch.Generator().manual_seed(0)
    draws = torch.tensor([beta22(gen) for _ in range(4000)])
    assert 0 < draws.min() and draws.max() < 1
    assert abs(draws.mean() - 0.5) < 0.02 and abs(draws.var() - 0.05) < 0.006  # Beta(2,2): var 1/20


@pytest.mark.parametrize("family,fm", [("resnet9", 16), ("resnet12", 8), ("resnet9", 6)])
def test_easy_parameter_count_matches_block_formula(family, fm):
    widths = [fm, int(2.5 * fm), 5 * fm, 10 * fm][: 3 if family == "resnet9" else 4]
    expected, cin = 0, 3
    for w in widths:  # conv1 + conv2 + conv3 + 1x1 shortcut + four BatchNorms
        expected += 9 * cin * w + 18 * w * w + cin * w + 8 * w
        cin = w
    net = EasyNet(build_backbone(BackboneSpec(family, fm)), 64, rotations=True)
    assert parameter_count(net.backbone) == expected
    assert parameter_count(net) == expected + (cin + 1) * 64 + (cin + 1) * 4
    logits, rot = net(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 64) and rot.shape == (2, 4)


def test_two_pass_step_trains_both_heads():
    cfg = FitConfig(feature_maps=4, image_size=16)
    net = EasyNet(build_backbone(cfg.spec), 5, rotations=True)
    x, y = torch.randn(8, 3, 16, 16), torch.arange(8) % 5
    loss = train_step(net, x, y, cfg, net.backbone.mixup_layers, torch.Generator().manual_seed(0))
    assert loss > 0 and net.rotation.weight.grad is not None and net.classifier.weight.grad is not None
    net.zero_grad(set_to_none=True)
    train_step(net, x, y, FitConfig(rotations=False), net.backbone.mixup_layers, torch.Generator())
    assert net.rotation.weight.grad is None and net.classifier.weight.grad is not None
