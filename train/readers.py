"""On-disk readers behind `train.datasets.load_dataset`: one class per layout.

Each reader finds its root (`locate`), decodes every image once to uint8 RGB resized (short side
to `resize_for(image_size)`) and centre-cropped to `image_size` (`read`), and says which split
each class belongs to. Nothing is downloaded; a missing file raises DatasetError naming it.
"""

from __future__ import annotations

import csv
import gzip
from abc import ABC, abstractmethod
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from train.datasets import DatasetError, ImageSplit
from train.synthetic import SyntheticConfig, render_split

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".webp"}
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# Bertinetto et al.'s CIFAR-FS split of CIFAR-100 (the other 64 classes are base).
CIFARFS_VAL = ("otter", "motorcycle", "television", "lamp", "crocodile", "shark", "butterfly", "beaver",
               "beetle", "tractor", "flatfish", "maple_tree", "camel", "crab", "sea", "cattle")
CIFARFS_NOVEL = ("baby", "bed", "bicycle", "chimpanzee", "fox", "leopard", "man", "pickup_truck", "plain",
                 "poppy", "rocket", "rose", "snail", "sweet_pepper", "table", "telephone", "wardrobe",
                 "whale", "woman", "worm")
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

Splits = dict[str, ImageSplit | None]


@dataclass(frozen=True)
class SourceSpec:
    """What to read: the located root (None for synthetic), the output size and options."""

    root: Path | None
    image_size: int
    base_test_fraction: float
    seed: int


def fit_image(image: np.ndarray, resize: int, size: int) -> np.ndarray:
    """HWC RGB uint8 -> short side resized to `resize`, centre `size` x `size` crop, CHW."""
    import cv2

    h, w = image.shape[:2]
    scale = resize / min(h, w)
    if (h, w) != (round(h * scale), round(w * scale)):
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    h, w = image.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(image[top : top + size, left : left + size].transpose(2, 0, 1))


def decode_file(path: Path, resize: int, size: int) -> np.ndarray:
    """Decode one image file to uint8 (3, size, size) RGB; DatasetError if unreadable."""
    import cv2

    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise DatasetError(f"cannot read image {path}: {e.strerror}") from None
    image = cv2.imdecode(raw, cv2.IMREAD_COLOR) if raw.size else None
    if image is None:
        raise DatasetError(f"corrupt or unsupported image {path}")
    return fit_image(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), resize, size)


def decode_files(paths: list[Path], labels: list[int], names: list[str], resize: int, size: int,
                 what: str) -> ImageSplit:
    """Decode a list of files with a progress bar into one ImageSplit."""
    images = np.empty((len(paths), 3, size, size), np.uint8)
    for i, path in enumerate(tqdm(paths, desc=f"decoding {what}", unit="img", file=sys.stderr,
                                  disable=len(paths) < 2000, leave=False)):
        images[i] = decode_file(path, resize, size)
    return ImageSplit(images, np.asarray(labels, np.int64), names)


def fit_array(images: np.ndarray, resize: int, size: int) -> np.ndarray:
    """uint8 NHWC RGB array -> uint8 NCHW at `size` (no-op copy when already that size)."""
    if images.shape[1] == images.shape[2] == size == resize:
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    return np.stack([fit_image(im, resize, size) for im in images]) if len(images) else \
        np.zeros((0, 3, size, size), np.uint8)


def class_folders(folder: Path) -> list[Path]:
    """Sorted class sub-folders of `folder`; DatasetError when there is none."""
    if not folder.is_dir():
        raise DatasetError(f"missing folder {folder}")
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"{folder} has no class folders")
    return classes


def image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"class folder {folder} has no images")
    return files


def read_class_folders(classes: list[Path], resize: int, size: int, what: str) -> ImageSplit:
    paths, labels = [], []
    for label, folder in enumerate(classes):
        files = image_files(folder)
        paths += files
        labels += [label] * len(files)
    return decode_files(paths, labels, [c.name for c in classes], resize, size, what)


def hold_out(split: ImageSplit, fraction: float) -> tuple[ImageSplit, ImageSplit | None]:
    """Move the last `fraction` of each class (at least one image, never all) to a test split."""
    if fraction <= 0:
        return split, None
    keep, test = [], []
    for c in range(split.num_classes):
        idx = np.flatnonzero(split.labels == c)
        n_test = min(len(idx) - 1, max(1, int(round(len(idx) * fraction)))) if len(idx) > 1 else 0
        keep.append(idx[: len(idx) - n_test])
        test.append(idx[len(idx) - n_test :])
    k, t = np.concatenate(keep), np.concatenate(test)
    return (ImageSplit(split.images[k], split.labels[k], split.class_names),
            ImageSplit(split.images[t], split.labels[t], split.class_names))


