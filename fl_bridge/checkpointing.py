"""The bridge from a federated model to contract 1: merge the adapters into plain convolutions
(checking that the features do not change), compute the base-class feature mean on the clean
base images, and write the backbone checkpoint."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from fl_bridge.config import RunConfig
from fl_bridge.lora import merge_lora
from fl_bridge.model import FLModel, ModelConfig
from train.backbones import build_backbone
from train.checkpoint import BackboneCheckpoint, Member, save_checkpoint
from train.datasets import FewShotData
from train.fewshot import extract_features

MERGE_TOLERANCE = 1e-3


def merged_backbone(model: FLModel, data: FewShotData) -> tuple[torch.nn.Module, float]:
    """A plain backbone with the adapters folded in, and max |f_merged - f_adapted| on base images."""
    adapted = model.backbone.eval()
    plain = build_backbone(adapted.spec).eval()
    plain.load_state_dict(merge_lora(copy.deepcopy(adapted)).state_dict())
    probe = data.base.images[: 64]
    pre = data.preprocessing
    diff = float((extract_features(adapted, probe, pre) - extract_features(plain, probe, pre)).abs().max())
    return plain, diff


def write_backbone_checkpoint(model: FLModel, model_cfg: ModelConfig, data: FewShotData, cfg: RunConfig,
                              rounds: list[dict], path: Path) -> Path:
    plain, diff = merged_backbone(model, data)
    if diff > MERGE_TOLERANCE:
        raise RuntimeError(f"merging the adapters changed the features by {diff:.2e} (> {MERGE_TOLERANCE})")
    base_mean = extract_features(plain, data.base.images, data.preprocessing).mean(dim=0)
    evaluated = [r for r in rounds if any(k.startswith("fewshot") for k in r)]
    metrics = {"merge_max_abs_diff": diff, "rounds": rounds[-1]["round"], **(evaluated[-1] if evaluated else {})}
    ckpt = BackboneCheckpoint(
        members=[Member(plain.spec, {k: v.detach().clone() for k, v in plain.state_dict().items()})],
        preprocessing=data.preprocessing, base_mean=base_mean, dataset=cfg.dataset, metrics=metrics,
        config={"stage": "fl_bridge", "model": model_cfg.to_dict(), **cfg.to_dict()},
    )
    return save_checkpoint(ckpt, path)
