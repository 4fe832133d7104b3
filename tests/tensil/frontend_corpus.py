"""A corpus of small backbones in the styles the compiler must take (issue 12), built with torch here.

Each entry is a torch module, its input shape and the ONNX opset it is exported at. Families:
PEFSL's ResNet-9/12 (the project's own builders), a CIFAR ResNet-20-like net, a Keras-style
pre-activation ResNet v2 with an NHWC input and a Softmax head, a Fire/Concat net, a
MobileNetV2-like inverted-residual net (depthwise, ReLU6), ProtoNet's Conv-4 ending in a
Flatten of the spatial map, a Conv-GAP-Linear head with AveragePool and ReLU6, a vector
reshaped through 1-sized axes, a bilinear upsampling; and a graph that must be refused (a Softmax
inside the network). Weights are seeded; BatchNorm statistics are randomised so folding is
exercised.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import onnx
import torch
from torch import nn
from torch.nn import functional as F

from train.backbones import BackboneSpec, build_backbone


def _randomise_norms(net: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return net.eval()


def _bn_conv(ci: int, co: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(ci, co, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(co))


class Resnet20Cifar(nn.Module):
    """CIFAR ResNet (He et al.) with one basic block per stage and 1x1 projection shortcuts."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.stem = _bn_conv(3, width)
        widths = [width, 2 * width, 4 * width]
        self.blocks = nn.ModuleList()
        ci = width
        for i, co in enumerate(widths):
            stride = 1 if i == 0 else 2
            self.blocks.append(nn.ModuleDict({
                "a": _bn_conv(ci, co, stride=stride), "b": _bn_conv(co, co),
                "short": _bn_conv(ci, co, k=1, stride=stride) if (stride, ci) != (1, co) else nn.Identity(),
            }))
            ci = co
        self.fc = nn.Linear(ci, 10)

    def forward(self, x):
        x = F.relu(self.stem(x))
        for b in self.blocks:
            x = F.relu(b["b"](F.relu(b["a"](x))) + b["short"](x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class KerasResnetV2(nn.Module):
    """Keras-style: NHWC input (tf2onnx's Transpose in front), pre-activation blocks, Dense + Softmax."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, 1, 1)
        self.pre = nn.BatchNorm2d(width)
        self.conv1 = nn.Conv2d(width, width, 3, 1, 1)
        self.mid = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1)
        self.post = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, 5)

    def forward(self, x):
        x = self.stem(x.permute(0, 3, 1, 2))
        y = self.conv2(F.relu(self.mid(self.conv1(F.relu(self.pre(x))))))
        x = F.relu(self.post(x + y))
        return torch.softmax(self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1)), dim=1)


class FireNet(nn.Module):
    """SqueezeNet-style Fire modules: squeeze 1x1, expand 1x1 and 3x3, Concat on channels."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 2, 1)
        self.squeeze, self.e1, self.e3 = nn.Conv2d(16, 4, 1), nn.Conv2d(4, 8, 1), nn.Conv2d(4, 8, 3, 1, 1)
        self.head = nn.Conv2d(16, 10, 1)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.stem(x)), 2, 2)
        s = F.relu(self.squeeze(x))
        x = torch.cat([F.relu(self.e1(s)), F.relu(self.e3(s))], dim=1)
        return F.adaptive_avg_pool2d(self.head(x), 1).flatten(1)


class MobileNetV2Like(nn.Module):
    """Inverted residual blocks: 1x1 expand, 3x3 depthwise, 1x1 project, ReLU6, residual."""

    def __init__(self, width: int = 12, expand: int = 4):
        super().__init__()
        self.stem = _bn_conv(3, width, stride=2)
        hidden = width * expand
        self.blocks = nn.ModuleList(nn.Sequential(
            _bn_conv(width, hidden, k=1), nn.ReLU6(),
            _bn_conv(hidden, hidden, groups=hidden), nn.ReLU6(),
            _bn_conv(hidden, width, k=1)) for _ in range(2))

    def forward(self, x):
        x = F.relu6(self.stem(x))
        for b in self.blocks:
            x = x + b(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


class Conv4(nn.Module):
    """ProtoNet's Conv-4 (conv-BN-ReLU-maxpool x4); the features are the flattened last map."""

    def __init__(self, width: int = 8):
        super().__init__()
        layers, ci = [], 3
        for _ in range(4):
            layers += [_bn_conv(ci, width), nn.ReLU(), nn.MaxPool2d(2)]
            ci = width
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x).flatten(1)