def by_classes(images: np.ndarray, labels: np.ndarray, classes: list[int], names: list[str]) -> ImageSplit:
    """The images of `classes` (original ids), relabelled 0..len-1 in that order."""
    remap = np.full(max(int(labels.max()), max(classes)) + 1, -1, np.int64)
    remap[classes] = np.arange(len(classes))
    new = remap[labels]
    keep = np.flatnonzero(new >= 0)
    return ImageSplit(images[keep], new[keep], [names[c] for c in classes])


class Reader(ABC):
    """A dataset layout. `default_dirs`: sub-folder names tried under the given root."""

    crop_ratio: float = 1.0
    default_dirs: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    name: str = ""

    def resize_for(self, image_size: int) -> int:
        return int(image_size * self.crop_ratio)

    def locate(self, data_root: str | None) -> Path | None:
        if data_root is None:
            raise DatasetError(f"dataset {self.name} needs --data-root (nothing is downloaded)")
        root = Path(data_root).expanduser().resolve()
        if not root.is_dir():
            raise DatasetError(f"data root {root} does not exist")
        for candidate in [root] + [root / d for d in self.default_dirs]:
            if all((candidate / r).exists() for r in self.required):
                return candidate
        wanted = ", ".join(self.required)
        subs = "/".join(self.default_dirs) or "a sub-folder"
        raise DatasetError(f"{self.name}: {root} does not hold {wanted} (nor does {subs})")

    @abstractmethod
    def read(self, source: SourceSpec) -> Splits:
        """Decode the dataset at `source.root` into base, val, novel and base_test splits."""


class SyntheticReader(Reader):
    name = "synthetic"

    def locate(self, data_root: str | None) -> Path | None:
        return None

    def read(self, source: SourceSpec) -> Splits:
        config = SyntheticConfig(seed=source.seed)
        return {split: ImageSplit(*render_split(config, split, source.image_size))
                for split in ("base", "val", "novel", "base_test")}


class SplitFoldersReader(Reader):
    """`<root>/<base dir>/<class>/<image>` and the same for val and novel (val optional)."""

    def __init__(self, name: str, folders: tuple[str, str, str], default_dirs: tuple[str, ...], crop_ratio: float):
        self.name, self.folders, self.default_dirs, self.crop_ratio = name, folders, default_dirs, crop_ratio
        self.required = (folders[0], folders[2])

    def read(self, source: SourceSpec) -> Splits:
        size, resize = source.image_size, self.resize_for(source.image_size)
        out: Splits = {}
        for split, folder in zip(("base", "val", "novel"), self.folders):
            path = source.root / folder
            out[split] = read_class_folders(class_folders(path), resize, size, f"{self.name} {split}") \
                if path.is_dir() else None
        out["base"], out["base_test"] = hold_out(out["base"], source.base_test_fraction)
        return out


class MiniImageNetReader(Reader):
    """EASY's layout: `{train,validation,test}.csv` (header, then filename,wnid) + `images/`."""

    name, crop_ratio = "miniimagenet", 92 / 84
    default_dirs = ("miniimagenetimages", "miniimagenet", "miniImageNet")
    required = ("train.csv", "validation.csv", "test.csv", "images")

    def read(self, source: SourceSpec) -> Splits:
        size, resize = source.image_size, self.resize_for(source.image_size)
        out: Splits = {}
        for split, csv_name in (("base", "train.csv"), ("val", "validation.csv"), ("novel", "test.csv")):
            rows = self._rows(source.root / csv_name)
            names = sorted({wnid for _, wnid in rows})
            ids = {n: i for i, n in enumerate(names)}
            paths = [source.root / "images" / f for f, _ in rows]
            out[split] = decode_files(paths, [ids[w] for _, w in rows], names, resize, size, f"miniimagenet {split}")
        out["base"], out["base_test"] = hold_out(out["base"], source.base_test_fraction)
        return out

    @staticmethod
    def _rows(path: Path) -> list[tuple[str, str]]:
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f) if r]
        if len(rows) < 2 or any(len(r) < 2 for r in rows[1:]):
            raise DatasetError(f"{path} is not a filename,label CSV with a header line")
        return [(r[0].strip(), r[1].strip()) for r in rows[1:]]


