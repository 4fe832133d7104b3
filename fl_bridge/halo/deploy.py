"""`fl_bridge deploy` of a HaLo-FL run: for each client type's final (bw, ba), the few-shot
accuracy of the low-precision model (the global model with bw-bit weights and ba-bit
activations, as that client runs it) against the emulated 16-bit Tensil deployment of the same
global model (the bundle's `.tmodel` on tensil's bit-exact emulator, in this process), on the
same novel images and the same seeded episodes. The emulated features are centred on the
deployed checkpoint's base mean (what the board uses); the low-precision model's on its own
base-class mean."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fl_bridge.config import RunConfig
from fl_bridge.data import dataset
from fl_bridge.model import FLModel
from fl_bridge.precision.fakequant import LayerPrecision, fake_quantized
from tensil.emulator import ModelRunner
from tensil.tmodel import read_model
from train.augment import to_input
from train.checkpoint import load_checkpoint
from train.fewshot import extract_features, fewshot_scores

IMAGES_PER_CLASS = 20  # novel images per class emulated (enough for 5 shots + 15 queries)


def final_precisions(rounds: list[dict], constraints: list[str]) -> dict[str, list[int]]:
    """Each client type's final (bw, ba, be) (every client of a type walks the same path)."""
    last = next(r["halo_precisions"] for r in reversed(rounds) if "halo_precisions" in r)
    out: dict[str, list[int]] = {}
    for constraint, p in zip(constraints, last):
        out.setdefault(constraint, list(p))
    return out


def _scores(features: torch.Tensor, labels: np.ndarray, base_mean: torch.Tensor, cfg: RunConfig) -> dict:
    return fewshot_scores(features, labels, base_mean, cfg.shots, ways=cfg.ways, queries=cfg.queries,
                          episodes=cfg.episodes, seed=cfg.seed)


def emulated_features(tmodel: Path, images: np.ndarray, pre, dim: int) -> np.ndarray:
    """Features of `images` from the compiled program on tensil's emulator, one image at a time."""
    runner = ModelRunner(read_model(tmodel))
    (inp,), (out,) = runner.loaded.manifest.input_names, runner.loaded.manifest.output_names
    x = to_input(images, pre).numpy().astype(np.float32)
    feats = [runner.run({inp: xi[None]}, {out: (1, dim)})[out].reshape(-1) for xi in x]
    return np.stack(feats)


def halo_deploy_report(cfg: RunConfig, model: FLModel, rounds: list[dict], ckpt_path: Path, tmodel: Path) -> dict:
    from fl_bridge.halo.settings import settings

    halo = settings(cfg)
    data = dataset(cfg.dataset, cfg.data_root, cfg.image_size)
    novel = data.novel.subset(list(range(data.novel.num_classes)), IMAGES_PER_CLASS)
    ckpt = load_checkpoint(ckpt_path)
    emulated = torch.from_numpy(emulated_features(tmodel, novel.images, data.preprocessing, ckpt.feature_dim))
    deployed = _scores(emulated, novel.labels, ckpt.base_mean, cfg)
    types = {}
    for constraint, (bw, ba, be) in final_precisions(rounds, halo.constraints()).items():
        with fake_quantized(model, LayerPrecision(bw, ba, None), errors=False):
            base_mean = extract_features(model.backbone, data.base.images, data.preprocessing).mean(dim=0)
            low = extract_features(model.backbone, novel.images, data.preprocessing)
        low_scores = _scores(low, novel.labels, base_mean, cfg)
        types[constraint] = {"final_precision": [bw, ba, be], "low_precision_model": low_scores,
                             "difference_points": {k: 100 * (deployed[k] - low_scores[k])
                                                   for k in low_scores if not k.endswith("ci95")}}
    return {"novel_images": len(novel.labels), "episodes": cfg.episodes,
            "emulated_16bit_deployment": {**deployed, "tmodel": str(tmodel)}, "client_types": types,
            "note": "low-precision model: the global 8-bit model with the type's bw-bit weights and ba-bit activations "
                    "(power-of-two grids, BatchNorm in float); deployment: the same global model on Tensil's "
                    "fixed point of the bundle's arch, emulated"}