class KerasConv4(nn.Module):
    """Keras-style Conv-4: NHWC input, Flatten of the NHWC map (Transpose(0,2,3,1) + Reshape), Dense head."""

    def __init__(self, width: int = 8, dense: bool = True):
        super().__init__()
        self.body = Conv4(width).body
        self.fc = nn.Linear(width * 2 * 2, 6) if dense else nn.Identity()

    def forward(self, x):
        y = self.body(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.fc(y.reshape(1, -1))


class GapLinearHead(nn.Module):
    """Conv, ReLU6 (Clip), AveragePool, GAP, Linear (Gemm): what the old allow-list refused."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 16, 3, 1, 1), nn.Linear(16, 8)

    def forward(self, x):
        x = F.avg_pool2d(F.relu6(self.conv(x)), 2, 2)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class VectorThroughUnitAxes(nn.Module):
    """A pooled vector moved through 1-sized axes, (1,C,1,1) -> (1,1,1,C) -> (1,C)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1)

    def forward(self, x):
        v = F.adaptive_avg_pool2d(F.relu(self.conv(x)), 1).permute(0, 2, 3, 1)
        return v.reshape(1, 16)


class BilinearUpsample(nn.Module):
    """A decoder-style step: conv, bilinear x2 (align_corners=False), conv; the map is the output."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 1, 1)
        self.head = nn.Conv2d(8, 4, 3, 1, 1)

    def forward(self, x):
        return self.head(F.interpolate(self.conv(x), scale_factor=2, mode="bilinear", align_corners=False))


class SoftmaxInside(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 1, 1)

    def forward(self, x):
        return F.adaptive_avg_pool2d(torch.softmax(self.conv(x), dim=1), 1).flatten(1)


@dataclass(frozen=True)
class Entry:
    name: str
    build: type | object
    input_shape: tuple[int, ...]
    opset: int = 13
    refused: str = ""  # expected part of the refusal message ("" = must compile)


def _pefsl(family: str, strided: bool) -> nn.Module:
    return build_backbone(BackboneSpec(family, 4, strided=strided, image_size=32))


CORPUS = [
    Entry("pefsl-resnet9-strided", lambda: _pefsl("resnet9", True), (1, 3, 32, 32), opset=10),
    Entry("pefsl-resnet12-maxpool", lambda: _pefsl("resnet12", False), (1, 3, 32, 32), opset=10),
    Entry("resnet20-cifar", Resnet20Cifar, (1, 3, 16, 16)),
    Entry("keras-resnet-v2-nhwc-softmax", KerasResnetV2, (1, 16, 16, 3)),
    Entry("fire-concat", FireNet, (1, 3, 32, 32)),
    Entry("mobilenetv2-like", MobileNetV2Like, (1, 3, 16, 16)),
    Entry("protonet-conv4-flatten", Conv4, (1, 3, 32, 32)),
    Entry("keras-conv4-nhwc-flatten-dense", KerasConv4, (1, 32, 32, 3)),
    Entry("keras-conv4-nhwc-flatten-output", lambda: KerasConv4(dense=False), (1, 32, 32, 3)),
    Entry("gap-linear-head-relu6-avgpool", GapLinearHead, (1, 3, 16, 16), opset=10),
    Entry("vector-through-unit-axes", VectorThroughUnitAxes, (1, 3, 8, 8)),
    Entry("bilinear-resize", BilinearUpsample, (1, 3, 8, 8), opset=11),
    Entry("softmax-inside", SoftmaxInside, (1, 3, 8, 8), refused="Softmax is only accepted as the last node"),
]


def export(entry: Entry, seed: int = 0) -> onnx.ModelProto:
    """The entry exported by torch's TorchScript exporter (what PEFSL's script uses)."""
    torch.manual_seed(seed)
    net = _randomise_norms(entry.build(), seed)
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(net, torch.randn(*entry.input_shape), buf, opset_version=entry.opset,
                          input_names=["x"], output_names=["y"], dynamo=False)
    return onnx.load_from_string(buf.getvalue())
