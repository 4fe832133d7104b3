"""Few-shot accuracy of a point: the float model (torch) and the fixed-point program (the
bit-exact emulator) on the same novel images and the same episodes, so their difference is the
loss due to the 16-bit fixed point alone."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from dse.config import EvalSettings
from dse.stages import file_lock, write_json


def novel_images(checkpoint_path: Path, settings: EvalSettings):
    """(checkpoint, novel ImageSplit at the checkpoint's size, `images_per_class` of each class)."""
    from train.checkpoint import load_checkpoint
    from train.datasets import load_dataset

    ckpt = load_checkpoint(checkpoint_path)
    data = load_dataset(ckpt.dataset, ckpt.config.get("data_root"), ckpt.preprocessing.image_size)
    split = data.split("novel")
    if settings.images_per_class:
        split = split.subset(list(range(split.num_classes)), settings.images_per_class)
    return ckpt, split


def float_features(checkpoint_path: Path, settings: EvalSettings) -> tuple[torch.Tensor, np.ndarray, object]:
    from train.checkpoint import build_model
    from train.fewshot import extract_features

    ckpt, split = novel_images(checkpoint_path, settings)
    return extract_features(build_model(ckpt), split, ckpt.preprocessing), split.labels, ckpt


def fixed_features(checkpoint_path: Path, tmodel: Path, settings: EvalSettings) -> tuple[torch.Tensor, dict]:
    """Features of the same images from the compiled program on the emulator (a batch at a
    time, bit-identical to one at a time), and its saturations."""
    from tensil.batch import BatchRunner
    from tensil.tmodel import read_model
    from train.augment import to_input

    ckpt, split = novel_images(checkpoint_path, settings)
    runner = BatchRunner(read_model(tmodel))
    (inp,), (out,) = runner.loaded.manifest.input_names, runner.loaded.manifest.output_names
    x = to_input(split.images, ckpt.preprocessing).numpy().astype(np.float32)
    start = time.perf_counter()
    dim = ckpt.feature_dim
    feats = runner.run({inp: x[:, None]}, {out: (1, dim)})[out][:, 0]
    seconds = time.perf_counter() - start
    return torch.from_numpy(feats), {"saturations": runner.counters.saturations,
                                     "input_overflows": runner.input_overflows,
                                     "emulated_images": len(x), "emulator_seconds_per_image": seconds / max(1, len(x))}


def score(features: torch.Tensor, labels, base_mean, settings: EvalSettings) -> dict:
    """`train.fewshot.fewshot_scores` with the sweep's settings: {"1shot": acc, "1shot_ci95": ci, ...}."""
    from train.fewshot import fewshot_scores

    return fewshot_scores(features, labels, base_mean, settings.shots, ways=settings.ways, queries=settings.queries,
                          episodes=settings.episodes, seed=settings.seed)


def _cached(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def float_accuracy(checkpoint: Path, out: Path, settings: EvalSettings) -> dict:
    """Float accuracy of the (exported) checkpoint, stored in `out` (reused when there)."""
    with file_lock(out):
        done = _cached(out)
        if done is not None:
            return done
        feats, labels, ckpt = float_features(checkpoint, settings)
        result = {**score(feats, labels, ckpt.base_mean, settings), "images": len(labels),
                  "settings": asdict(settings)}
        write_json(out, result)
        return result


def fixed_accuracy(checkpoint: Path, tmodel: Path, out: Path, settings: EvalSettings) -> dict:
    """Fixed-point accuracy of the program (emulated), with the cosine to the float features."""
    with file_lock(out):
        done = _cached(out)
        if done is not None:
            return done
        ref, labels, ckpt = float_features(checkpoint, settings)
        feats, stats = fixed_features(checkpoint, tmodel, settings)
        cos = torch.nn.functional.cosine_similarity(ref, feats, dim=1)
        result = {**score(feats, labels, ckpt.base_mean, settings), **stats, "min_cosine": float(cos.min()),
                  "mean_cosine": float(cos.mean()), "settings": asdict(settings)}
        write_json(out, result)
        return result