class CubReader(Reader):
    """`images/<NNN.Class_Name>/*.jpg`; classes in sorted order i go to base if i % 2 == 0,
    val if i % 4 == 1, novel if i % 4 == 3 (100 / 50 / 50, the "closer look" split)."""

    name, crop_ratio = "cub", 1.15
    default_dirs = ("CUB_200_2011", "CUB_200_2011/CUB_200_2011")
    required = ("images",)

    def read(self, source: SourceSpec) -> Splits:
        size, resize = source.image_size, self.resize_for(source.image_size)
        classes = class_folders(source.root / "images")
        groups = {"base": classes[0::2], "val": classes[1::4], "novel": classes[3::4]}
        out: Splits = {s: read_class_folders(c, resize, size, f"cub {s}") if c else None for s, c in groups.items()}
        out["base"], out["base_test"] = hold_out(out["base"], source.base_test_fraction)
        return out


# What CIFAR's python batches need (numpy arrays, written by Python 2 or 3): nothing else can
# be called while loading, so a crafted "batch" cannot run code.
_CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _CIFAR_GLOBALS:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return _CifarUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DatasetError(f"missing file {path}") from None
    except Exception as e:  # a truncated pickle raises several types
        raise DatasetError(f"corrupt CIFAR batch {path} ({type(e).__name__})") from None


def _cifar_arrays(batch: dict, label_key: bytes, path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = np.asarray(batch[label_key], np.int64)
    except (KeyError, ValueError) as e:
        raise DatasetError(f"{path} is not a CIFAR python batch ({e})") from None
    if len(data) != len(labels):
        raise DatasetError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data, labels


class Cifar10Reader(Reader):
    """The python pickle batches: data_batch_1..5 (base), test_batch (base_test and novel)."""

    name, default_dirs = "cifar10", ("cifar-10-batches-py",)
    required = ("data_batch_1", "test_batch")

    def read(self, source: SourceSpec) -> Splits:
        size, resize = source.image_size, self.resize_for(source.image_size)
        train = [_cifar_arrays(_unpickle(p), b"labels", p) for p in sorted(source.root.glob("data_batch_*"))]
        test_path = source.root / "test_batch"
        test_x, test_y = _cifar_arrays(_unpickle(test_path), b"labels", test_path)
        train_x, train_y = np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])
        return ten_class_split(fit_array(train_x, resize, size), train_y,
                               fit_array(test_x, resize, size), test_y, list(CIFAR10_CLASSES))


def ten_class_split(train_x, train_y, test_x, test_y, names: list[str]) -> Splits:
    """Base = classes 0-4 (train images), base_test = their test images, novel = test images of 5-9."""
    return {"base": by_classes(train_x, train_y, [0, 1, 2, 3, 4], names), "val": None,
            "novel": by_classes(test_x, test_y, [5, 6, 7, 8, 9], names),
            "base_test": by_classes(test_x, test_y, [0, 1, 2, 3, 4], names)}


class Cifar100Reader(Reader):
    """`train`, `test`, `meta` pickles (fine labels), cut with the CIFAR-FS class split."""

    name, default_dirs = "cifar100", ("cifar-100-python",)
    required = ("train", "test", "meta")

    def read(self, source: SourceSpec) -> Splits:
        size, resize = source.image_size, self.resize_for(source.image_size)
        meta = _unpickle(source.root / "meta")
        try:
            names = [n.decode() for n in meta[b"fine_label_names"]]
        except (KeyError, AttributeError):
            raise DatasetError(f"{source.root / 'meta'} has no fine_label_names") from None
        ids = {n: i for i, n in enumerate(names)}
        missing = [n for n in CIFARFS_VAL + CIFARFS_NOVEL if n not in ids]
        if missing:
            raise DatasetError(f"{source.root / 'meta'} lacks CIFAR-FS classes {', '.join(missing[:3])}")
        val, novel = [ids[n] for n in CIFARFS_VAL], [ids[n] for n in CIFARFS_NOVEL]
        base = [i for i in range(len(names)) if i not in set(val + novel)]
        train_x, train_y = _cifar_arrays(_unpickle(source.root / "train"), b"fine_labels", source.root / "train")
        test_x, test_y = _cifar_arrays(_unpickle(source.root / "test"), b"fine_labels", source.root / "test")
        train_x, test_x = fit_array(train_x, resize, size), fit_array(test_x, resize, size)
        # Val and novel classes use all their images (train + test), as CIFAR-FS does.
        all_x, all_y = np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y])
        return {"base": by_classes(train_x, train_y, base, names), "val": by_classes(all_x, all_y, val, names),
                "novel": by_classes(all_x, all_y, novel, names), "base_test": by_classes(test_x, test_y, base, names)}


