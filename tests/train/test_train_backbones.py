"""Backbone shapes against the published PEFSL figures, and manifold mixup at hidden layers."""

from __future__ import annotations

import pytest
import torch

from train.backbones import BackboneSpec, Mixup, build_backbone, parameter_count
from train.easy import EasyNet, FitConfig, train_step

torch.set_num_threads(1)


# PEFSL's backbones (its thesis and repository): family, fm, input, strided -> params (M, 2 decimals),
# last feature-map side, feature dimension.
PEFSL = [
    ("resnet9", 16, 32, True, 0.19, 4, 80),
    ("resnet9", 32, 32, True, 0.75, 4, 160),
    ("resnet9", 16, 84, True, 0.19, 11, 80),
    ("resnet9", 16, 84, False, 0.19, 10, 80),
    ("resnet12", 16, 32, True, 0.78, 2, 160),
]


@pytest.mark.parametrize("family,fm,size,strided,mparams,side,dim", PEFSL)
def test_easy_backbones_match_the_published_sizes(family, fm, size, strided, mparams, side, dim):
    net = build_backbone(BackboneSpec(family, fm, strided, 3, size)).eval()
    assert round(parameter_count(net) / 1e6, 2) == mparams
    seen = []
    net.blocks[-1].pool.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[2:])))
    out = net(torch.randn(2, 3, size, size))
    assert seen == [(side, side)] and out.shape == (2, dim) == (2, net.feature_dim)


# The FL papers' CIFAR ResNets at 64 maps: features, last map side, and the parameters of the
# thesis tables (ResNet-8 1,227,594 and ResNet-18 11,173,962 with a 10-class linear head).
@pytest.mark.parametrize("family,dim,side,with_head", [("resnet8", 256, 8, 1_227_594), ("resnet18", 512, 4, 11_173_962)])
@pytest.mark.parametrize("norm", ["batch", "group"])
def test_cifar_backbones_match_the_papers(family, dim, side, with_head, norm):
    net = build_backbone(BackboneSpec(family, 64, True, 3, 32, norm)).eval()
    assert parameter_count(net) + dim * 10 + 10 == with_head
    seen = []
    net.layers[-1].register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[2:])))
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, dim) == (2, net.feature_dim)
    assert seen == [(side, side)]


def test_manifold_mixup_mixes_each_hidden_layer():
    torch.manual_seed(0)
    net = build_backbone(BackboneSpec("resnet9", 4, True, 3, 16)).eval()
    x, perm = torch.randn(4, 3, 16, 16), torch.tensor([1, 0, 3, 2])
    plain = net(x)
    outs = []
    for layer in range(net.mixup_layers):
        assert torch.allclose(net(x, Mixup(layer, 1.0, perm)), plain, atol=1e-6)  # lam 1: nothing mixed
        assert torch.allclose(net(x, Mixup(layer, 0.3, torch.arange(4))), plain, atol=1e-6)  # mixed with itself
        outs.append(net(x, Mixup(layer, 0.3, perm)))
        assert not torch.allclose(outs[-1], plain, atol=1e-4)
    for a in range(len(outs)):  # every layer mixes somewhere else
        for b in range(a + 1, len(outs)):
            assert not torch.allclose(outs[a], outs[b], atol=1e-4)
    # the last block's mix is before its LeakyReLU (at the residual add), so mixing the final
    # features linearly is not the same thing
    last = net.mixup_layers - 1
    assert not torch.allclose(outs[last], 0.3 * plain + 0.7 * plain[perm], atol=1e-4)
    assert net(x, Mixup(net.mixup_layers, 0.3, perm)).equal(plain)  # out of range: the caller's bug


def test_train_step_draws_the_mixing_layer_uniformly_over_the_valid_layers():
    cfg = FitConfig(feature_maps=4, image_size=16, rotations=False)
    net = EasyNet(build_backbone(cfg.spec), 3, rotations=False)
    layers = net.backbone.mixup_layers
    drawn, lams = [], []
    forward = net.backbone.forward

    def spy(x, mixup=None):
        if mixup is not None:
            drawn.append(mixup.layer)
            lams.append(mixup.lam)
        return forward(x, mixup)

    net.backbone.forward = spy
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    for _ in range(200):
        train_step(net, x, y, cfg, layers, gen)
    counts = torch.bincount(torch.tensor(drawn), minlength=layers)
    assert len(counts) == layers and counts.min() > 200 / layers / 2  # every valid layer, none beyond
    assert 0 < min(lams) and max(lams) < 1
