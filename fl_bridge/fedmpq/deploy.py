"""`fl_bridge deploy` of a FedMPQ / AQFL / FPQ8 run: what the 16-bit Tensil deployment keeps and
loses. The deployed model is the global model at the allocation of the first client with the
largest budget (`server.deployed_codes`: its fixed-point weight values as float weights, exported
and compiled like any backbone, so the accelerator runs them in its 16-bit fixed point with
16-bit activations). On the same novel images and seeded episodes, the report gives the few-shot
accuracy of the emulated deployment (tensil's bit-exact emulator, in this process) and of every
budget level's model as the clients run it (its per-layer bits, activations at the method's bits).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fl_bridge.config import RunConfig
from fl_bridge.data import dataset
from fl_bridge.fedmpq import wire
from fl_bridge.fedmpq.allocate import average_bits
from fl_bridge.fedmpq.server import deployed_tensors, fixed_point, spec_of
from fl_bridge.fedmpq.train import mixed_precision
from fl_bridge.halo.deploy import IMAGES_PER_CLASS, _scores, emulated_features
from fl_bridge.model import FLModel, layout, set_communicated
from train.checkpoint import load_checkpoint
from train.fewshot import extract_features


def fedmpq_deploy_report(cfg: RunConfig, model: FLModel, state: dict[str, np.ndarray], rounds: list[dict],
                         ckpt_path: Path, tmodel: Path) -> dict:
    """`state`: the run's float global model; `model`: any model of the run (its weights are used
    as scratch and hold the deployed model's values on return)."""
    spec = spec_of(cfg)
    lay = layout(model)
    names, m = wire.layer_names(lay), wire.layer_sizes(lay)
    allocation = rounds[-1]["fedmpq"]["allocation"]
    data = dataset(cfg.dataset, cfg.data_root, cfg.image_size)
    novel = data.novel.subset(list(range(data.novel.num_classes)), IMAGES_PER_CLASS)
    ckpt = load_checkpoint(ckpt_path)
    emulated = torch.from_numpy(emulated_features(tmodel, novel.images, data.preprocessing, ckpt.feature_dim))
    deployed = _scores(emulated, novel.labels, ckpt.base_mean, cfg)
    top = spec.budgets.index(max(spec.budgets))
    levels = {}
    for v in sorted(set(spec.budgets)):
        client = spec.budgets.index(v)
        codes = fixed_point(state, names, allocation[client], spec.task.representation)
        with mixed_precision(model, codes, spec.task.act_bits):
            base_mean = extract_features(model.backbone, data.base.images, data.preprocessing).mean(dim=0)
            feats = extract_features(model.backbone, novel.images, data.preprocessing)
        scores = _scores(feats, novel.labels, base_mean, cfg)
        levels[f"budget_{v}"] = {"client": client, "average_bits": average_bits(allocation[client], m),
                                 "bits": dict(zip(names, allocation[client])), "as_trained": scores,
                                 "deployed_minus_as_trained_points": {
                                     k: 100 * (deployed[k] - scores[k]) for k in scores if not k.endswith("ci95")}}
    set_communicated(model, deployed_tensors(cfg, state, rounds, lay))
    return {"novel_images": len(novel.labels), "episodes": cfg.episodes, "deployed_level": max(spec.budgets),
            "deployed_client": top, "emulated_16bit_deployment": {**deployed, "tmodel": str(tmodel)},
            "levels": levels,
            "note": "as trained: the global model at the level's per-layer bits with "
                    f"{spec.task.act_bits}-bit activations; deployment: the largest budget's model on Tensil's "
                    "16-bit fixed point (weights re-rounded to its grid after BatchNorm folding, 16-bit activations), "
                    "emulated. Levels below the deployed one are a different model (fewer weight bits)."}
