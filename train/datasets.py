"""Few-shot datasets as uint8 image arrays: `load_dataset(name, data_root, image_size)`.

Every dataset becomes a `FewShotData` of `ImageSplit`s (base, val, novel, base_test) whose
images are uint8 NCHW RGB numpy arrays already resized and centre-cropped to `image_size` by
the dataset's `Preprocessing` (so evaluation only normalises them; training augments them on
tensors, see `train.augment`). Images are decoded once into an `.npz` cache and reused.

Class splits (base / val / novel, labels 0..K-1 within each split):
- synthetic: 64 / 16 / 20 procedural classes (`train.synthetic`), base_test = 20 fresh images
  of each base class.
- miniimagenet, cifarfs, fc100, tieredimagenet, cub, folder: the dataset's own split;
  base_test = the last `base_test_fraction` of each base class, held out of `base`.
- cifar100: the CIFAR-FS 64 / 16 / 20 class split; base_test = the official test images of
  the base classes.
- cifar10, cinic10, fashionmnist (10 classes): base = the training images of classes 0-4,
  base_test = their official test images, novel = the official test images of classes 5-9,
  no val (class names in `train.readers`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from train.checkpoint import Preprocessing
from train.files import atomic_path

if TYPE_CHECKING:
    from train.readers import SourceSpec

CACHE_VERSION = 1
DEFAULT_CACHE_DIR = "build/cache"
SPLITS = ("base", "val", "novel", "base_test")
MIN_IMAGE_SIZE = 8  # smaller images are refused by every dataset


class DatasetError(ValueError):
    """A dataset that is unknown, missing, incomplete or corrupt."""


@dataclass
class ImageSplit:
    """Images uint8 (N, C, H, W) RGB, labels int64 (N,) in 0..K-1, and the K class names."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise DatasetError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise DatasetError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.labels = np.asarray(self.labels, dtype=np.int64)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, classes: list[int], per_class: int | None = None) -> "ImageSplit":
        """The first `per_class` images of each class in `classes`, relabelled 0..len-1."""
        picks = [np.flatnonzero(self.labels == c)[:per_class] for c in classes]
        idx = np.concatenate(picks) if picks else np.zeros(0, np.int64)
        labels = np.concatenate([np.full(len(p), i, np.int64) for i, p in enumerate(picks)]) if picks else idx
        return ImageSplit(self.images[idx], labels, [self.class_names[c] for c in classes])


@dataclass
class FewShotData:
    """A dataset cut for few-shot learning; `val`, `novel` or `base_test` may be None."""

    name: str
    base: ImageSplit
    val: ImageSplit | None
    novel: ImageSplit | None
    base_test: ImageSplit | None
    preprocessing: Preprocessing

    def split(self, name: str) -> ImageSplit:
        """The split called `name`; DatasetError if this dataset has none."""
        if name not in SPLITS:
            raise DatasetError(f"unknown split {name!r}: choose one of {', '.join(SPLITS)}")
        found = getattr(self, name)
        if found is None:
            raise DatasetError(f"dataset {self.name} has no {name} split")
        return found


def channel_stats(images: np.ndarray, limit: int = 5000) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] of (up to `limit` evenly spaced) uint8 NCHW images."""
    step = max(1, len(images) // limit)
    x = images[::step].astype(np.float64) / 255.0
    mean = x.mean(axis=(0, 2, 3))
    std = x.std(axis=(0, 2, 3))
    return tuple(round(float(v), 4) for v in mean), tuple(round(max(float(v), 1e-3), 4) for v in std)


def load_dataset(
    name: str,
    data_root: str | None,
    image_size: int,
    *,
    cache_dir: str | Path | None = None,
    base_test_fraction: float = 0.1,
    seed: int = 0,
) -> FewShotData:
    """Load dataset `name` from `data_root` (None: its default place; synthetic needs none).

    Decoded images are cached under `cache_dir` (default `$FSL_CACHE_DIR` or build/cache) keyed
    by dataset, resolved root, image size and options. Normalisation mean/std are measured on
    the base split. `seed` only changes the synthetic dataset (every CLI uses 0). Raises DatasetError.
    """
    from train.readers import READERS, SourceSpec

    if name not in READERS:
        raise DatasetError(f"unknown dataset {name!r}: choose one of {', '.join(READERS)}")
    if image_size < MIN_IMAGE_SIZE:
        raise DatasetError(f"image size {image_size} is too small (at least {MIN_IMAGE_SIZE} pixels)")
    if not 0.0 <= base_test_fraction < 1.0:
        raise DatasetError(f"base_test_fraction {base_test_fraction} must be in [0, 1)")
    reader = READERS[name]
    root = reader.locate(data_root)
    source = SourceSpec(root, image_size, base_test_fraction, seed)
    key = _cache_key(name, source)
    cache = Path(cache_dir or os.environ.get("FSL_CACHE_DIR") or DEFAULT_CACHE_DIR) / f"{name}-{image_size}-{key}.npz"
    splits = _read_cache(cache)
    if splits is None:
        splits = reader.read(source)
        _write_cache(cache, splits)
        count = sum(len(v) for v in splits.values() if v is not None)
        print(f"train: decoded {name} ({count} images at {image_size} px) into {cache}", file=sys.stderr)
    base = splits["base"]
    if base is None or len(base) == 0:
        raise DatasetError(f"dataset {name} has no base images")
    mean, std = channel_stats(base.images)
    pre = Preprocessing(image_size=image_size, resize=reader.resize_for(image_size), mean=mean, std=std)
    return FewShotData(name, base, splits["val"], splits["novel"], splits["base_test"], pre)


def _cache_key(name: str, source: "SourceSpec") -> str:
    text = json.dumps([CACHE_VERSION, name, str(source.root), source.image_size, source.base_test_fraction,
                       source.seed if name == "synthetic" else 0])
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _read_cache(path: Path) -> dict[str, ImageSplit | None] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            out: dict[str, ImageSplit | None] = {}
            for split in SPLITS:
                if f"{split}_images" in z:
                    names = [str(n) for n in z[f"{split}_names"]]
                    out[split] = ImageSplit(z[f"{split}_images"], z[f"{split}_labels"], names)
                else:
                    out[split] = None
            return out
    except (OSError, ValueError, KeyError, DatasetError):
        return None  # a damaged cache is rebuilt from the source


def _write_cache(path: Path, splits: dict[str, ImageSplit | None]) -> None:
    arrays = {}
    for split, data in splits.items():
        if data is not None:
            arrays[f"{split}_images"] = data.images
            arrays[f"{split}_labels"] = data.labels
            arrays[f"{split}_names"] = np.array(data.class_names, dtype=str)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
