"""Evaluation of the global model on the server: classification accuracy of its head on the
held-out base test split, and few-shot accuracy of its backbone on episodes of novel classes."""

from __future__ import annotations

import numpy as np
import torch

from fl_bridge.config import RunConfig
from fl_bridge.local import to_input
from fl_bridge.model import FLModel
from train.checkpoint import Preprocessing
from train.datasets import FewShotData
from train.fewshot import evaluate_fewshot

BATCH = 256


@torch.no_grad()
def features(backbone: torch.nn.Module, images: np.ndarray, pre: Preprocessing) -> torch.Tensor:
    """Backbone features of uint8 NCHW images, in eval mode, batched."""
    backbone.eval()
    return torch.cat([backbone(to_input(images[i : i + BATCH], pre)) for i in range(0, len(images), BATCH)])


class Evaluator:
    def __init__(self, data: FewShotData, cfg: RunConfig):
        self.data, self.cfg = data, cfg

    @torch.no_grad()
    def evaluate(self, model: FLModel) -> dict:
        d, pre = self.data, self.data.preprocessing
        model.eval()
        logits = model.classifier(features(model.backbone, d.base_test.images, pre))
        out = {"base_test_accuracy": float((logits.argmax(1).numpy() == d.base_test.labels).mean())}
        base_mean = features(model.backbone, d.base.images, pre).mean(dim=0)
        novel = features(model.backbone, d.novel.images, pre)
        for shots in self.cfg.shots:
            mean, ci = evaluate_fewshot(novel, torch.as_tensor(d.novel.labels), base_mean, ways=self.cfg.ways,
                                        shots=shots, queries=self.cfg.queries, episodes=self.cfg.episodes,
                                        seed=self.cfg.seed)
            out[f"fewshot_{shots}shot"], out[f"fewshot_{shots}shot_ci95"] = float(mean), float(ci)
        return out
