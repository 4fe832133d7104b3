"""The federated model: a `train/` backbone plus its classification (and rotation) heads, with
FLoCoRA adapters or not, and the list of tensors a message carries.

The frozen base is rebuilt by every party from `base_seed` (CPU init, fixed order) and checked
by the SHA-256 of its frozen weights, so only trained tensors travel: for FedAvg every parameter,
for FLoCoRA the adapters, the stem (unless adapted), the norms and the heads; in both cases the
BatchNorm running statistics too (they are trained state of the norms).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from fl_bridge.codec import Layout
from fl_bridge.lora import frozen_base_hash, inject_lora
from train.backbones import Backbone, BackboneSpec, build_backbone

METHODS = ("fedavg", "flocora")


@dataclass(frozen=True)
class ModelConfig:
    """What every party needs to rebuild the same model; sent to clients in each message."""

    spec: BackboneSpec
    num_classes: int
    method: str = "flocora"
    rank: int = 8
    alpha: float = 128.0
    adapt_stem: bool = False
    rotation: bool = False
    base_seed: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["spec"] = self.spec.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d["spec"] = BackboneSpec.from_dict(d["spec"])
        return cls(**d)


class FLModel(nn.Module):
    """Backbone features -> linear classifier over the base classes (+ 4-way rotation head)."""

    def __init__(self, backbone: Backbone, num_classes: int, rotation: bool):
        super().__init__()
        self.backbone = backbone
        self.classifier = nn.Linear(backbone.feature_dim, num_classes)
        self.rotation = nn.Linear(backbone.feature_dim, 4) if rotation else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(x))


def build_model(cfg: ModelConfig) -> FLModel:
    """The model of `cfg`, identical on every party for the same `base_seed`."""
    if cfg.method not in METHODS:
        raise ValueError(f"unknown method {cfg.method!r}: choose one of {', '.join(METHODS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.base_seed)
        model = FLModel(build_backbone(cfg.spec), cfg.num_classes, cfg.rotation)
        if cfg.method == "flocora":
            inject_lora(model.backbone, cfg.rank, cfg.alpha, adapt_stem=cfg.adapt_stem)
    return model


def base_hash(model: nn.Module) -> str:
    return frozen_base_hash(model)


def communicated_names(model: nn.Module) -> list[str]:
    """Trained parameters and floating-point buffers, in state-dict order."""
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    floats = {n for n, b in model.named_buffers() if b.is_floating_point()}
    return [n for n in model.state_dict() if n in trained or n in floats]


def layout(model: nn.Module) -> Layout:
    sd = model.state_dict()
    return [(n, tuple(sd[n].shape)) for n in communicated_names(model)]


def get_communicated(model: nn.Module) -> dict[str, np.ndarray]:
    sd = model.state_dict()
    return {n: sd[n].detach().cpu().numpy().astype(np.float32) for n in communicated_names(model)}


def set_communicated(model: nn.Module, arrays: dict[str, np.ndarray]) -> None:
    """Load communicated tensors (float32 arrays) into `model` in place."""
    sd = model.state_dict()
    with torch.no_grad():
        for name in communicated_names(model):
            sd[name].copy_(torch.from_numpy(np.asarray(arrays[name])).to(sd[name].dtype))
