"""A client's local objective: SGD on classification over its base classes, optionally with
EASY's rotation self-supervision (4-way rotation head, loss averaged with the class loss).
Views: random horizontal flips, or with `augment` EASY's full training transforms
(`train.augment`: random resized crop, colour jitter, flip). With an `Int8Training` the client
trains in INT8 (`fl_bridge.precision.engine`): weights on their grid, quantized activations and
errors, stochastic rounding from the task's seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from fl_bridge.model import FLModel
from fl_bridge.precision.engine import Int8Training, make_optimizer
from fl_bridge.precision.fakequant import fake_quantized
from fl_bridge.precision.optim import Optimizers
from train.augment import Augment, AugmentConfig, random_flip, to_input
from train.checkpoint import Preprocessing
from train.losses import rotate_quarters


@dataclass(frozen=True)
class LocalConfig:
    epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: bool = False
    seed: int = 0


def train_local(model: FLModel, images: np.ndarray, labels: np.ndarray, pre: Preprocessing,
                cfg: LocalConfig, int8: Int8Training | None = None) -> float:
    """Train the trainable parameters of `model` in place; return the mean training loss."""
    gen = torch.Generator().manual_seed(cfg.seed)
    if int8 is None:
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                              nesterov=cfg.momentum > 0)
        return _loop(model, images, labels, pre, cfg, opt, gen)
    rounding = torch.Generator().manual_seed(cfg.seed + 1)  # the client's stochastic rounding
    opt = make_optimizer(model, int8, cfg.lr, cfg.momentum, cfg.weight_decay, rounding)
    with fake_quantized(model, int8.layers(), rounding):
        return _loop(model, images, labels, pre, cfg, opt, gen)


def _loop(model: FLModel, images: np.ndarray, labels: np.ndarray, pre: Preprocessing, cfg: LocalConfig,
          opt: torch.optim.Optimizer | Optimizers, gen: torch.Generator) -> float:
    images_all, y_all = torch.as_tensor(images), torch.as_tensor(labels, dtype=torch.long)
    augment = Augment(AugmentConfig(), pre) if cfg.augment else None
    model.train()
    total, count = 0.0, 0
    for _ in range(cfg.epochs):
        order = torch.randperm(len(y_all), generator=gen)
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            if idx.numel() < 2:  # BatchNorm needs two samples
                continue
            y = y_all[idx]
            x = augment(images_all[idx], gen) if augment else random_flip(to_input(images_all[idx], pre), gen)
            feats = model.backbone(x)
            loss = F.cross_entropy(model.classifier(feats), y)
            if model.rotation is not None:
                xr, k = rotate_quarters(x)  # batches are shuffled, so each image's rotation is random
                loss = 0.5 * (loss + F.cross_entropy(model.rotation(model.backbone(xr)), k))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            count += len(idx)
    model.eval()
    return total / max(count, 1)
