"""Evaluation of the global model on the server: classification accuracy of its head on the
held-out base test split, and few-shot accuracy of its backbone on episodes of novel classes."""

from __future__ import annotations

import torch

from fl_bridge.config import RunConfig
from fl_bridge.model import FLModel
from train.datasets import FewShotData
from train.fewshot import extract_features, fewshot_scores


class Evaluator:
    def __init__(self, data: FewShotData, cfg: RunConfig):
        self.data, self.cfg = data, cfg

    @torch.no_grad()
    def evaluate(self, model: FLModel) -> dict:
        d, pre = self.data, self.data.preprocessing
        model.eval()
        out = {}
        if d.base_test is not None:
            logits = model.classifier(extract_features(model.backbone, d.base_test.images, pre))
            out["base_test_accuracy"] = float((logits.argmax(1).numpy() == d.base_test.labels).mean())
        if d.novel is None:
            return out
        base_mean = extract_features(model.backbone, d.base.images, pre).mean(dim=0)
        novel = extract_features(model.backbone, d.novel.images, pre)
        out.update(fewshot_scores(novel, d.novel.labels, base_mean, self.cfg.shots, ways=self.cfg.ways,
                                  queries=self.cfg.queries, episodes=self.cfg.episodes, seed=self.cfg.seed,
                                  prefix="fewshot_"))
        return out
