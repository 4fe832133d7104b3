"""`evaluate`: few-shot accuracy of a contract-1 checkpoint on a split of its own dataset."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from contracts import backbone_path
from safeio import UsageError, check_choice, check_int_range
from train.checkpoint import build_model, load_checkpoint
from train.datasets import load_dataset
from train.fewshot import evaluate_fewshot, extract_features


@dataclass(frozen=True)
class EvaluateConfig:
    checkpoint: str = backbone_path()
    ways: int = 5
    shots: int = 1
    queries: int = 15
    episodes: int = 2000
    split: str = "novel"
    data_root: str | None = None  # None: the data root stored in the checkpoint's config
    seed: int = 0
    device: str = "cpu"

    def check(self) -> "EvaluateConfig":
        """UsageError with one line for a flag that cannot work."""
        check_int_range("--ways", self.ways, 2)
        check_int_range("--shots", self.shots, 1)
        check_int_range("--queries", self.queries, 1)
        check_int_range("--episodes", self.episodes, 1)
        check_int_range("--seed", self.seed, 0)
        check_choice("--split", self.split, ("base", "val", "novel", "base_test"))
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise UsageError(f"--device {self.device!r}: unknown; use cpu, cuda or cuda:N")
        return self


def evaluate_checkpoint(config: EvaluateConfig) -> dict:
    """Load the checkpoint and its dataset (same image size), extract features through the
    checkpoint's own preprocessing, centre on its stored base mean, and run NCM episodes."""
    config.check()
    ckpt = load_checkpoint(config.checkpoint)
    root = config.data_root if config.data_root is not None else ckpt.config.get("data_root")
    data = load_dataset(ckpt.dataset or "synthetic", root, ckpt.preprocessing.image_size)
    split = data.split(config.split)
    model = build_model(ckpt).to(config.device)
    feats = extract_features(model, split.images, ckpt.preprocessing, device=config.device)
    base_mean = ckpt.base_mean
    if base_mean is None:  # a checkpoint without a stored mean: measure it on clean base images
        base_mean = extract_features(model, data.base.images, ckpt.preprocessing, device=config.device).mean(dim=0)
    result = evaluate_fewshot(feats, torch.as_tensor(split.labels), base_mean, ways=config.ways, shots=config.shots,
                              queries=config.queries, episodes=config.episodes, seed=config.seed)
    return {"accuracy": result.accuracy, "ci95": result.ci95, "dataset": ckpt.dataset, **asdict(config)}
