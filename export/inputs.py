"""Inputs for the parity check: seeded random tensors and, when the dataset loads, real images."""

from __future__ import annotations

import torch


def random_images(shape: tuple[int, int, int], count: int, seed: int) -> torch.Tensor:
    """`count` standard-normal (C, H, W) inputs: the statistics of normalised images."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((count, *shape), generator=generator)


def dataset_images(ckpt, count: int, seed: int) -> tuple[torch.Tensor | None, str]:
    """Up to `count` images of the checkpoint's dataset through its preprocessing, or None and why not."""
    if count == 0:
        return None, "disabled (--real-inputs 0)"
    if not ckpt.dataset:
        return None, "the checkpoint names no dataset"
    try:
        from train.datasets import load_dataset  # noqa: F401
    except ImportError:
        return None, "train.datasets is not available in this checkout"
    return None, "pending"
