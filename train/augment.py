"""Batched tensor image transforms, run on the batch's device (GPU when there is one).

Input batches are uint8 NCHW RGB tensors straight from the dataset cache (already at the
network's size); `to_input` only normalises, `Augment` does EASY's training transforms on the
whole batch at once: random resized crop (one affine grid per image), colour jitter
(brightness, contrast, saturation), horizontal flip, then normalisation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.nn import functional as F

from train.checkpoint import Preprocessing


def to_input(images: np.ndarray | torch.Tensor, pre: Preprocessing, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 NCHW images -> float network input: `(x / 255 - mean) / std` per channel."""
    x = torch.as_tensor(images).to(device).float().div_(255.0)
    return normalize(x, pre)


def normalize(x: torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    """Float NCHW images in [0, 1] -> `(x - mean) / std` per channel."""
    mean = torch.tensor(pre.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


@dataclass(frozen=True)
class AugmentConfig:
    """EASY's training transforms: RandomResizedCrop(scale, ratio), ColorJitter(0.4, 0.4, 0.4), flip."""

    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    flip: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


class Augment:
    """Random training views of a uint8 batch, drawn from a torch.Generator (reproducible)."""

    def __init__(self, config: AugmentConfig, pre: Preprocessing):
        self.config, self.pre = config, pre

    def __call__(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        x = images.float().div_(255.0)
        x = random_resized_crop(x, self.config.crop_scale, self.config.crop_ratio, gen)
        x = color_jitter(x, self.config.brightness, self.config.contrast, self.config.saturation, gen)
        if self.config.flip:
            x = random_flip(x, gen)
        return normalize(x, self.pre)


def _uniform(n: int, low: float, high: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return (low + (high - low) * torch.rand(n, generator=gen)).to(device)


def random_resized_crop(x: torch.Tensor, scale: tuple[float, float], ratio: tuple[float, float],
                        gen: torch.Generator) -> torch.Tensor:
    """Each image: a crop of random area fraction in `scale` and aspect in `ratio` (log-uniform),
    at a random position, resized bilinearly back to the input size."""
    n = x.shape[0]
    area = _uniform(n, *scale, gen, x.device)
    log_ratio = _uniform(n, math.log(ratio[0]), math.log(ratio[1]), gen, x.device)
    aspect = torch.exp(log_ratio)
    w = torch.sqrt(area * aspect).clamp(max=1.0)  # fractions of the side
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (torch.rand(n, generator=gen).to(x.device) * 2 - 1) * (1 - w)  # centre in [-1, 1] coords
    cy = (torch.rand(n, generator=gen).to(x.device) * 2 - 1) * (1 - h)
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def color_jitter(x: torch.Tensor, brightness: float, contrast: float, saturation: float,
                 gen: torch.Generator) -> torch.Tensor:
    """Per-image factors in [1 - s, 1 + s] for brightness, contrast and saturation (fixed order)."""
    n = x.shape[0]
    view = (n, 1, 1, 1)
    if brightness:
        x = x * _uniform(n, 1 - brightness, 1 + brightness, gen, x.device).view(view)
    if contrast:
        mean = grey(x).mean(dim=(1, 2, 3), keepdim=True)
        x = mean + (x - mean) * _uniform(n, 1 - contrast, 1 + contrast, gen, x.device).view(view)
    if saturation and x.shape[1] == 3:
        g = grey(x)
        x = g + (x - g) * _uniform(n, 1 - saturation, 1 + saturation, gen, x.device).view(view)
    return x.clamp_(0.0, 1.0)


def grey(x: torch.Tensor) -> torch.Tensor:
    """Luma (ITU-R 601) of an RGB batch, shape (N, 1, H, W); a 1-channel batch is its own grey."""
    if x.shape[1] != 3:
        return x.mean(dim=1, keepdim=True)
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(3), x)
