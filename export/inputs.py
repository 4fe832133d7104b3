"""Inputs for the parity check: seeded random tensors, and real images of the checkpoint's dataset."""

from __future__ import annotations

import numpy as np
import torch

from train.augment import to_input
from train.checkpoint import BackboneCheckpoint
from train.datasets import DatasetError, load_dataset

# Deployment extracts features of unseen classes: prefer those images (base is never empty).
REAL_SPLITS = ("novel", "val", "base_test", "base")


def random_images(shape: tuple[int, int, int], count: int, seed: int) -> torch.Tensor:
    """`count` standard-normal (C, H, W) inputs: the statistics of normalised images."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((count, *shape), generator=generator)


def dataset_images(ckpt: BackboneCheckpoint, count: int, data_root: str | None) -> tuple[torch.Tensor | None, str]:
    """`count` images spread evenly over one split of the checkpoint's dataset, through the
    checkpoint's preprocessing; or None and the reason why there are none."""
    if count == 0:
        return None, "none requested (--real-inputs 0)"
    if not ckpt.dataset:
        return None, "the checkpoint names no dataset"
    root = data_root or ckpt.config.get("data_root") or None
    size = ckpt.spec.image_size
    try:
        data = load_dataset(ckpt.dataset, root, size)
    except DatasetError as e:
        return None, f"dataset {ckpt.dataset!r} could not be loaded: {e}"
    split_name, split = next((n, s) for n in REAL_SPLITS if (s := getattr(data, n)) is not None and len(s))
    if split.images.shape[1:] != (ckpt.spec.in_channels, size, size):
        return None, f"dataset {ckpt.dataset!r} images are {split.images.shape[1:]}, the backbone takes {size} px"
    picks = np.linspace(0, len(split) - 1, min(count, len(split))).round().astype(np.int64)
    images = to_input(split.images[picks], ckpt.preprocessing)
    return images, f"{len(picks)} images of the {split_name} split of {ckpt.dataset!r} ({size} px)"
