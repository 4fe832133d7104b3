"""The conv/linear layers of a model with their input and output sizes, from one forward pass
of a zero image (what the structural crossbar model counts)."""

from __future__ import annotations

import torch
from torch import nn

from fl_bridge.halo.costs import LayerShape


@torch.no_grad()
def layer_shapes(model: nn.Module, in_channels: int, image_size: int) -> tuple[LayerShape, ...]:
    shapes: list[LayerShape] = []

    def record(name: str):
        def hook(m: nn.Module, args, out):
            x = args[0]
            if isinstance(m, nn.Conv2d):
                shapes.append(LayerShape(name, m.in_channels, m.out_channels, m.kernel_size[0], x.shape[-2], x.shape[-1],
                                         out.shape[-2], out.shape[-1]))
            else:
                shapes.append(LayerShape(name, m.in_features, m.out_features, 1, 1, 1, 1, 1))
        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear)) and not n.startswith("rotation")]
    was_training = model.training
    try:
        model.eval()
        model(torch.zeros(1, in_channels, image_size, image_size))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return tuple(shapes)