class Cinic10Reader(Reader):
    """`{train,valid,test}/<class>/*.png`: base = train of classes 0-4, base_test and novel from test."""

    name, default_dirs = "cinic10", ("CINIC-10", "cinic-10")
    required = ("train", "test")

    def read(self, source: SourceSpec) -> Splits:
        size, resize = source.image_size, self.resize_for(source.image_size)
        train, test = class_folders(source.root / "train"), class_folders(source.root / "test")
        if len(train) != 10 or [p.name for p in train] != [p.name for p in test]:
            raise DatasetError(f"{source.root}: train/ and test/ must hold the same 10 class folders")
        return {"base": read_class_folders(train[:5], resize, size, "cinic10 base"), "val": None,
                "novel": read_class_folders(test[5:], resize, size, "cinic10 novel"),
                "base_test": read_class_folders(test[:5], resize, size, "cinic10 base_test")}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally .gz) as a numpy array; DatasetError if malformed."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DatasetError(f"cannot read IDX file {path} ({type(e).__name__})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{path} is not an unsigned-byte IDX file")
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    body = np.frombuffer(raw, np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise DatasetError(f"{path}: {body.size} bytes of data for shape {shape}")
    return body.reshape(shape)


class FashionMnistReader(Reader):
    """IDX files (train-/t10k-images-idx3-ubyte, labels-idx1-ubyte, optionally .gz); grey
    images are replicated to 3 channels so the RGB camera chain applies unchanged."""

    name = "fashionmnist"
    files = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

    def locate(self, data_root: str | None) -> Path | None:
        root = Path(data_root or FASHION_MNIST_DIR).expanduser().resolve()
        if not root.is_dir():
            hint = "" if data_root else " (install Debian's dataset-fashion-mnist or pass --data-root)"
            raise DatasetError(f"data root {root} does not exist{hint}")
        for f in self.files:
            if self._file(root, f) is None:
                raise DatasetError(f"fashionmnist: {root} has no {f} (nor {f}.gz)")
        return root

    @staticmethod
    def _file(root: Path, stem: str) -> Path | None:
        for candidate in (root / stem, root / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
        return None

    def read(self, source: SourceSpec) -> Splits:
        size, resize = source.image_size, self.resize_for(source.image_size)
        arrays = [read_idx(self._file(source.root, f)) for f in self.files]
        for images, labels, f in ((arrays[0], arrays[1], self.files[0]), (arrays[2], arrays[3], self.files[2])):
            if images.ndim != 3 or len(images) != len(labels):
                raise DatasetError(f"fashionmnist: {f} and its labels do not match")
        rgb = [np.repeat(a[..., None], 3, axis=3) for a in (arrays[0], arrays[2])]
        return ten_class_split(fit_array(rgb[0], resize, size), arrays[1].astype(np.int64),
                               fit_array(rgb[1], resize, size), arrays[3].astype(np.int64), list(FASHION_CLASSES))


READERS: dict[str, Reader] = {
    "synthetic": SyntheticReader(),
    "miniimagenet": MiniImageNetReader(),
    "cifarfs": SplitFoldersReader("cifarfs", ("meta-train", "meta-val", "meta-test"), ("cifar_fs", "CIFAR-FS"), 1.15),
    "fc100": SplitFoldersReader("fc100", ("train", "val", "test"), ("FC100", "fc100"), 92 / 84),
    "tieredimagenet": SplitFoldersReader("tieredimagenet", ("train", "val", "test"),
                                         ("tieredimagenet", "tiered_imagenet"), 92 / 84),
    "cub": CubReader(),
    "cifar10": Cifar10Reader(),
    "cifar100": Cifar100Reader(),
    "cinic10": Cinic10Reader(),
    "folder": SplitFoldersReader("folder", ("base", "val", "novel"), (), 1.0),
    "fashionmnist": FashionMnistReader(),
}
