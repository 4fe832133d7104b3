"""Training input pipelines side by side: ours (uint8 cache + batched tensor augmentation) vs the
EASY/PEFSL way (a Dataset decoding and transforming each image file in __getitem__, batched by a
torch DataLoader). PIL is not installed here, so the per-image path uses cv2/numpy per image,
which is what matters: one decode and one set of transforms per image in Python.

Prints images/s of (1) the input pipeline alone and (2) full EASY training steps (same model,
same batch, same two-pass step), and the ratios, for the embedded default (32 px) and 84 px.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from train.augment import Augment, AugmentConfig
from train.checkpoint import Preprocessing
from train.easy import EasyNet, FitConfig, train_step
from train.backbones import build_backbone
from train.synthetic import SyntheticConfig, render_split

BATCH = 128
IMAGES = 1024
STEPS = 3


class PerImageDataset(torch.utils.data.Dataset):
    """EASY-style: read + decode one file, RandomResizedCrop, ColorJitter, flip, normalise."""

    def __init__(self, paths: list[Path], labels: np.ndarray, pre: Preprocessing, seed: int = 0):
        self.paths, self.labels, self.pre = paths, labels, pre
        self.rng = np.random.default_rng(seed)
        self.mean = np.array(pre.mean, np.float32).reshape(3, 1, 1)
        self.std = np.array(pre.std, np.float32).reshape(3, 1, 1)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        import cv2

        img = cv2.cvtColor(cv2.imread(str(self.paths[i]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        h, w = img.shape[:2]
        area = self.rng.uniform(0.08, 1.0) * h * w
        ratio = np.exp(self.rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw, ch = min(w, int(round(np.sqrt(area * ratio)))), min(h, int(round(np.sqrt(area / ratio))))
        top, left = self.rng.integers(0, h - ch + 1), self.rng.integers(0, w - cw + 1)
        size = self.pre.image_size
        img = cv2.resize(img[top : top + ch, left : left + cw], (size, size), interpolation=cv2.INTER_LINEAR)
        x = img.astype(np.float32) / 255.0
        x *= self.rng.uniform(0.6, 1.4)  # brightness
        grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
        x = grey.mean() + (x - grey.mean()) * self.rng.uniform(0.6, 1.4)  # contrast
        grey = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
        x = np.clip(grey + (x - grey) * self.rng.uniform(0.6, 1.4), 0, 1)  # saturation
        if self.rng.random() < 0.5:
            x = x[:, ::-1]
        x = (x.transpose(2, 0, 1) - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(x)), int(self.labels[i])


def our_batches(images: np.ndarray, labels: np.ndarray, pre: Preprocessing):
    gen = torch.Generator().manual_seed(0)
    augment = Augment(AugmentConfig(), pre)
    while True:
        order = torch.randperm(len(labels), generator=gen)
        for s in range(0, len(order) - BATCH + 1, BATCH):
            idx = order[s : s + BATCH].numpy()
            yield augment(torch.as_tensor(images[idx]), gen), torch.as_tensor(labels[idx])


def loader_batches(dataset: PerImageDataset):
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=0, drop_last=True)
    while True:
        yield from loader


def interleaved(ours, theirs, rounds: int, work=None) -> tuple[float, float]:
    """Images/s of both pipelines, timed alternately batch by batch (so a change of machine load
    hits both alike); each figure is from the median batch time after one warm-up batch."""
    times: tuple[list[float], list[float]] = ([], [])
    for r in range(rounds + 1):
        for batches, out in ((ours, times[0]), (theirs, times[1])):
            start = time.perf_counter()
            x, y = next(batches)
            if work:
                work(x, y)
            if r:
                out.append(time.perf_counter() - start)
    return BATCH / float(np.median(times[0])), BATCH / float(np.median(times[1]))


def compare(size: int, folder: Path) -> None:
    images, labels, _ = render_split(SyntheticConfig(base_classes=16, base_images=IMAGES // 16), "base", size)
    paths = []
    import cv2

    for i, im in enumerate(images):
        paths.append(folder / f"{size}_{i:05d}.png")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(im.transpose(1, 2, 0), cv2.COLOR_RGB2BGR))
    pre = Preprocessing(size, size)
    ours, theirs = our_batches(images, labels, pre), loader_batches(PerImageDataset(paths, labels, pre))
    data_ours, data_theirs = interleaved(ours, theirs, 3 * STEPS)
    print(f"  {size:3d} px input pipeline : ours {data_ours:8.0f} img/s | per-image DataLoader {data_theirs:7.0f} img/s "
          f"| ratio {data_ours / data_theirs:5.1f}x")
    config = FitConfig(image_size=size)
    torch.manual_seed(0)
    net = EasyNet(build_backbone(config.spec), 16, rotations=True)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        train_step(net, x, y, config, net.backbone.mixup_layers, gen)
        opt.step()

    train_ours, train_theirs = interleaved(ours, theirs, STEPS, step)
    print(f"  {size:3d} px EASY training  : ours {train_ours:8.0f} img/s | per-image DataLoader {train_theirs:7.0f} img/s "
          f"| ratio {train_ours / train_theirs:5.2f}x")


def main() -> None:
    torch.set_num_threads(1)
    print(f"bench_train: ResNet-9 16 fm strided, batch {BATCH}, two-pass EASY step, 1 torch thread, CPU "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (32, 84):
            compare(size, Path(tmp))
    print("  (on CPU the backbone dominates a training step; the input-pipeline ratio is what a GPU sees)")


if __name__ == "__main__":
    main()
