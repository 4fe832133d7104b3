"""The backbone zoo: EASY/PEFSL ResNet-9/12 and the CIFAR-style ResNet-8/18 of the FL papers.

Every backbone maps an NCHW image batch to an (N, feature_dim) feature batch through global
average pooling; heads (classifier, rotation) live with the training criterion, never here.
This module is the one source of truth for the architectures: `export/`, `fl_bridge/` and the
tests build them from a `BackboneSpec`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

EASY_FAMILIES = ("resnet9", "resnet12")
CIFAR_FAMILIES = ("resnet8", "resnet18")
FAMILIES = EASY_FAMILIES + CIFAR_FAMILIES
NORMS = ("batch", "group")
LEAKY_SLOPE = 0.1

# CIFAR-style stages as (blocks, stride, width multiplier), FLoCoRA's `models/resnets.py`.
CIFAR_STAGES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "resnet8": ((1, 1, 1), (1, 2, 2), (1, 2, 4)),
    "resnet18": ((2, 1, 1), (2, 2, 2), (2, 2, 4), (2, 2, 8)),
}


class BackboneError(ValueError):
    """An architecture that cannot be built (unknown family, image too small, ...)."""


@dataclass(frozen=True)
class BackboneSpec:
    """Everything needed to rebuild a backbone; stored in every checkpoint (contract 1)."""

    family: str = "resnet9"
    feature_maps: int = 16
    strided: bool = True
    in_channels: int = 3
    image_size: int = 32
    norm: str = "batch"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "BackboneSpec":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


@dataclass(frozen=True)
class Mixup:
    """Manifold mixup request: mix hidden state at `layer` (0 = input) with `perm` of the batch."""

    layer: int
    lam: float
    perm: torch.Tensor


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.GroupNorm(2, channels)


def _mix(x: torch.Tensor, mixup: Mixup | None, layer: int) -> torch.Tensor:
    if mixup is None or mixup.layer != layer:
        return x
    return mixup.lam * x + (1.0 - mixup.lam) * x[mixup.perm]


class EasyBlock(nn.Module):
    """EASY's BasicBlockRN12: three 3x3 conv+BN (LeakyReLU after the first two), 1x1 conv+BN
    shortcut, add, LeakyReLU; then a 2x2 max-pool, or stride 2 on conv3 and the shortcut."""

    def __init__(self, cin: int, cout: int, strided: bool, norm: str):
        super().__init__()
        stride = 2 if strided else 1
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = _norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = _norm(norm, cout)
        self.conv3 = nn.Conv2d(cout, cout, 3, stride=stride, padding=1, bias=False)
        self.bn3 = _norm(norm, cout)
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), _norm(norm, cout))
        self.pool = nn.Identity() if strided else nn.MaxPool2d(2)

    def merged(self, x: torch.Tensor) -> torch.Tensor:
        """The block up to the residual add (where manifold mixup mixes)."""
        out = F.leaky_relu(self.bn1(self.conv1(x)), LEAKY_SLOPE)
        out = F.leaky_relu(self.bn2(self.conv2(out)), LEAKY_SLOPE)
        return self.bn3(self.conv3(out)) + self.shortcut(x)

    def finish(self, merged: torch.Tensor) -> torch.Tensor:
        return self.pool(F.leaky_relu(merged, LEAKY_SLOPE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.finish(self.merged(x))


class CifarBlock(nn.Module):
    """torchvision-style BasicBlock used by FLoCoRA's CIFAR ResNets."""

    def __init__(self, cin: int, cout: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = _norm(norm, cout)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), _norm(norm, cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.downsample(x))


class Backbone(nn.Module):
    """Common interface: `forward(x, mixup=None) -> (N, feature_dim)` features."""

    spec: BackboneSpec
    feature_dim: int

    @property
    def mixup_layers(self) -> int:
        """Number of layers where manifold mixup may mix (input included)."""
        raise NotImplementedError


