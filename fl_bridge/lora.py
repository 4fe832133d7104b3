"""FLoCoRA's LoRA adapters on convolutions, their injection into a backbone and their merge.

A adapter is a conv with `rank` output channels and the base layer's kernel, stride and padding
(Kaiming-uniform init); B is a 1x1 conv back to the base's output channels, zero-initialised, so
the adapted layer equals its frozen base at init. `merge` folds `scale * B @ A` into the base
weight and gives back a plain `nn.Conv2d`: the deployment chain never sees an adapter.
"""

from __future__ import annotations

import hashlib
import math

import torch
from torch import nn

class LoRAConv2d(nn.Module):
    """A frozen `base` conv plus the low-rank update `scale * B(A(x))`, scale = alpha / rank."""

    def __init__(self, base: nn.Conv2d, rank: int, alpha: float):
        super().__init__()
        if base.groups != 1 or base.bias is not None:
            raise ValueError("LoRA adapters are defined here for bias-free, ungrouped convolutions")
        self.base = base
        self.base.weight.requires_grad_(False)
        self.rank, self.alpha = rank, alpha
        self.scale = alpha / rank
        self.lora_A = nn.Conv2d(
            base.in_channels, rank, base.kernel_size, stride=base.stride, padding=base.padding,
            dilation=base.dilation, bias=False,
        )
        self.lora_B = nn.Conv2d(rank, base.out_channels, 1, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * self.lora_B(self.lora_A(x))

    def delta_weight(self) -> torch.Tensor:
        """`scale * einsum('oj,jiuv->oiuv', B, A)`: the update in the base weight's shape."""
        b = self.lora_B.weight[:, :, 0, 0]
        return self.scale * torch.einsum("oj,jiuv->oiuv", b, self.lora_A.weight)

    def merge(self) -> nn.Conv2d:
        """A plain conv with the base's geometry and weight `W + delta`."""
        b = self.base
        conv = nn.Conv2d(
            b.in_channels, b.out_channels, b.kernel_size, stride=b.stride, padding=b.padding,
            dilation=b.dilation, bias=False,
        )
        with torch.no_grad():
            conv.weight.copy_(b.weight + self.delta_weight())
        return conv


def _convs(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def stem_name(model: nn.Module) -> str:
    """The first convolution in module order (FLoCoRA's stem: trained fully in mode 3)."""
    convs = _convs(model)
    if not convs:
        raise ValueError("the model has no convolution")
    return convs[0][0]


def inject_lora(model: nn.Module, rank: int, alpha: float, adapt_stem: bool = False) -> list[str]:
    """Replace the convs of `model` by LoRA-adapted ones in place; return the adapted names.

    Every original parameter is frozen except the stem (when not adapted), the norms and
    anything outside the convs (a classifier head): FLoCoRA's "trained fully" set.
    """
    if rank < 1 or alpha <= 0:
        raise ValueError(f"LoRA rank must be >= 1 and alpha > 0 (got rank {rank}, alpha {alpha})")
    stem = stem_name(model)
    adapted = [n for n, _ in _convs(model) if adapt_stem or n != stem]
    for name in adapted:
        _set_module(model, name, LoRAConv2d(model.get_submodule(name), rank, alpha))
    return adapted


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every `LoRAConv2d` by its merged plain conv, in place; return the model."""
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRAConv2d):
            _set_module(model, name, module.merge())
    return model


def frozen_base_hash(model: nn.Module) -> str:
    """SHA-256 over the frozen base weights (name, shape, bytes): clients refuse a different base."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            h.update(name.encode())
            h.update(str(tuple(p.shape)).encode())
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()

