"""`sample-images`: a few labelled images of a dataset split as an npz for tools without torch
(the board's generated camera video): images (N, H, W, 3) uint8 RGB, labels (N,), class_names (K,)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from safeio import UsageError, check_int_range, check_output
from train.datasets import DatasetError, ImageSplit, load_dataset
from train.files import atomic_path
from train.synthetic import SyntheticConfig, render_split


@dataclass(frozen=True)
class SampleConfig:
    dataset: str = "synthetic"
    data_root: str | None = None
    split: str = "novel"
    classes: int = 5
    per_class: int = 20
    image_size: int = 96
    seed: int = 0
    out: str = "build/demo/novel.npz"

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> "SampleConfig":
        """DatasetError with one line for a flag that cannot work; nothing is read or written."""
        try:
            check_int_range("--classes", self.classes, 1)
            check_int_range("--per-class", self.per_class, 1)
            check_int_range("--image-size", self.image_size, 8, 1024)
            check_int_range("--seed", self.seed, 0)
            check_output("--out", self.out, "file")
        except UsageError as e:
            raise DatasetError(str(e)) from None
        return self


def sample_split(config: SampleConfig) -> ImageSplit:
    """`classes` classes of the split (chosen by `seed`, in label order) with `per_class` images
    each. The dataset itself never depends on `seed` (the synthetic one is always seed 0)."""
    if config.classes < 1 or config.per_class < 1:
        raise DatasetError("--classes and --per-class must be at least 1")
    if config.dataset == "synthetic":
        # Render only what is asked: same classes as the full dataset, `per_class` fresh images each.
        counts = {"base": "base_images", "base_test": "base_test_images", "val": "val_images", "novel": "novel_images"}
        if config.split not in counts:
            raise DatasetError(f"unknown split {config.split!r}: choose one of {', '.join(counts)}")
        synth = SyntheticConfig(**{counts[config.split]: config.per_class})
        split = ImageSplit(*render_split(synth, config.split, config.image_size))
    else:
        split = load_dataset(config.dataset, config.data_root, config.image_size).split(config.split)
    if config.classes > split.num_classes:
        raise DatasetError(f"the {config.split} split has {split.num_classes} classes, "
                           f"fewer than --classes {config.classes}")
    rng = np.random.default_rng(config.seed)
    chosen = sorted(rng.choice(split.num_classes, config.classes, replace=False).tolist())
    return split.subset(chosen, config.per_class)


def write_samples(config: SampleConfig) -> Path:
    """Write the npz atomically; returns its path."""
    split = sample_split(config.check())
    out = Path(config.out)
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.savez(f, images=split.images.transpose(0, 2, 3, 1).copy(), labels=split.labels,
                 class_names=np.array(split.class_names, dtype=str))
    return out