class EasyResNet(Backbone):
    """ResNet-9 (3 blocks) or ResNet-12 (4 blocks) of EASY/PEFSL; widths fm, 2.5fm, 5fm, 10fm."""

    def __init__(self, spec: BackboneSpec):
        super().__init__()
        self.spec = spec
        fm = spec.feature_maps
        widths = [fm, int(2.5 * fm), 5 * fm, 10 * fm][: 3 if spec.family == "resnet9" else 4]
        cins = [spec.in_channels] + widths[:-1]
        self.blocks = nn.ModuleList(EasyBlock(i, o, spec.strided, spec.norm) for i, o in zip(cins, widths))
        self.feature_dim = widths[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def mixup_layers(self) -> int:
        return len(self.blocks) + 1

    def forward(self, x: torch.Tensor, mixup: Mixup | None = None) -> torch.Tensor:
        x = _mix(x, mixup, 0)
        for i, block in enumerate(self.blocks, start=1):
            x = block.finish(_mix(block.merged(x), mixup, i))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


class CifarResNet(Backbone):
    """CIFAR-style ResNet-8/18 (3x3 stem, no max-pool) with BatchNorm or GroupNorm(2, C)."""

    def __init__(self, spec: BackboneSpec):
        super().__init__()
        self.spec = spec
        w = spec.feature_maps
        self.embed = nn.Sequential(
            nn.Conv2d(spec.in_channels, w, 3, padding=1, bias=False), _norm(spec.norm, w), nn.ReLU()
        )
        layers, cin = [], w
        for blocks, stride, mult in CIFAR_STAGES[spec.family]:
            stage = []
            for b in range(blocks):
                stage.append(CifarBlock(cin, w * mult, stride if b == 0 else 1, spec.norm))
                cin = w * mult
            layers.append(nn.Sequential(*stage))
        self.layers = nn.ModuleList(layers)
        self.feature_dim = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def mixup_layers(self) -> int:
        return len(self.layers) + 1

    def forward(self, x: torch.Tensor, mixup: Mixup | None = None) -> torch.Tensor:
        x = self.embed(_mix(x, mixup, 0))
        for i, stage in enumerate(self.layers, start=1):
            x = _mix(stage(x), mixup, i)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def final_map_size(spec: BackboneSpec) -> int:
    """Spatial side of the last feature map for a square input of `spec.image_size`."""
    size = spec.image_size
    if spec.family in EASY_FAMILIES:
        for _ in range(3 if spec.family == "resnet9" else 4):
            size = (size + 1) // 2 if spec.strided else size // 2
    else:
        for _, stride, _ in CIFAR_STAGES[spec.family]:
            size = (size + stride - 1) // stride
    return size


def check_spec(spec: BackboneSpec) -> BackboneSpec:
    """Raise BackboneError with one clear line if `spec` cannot be built."""
    if spec.family not in FAMILIES:
        raise BackboneError(f"unknown backbone {spec.family!r}: choose one of {', '.join(FAMILIES)}")
    if spec.norm not in NORMS:
        raise BackboneError(f"unknown norm {spec.norm!r}: choose one of {', '.join(NORMS)}")
    if spec.feature_maps < 2 or spec.in_channels < 1:
        raise BackboneError(f"feature_maps ({spec.feature_maps}) and in_channels must be positive (>= 2 maps)")
    if spec.norm == "group" and spec.feature_maps % 2:
        raise BackboneError("GroupNorm(2, C) needs an even number of feature maps")
    if final_map_size(spec) < 1:
        raise BackboneError(
            f"image size {spec.image_size} is too small for {spec.family} "
            f"({'strided' if spec.strided else 'max-pool'}): the last feature map would be empty"
        )
    return spec


def build_backbone(spec: BackboneSpec) -> Backbone:
    """Build the backbone a spec describes (randomly initialised)."""
    check_spec(spec)
    return EasyResNet(spec) if spec.family in EASY_FAMILIES else CifarResNet(spec)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
