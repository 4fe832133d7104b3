"""Every dataset reader on small generated files in the real on-disk layouts."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from train.datasets import DatasetError, load_dataset
from train.readers import CIFARFS_NOVEL, CIFARFS_VAL, fit_image, read_idx

SIZE = 16


def write_png(path: Path, rng: np.random.Generator, shape=(20, 24)) -> np.ndarray:
    """A random RGB image written as PNG (cv2 stores BGR); returns the RGB array."""
    rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return rgb


def class_tree(root: Path, classes: list[str], per_class: int, rng) -> None:
    for c in classes:
        for i in range(per_class):
            write_png(root / c / f"{c}_{i:02d}.png", rng)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def check(data, base_classes, val_classes, novel_classes):
    assert data.base.images.dtype == np.uint8 and data.base.images.shape[1:] == (3, SIZE, SIZE)
    assert data.base.labels.dtype == np.int64
    assert data.base.num_classes == base_classes and set(data.base.labels) == set(range(base_classes))
    assert (data.val.num_classes if data.val else 0) == val_classes
    assert data.novel.num_classes == novel_classes
    assert data.base_test is not None and data.base_test.num_classes == base_classes
    assert data.preprocessing.image_size == SIZE and len(data.preprocessing.mean) == 3


def test_synthetic_is_deterministic_and_disjoint(cache):
    a = load_dataset("synthetic", None, SIZE, cache_dir=cache)
    check(a, 64, 16, 20)
    assert set(a.base.class_names).isdisjoint(a.novel.class_names)
    assert set(a.val.class_names).isdisjoint(a.novel.class_names)
    b = load_dataset("synthetic", None, SIZE, cache_dir=cache / "other")
    assert np.array_equal(a.novel.images, b.novel.images)
    assert not np.array_equal(a.base.images[:20], a.base_test.images[:20])
    assert len(list(cache.glob("*.npz"))) == 1  # decoded once, reused


def test_folder_layout_and_holdout(tmp_path, rng, cache):
    class_tree(tmp_path / "d" / "base", ["a", "b", "c"], 10, rng)
    class_tree(tmp_path / "d" / "novel", ["x", "y"], 4, rng)
    data = load_dataset("folder", str(tmp_path / "d"), SIZE, cache_dir=cache)
    check(data, 3, 0, 2)
    assert len(data.base) == 27 and len(data.base_test) == 3  # 10% of each base class held out
    assert data.novel.class_names == ["x", "y"]


def test_fit_image_resizes_short_side_then_centre_crops():
    image = np.zeros((40, 80, 3), np.uint8)
    image[:, 30:50] = 255  # a centred white band
    out = fit_image(image, 20, 16)
    assert out.shape == (3, 16, 16)
    assert out[:, :, 8].min() == 255 and out[:, :, 0].max() == 0


@pytest.mark.parametrize("name,folders,sub", [
    ("cifarfs", ("meta-train", "meta-val", "meta-test"), "cifar_fs"),
    ("fc100", ("train", "val", "test"), "FC100"),
    ("tieredimagenet", ("train", "val", "test"), "tieredimagenet"),
])
def test_split_folder_datasets(tmp_path, rng, cache, name, folders, sub):
    for folder, classes in zip(folders, (["b1", "b2"], ["v1"], ["n1", "n2", "n3"])):
        class_tree(tmp_path / sub / folder, classes, 3, rng)
    check(load_dataset(name, str(tmp_path), SIZE, cache_dir=cache), 2, 1, 3)


def test_miniimagenet_csv_layout(tmp_path, rng, cache):
    root = tmp_path / "miniimagenetimages"
    for csv_name, wnids in (("train.csv", ["n01", "n02"]), ("validation.csv", ["n03"]), ("test.csv", ["n04", "n05"])):
        lines = ["filename,label"]
        for w in wnids:
            for i in range(3):
                write_png(root / "images" / f"{w}{i:04d}.jpg", rng)
                lines.append(f"{w}{i:04d}.jpg,{w}")
        (root / csv_name).write_text("\n".join(lines) + "\n")
    data = load_dataset("miniimagenet", str(tmp_path), SIZE, cache_dir=cache)
    check(data, 2, 1, 2)
    assert data.novel.class_names == ["n04", "n05"]


def test_cub_class_split(tmp_path, rng, cache):
    class_tree(tmp_path / "CUB_200_2011" / "images", [f"{i:03d}.Bird_{i}" for i in range(1, 9)], 2, rng)
    data = load_dataset("cub", str(tmp_path), SIZE, cache_dir=cache)
    check(data, 4, 2, 2)
    assert data.novel.class_names == ["004.Bird_4", "008.Bird_8"]


def cifar_batch(rng, n, labels_key, classes):
    return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            labels_key: [int(v) for v in rng.permutation(np.arange(n) % classes)]}


def test_cifar10_pickles(tmp_path, rng, cache):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    for name in ("data_batch_1", "data_batch_2", "test_batch"):
        (root / name).write_bytes(pickle.dumps(cifar_batch(rng, 40, b"labels", 10)))
    data = load_dataset("cifar10", str(tmp_path), SIZE, cache_dir=cache)
    check(data, 5, 0, 5)
    assert len(data.base) == 40 and data.novel.class_names[0] == "dog"


def test_cifar100_uses_cifarfs_split(tmp_path, rng, cache):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    others = [f"class{i}" for i in range(64)]
    names = sorted(others + list(CIFARFS_VAL + CIFARFS_NOVEL))
    (root / "meta").write_bytes(pickle.dumps({b"fine_label_names": [n.encode() for n in names]}))
    for name in ("train", "test"):
        (root / name).write_bytes(pickle.dumps(cifar_batch(rng, 200, b"fine_labels", 100)))
    data = load_dataset("cifar100", str(tmp_path), 32, cache_dir=cache)
    assert (data.base.num_classes, data.val.num_classes, data.novel.num_classes) == (64, 16, 20)
    assert sorted(data.novel.class_names) == sorted(CIFARFS_NOVEL)
    assert len(data.novel) == 80  # 20 classes x (2 train + 2 test) images


def test_cinic10_folders(tmp_path, rng, cache):
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    for split in ("train", "valid", "test"):
        class_tree(tmp_path / "CINIC-10" / split, classes, 2, rng)
    check(load_dataset("cinic10", str(tmp_path), SIZE, cache_dir=cache), 5, 0, 5)


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashionmnist_idx(tmp_path, rng, cache):
    for prefix, n in (("train", 50), ("t10k", 30)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    data = load_dataset("fashionmnist", str(tmp_path), SIZE, cache_dir=cache)
    check(data, 5, 0, 5)
    assert np.array_equal(data.base.images[:, 0], data.base.images[:, 2])  # grey replicated to RGB
    assert read_idx(tmp_path / "t10k-labels-idx1-ubyte.gz").tolist()[:3] == [0, 1, 2]


def test_missing_and_corrupt_data(tmp_path, rng, cache):
    with pytest.raises(DatasetError, match="needs --data-root"):
        load_dataset("miniimagenet", None, SIZE, cache_dir=cache)
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("cifarfs", str(tmp_path / "nowhere"), SIZE, cache_dir=cache)
    class_tree(tmp_path / "d" / "base", ["a"], 2, rng)
    class_tree(tmp_path / "d" / "novel", ["x"], 2, rng)
    (tmp_path / "d" / "novel" / "x" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="corrupt or unsupported image .*broken.png"):
        load_dataset("folder", str(tmp_path / "d"), SIZE, cache_dir=cache)
    assert not list(cache.glob("*.npz"))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "data_batch_1").write_bytes(b"\x80\x04truncated")
    (tmp_path / "c" / "test_batch").write_bytes(b"")
    with pytest.raises(DatasetError, match="corrupt CIFAR batch"):
        load_dataset("cifar10", str(tmp_path / "c"), SIZE, cache_dir=cache)
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("imagenet", None, SIZE)


class _RunsCode:
    def __reduce__(self):
        return (Path.touch, (Path(_RunsCode.marker),))


def test_a_cifar_batch_that_would_run_code_is_refused(tmp_path, rng, cache):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    _RunsCode.marker = str(tmp_path / "ran")
    for name in ("data_batch_1", "test_batch"):
        batch = cifar_batch(rng, 40, b"labels", 10)
        if name == "test_batch":
            batch[b"batch_label"] = _RunsCode()
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))  # protocol 2: as the real files
    with pytest.raises(DatasetError, match="corrupt CIFAR batch .*test_batch"):
        load_dataset("cifar10", str(tmp_path), SIZE, cache_dir=cache)
    assert not (tmp_path / "ran").exists()
