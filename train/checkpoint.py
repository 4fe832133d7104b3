"""Backbone checkpoints: artifact contract 1 of docs/architecture.md, written by `train/` and `fl_bridge/`.

A checkpoint is a plain dict (loadable with `torch.load(weights_only=True)`):

    format            "fsl-backbone"
    version           1
    members           [{"spec": BackboneSpec dict, "state_dict": backbone weights only}, ...]
                      (one member, or N for an ensemble whose features are concatenated)
    preprocessing     Preprocessing dict (resize, crop, mean, std, channel order)
    base_mean         float tensor (feature_dim,) of the base-class features (EASY's `M`)
    dataset           dataset name
    metrics           dict of figures (few-shot accuracies, ci95, epochs, ...)
    config            dict of the configuration that produced it
    sha256            digest of everything above (`content_digest`), checked on every load: torch
                      does not notice a flipped bit in tensor data
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from contracts.preprocessing import Preprocessing  # the schema of contract 1's `preprocessing`
from train.backbones import Backbone, BackboneSpec, build_backbone
from train.files import atomic_path

FORMAT = "fsl-backbone"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt or not of contract 1."""


@dataclass
class Member:
    spec: BackboneSpec
    state_dict: dict[str, torch.Tensor]


@dataclass
class BackboneCheckpoint:
    members: list[Member]
    preprocessing: Preprocessing
    base_mean: torch.Tensor | None = None
    dataset: str = ""
    metrics: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    @property
    def feature_dim(self) -> int:
        return sum(build_backbone(m.spec).feature_dim for m in self.members)

    @property
    def spec(self) -> BackboneSpec:
        """The first member's spec (all members share input size and channels)."""
        return self.members[0].spec

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "members": [{"spec": m.spec.to_dict(), "state_dict": m.state_dict} for m in self.members],
            "preprocessing": self.preprocessing.to_dict(),
            "base_mean": None if self.base_mean is None else self.base_mean.detach().float().cpu(),
            "dataset": self.dataset,
            "metrics": self.metrics,
            "config": self.config,
        }

    @classmethod
    def from_dict(cls, d: dict, source: str = "checkpoint") -> "BackboneCheckpoint":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise CheckpointError(f"{source}: not a backbone checkpoint (format {FORMAT!r} expected)")
        if d.get("version") != VERSION:
            raise CheckpointError(f"{source}: checkpoint version {d.get('version')} is not {VERSION}")
        try:
            members = [Member(BackboneSpec.from_dict(m["spec"]), m["state_dict"]) for m in d["members"]]
            pre = Preprocessing.from_dict(d["preprocessing"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{source}: malformed checkpoint ({e!r})") from None
        if not members:
            raise CheckpointError(f"{source}: checkpoint has no members")
        return cls(members, pre, d.get("base_mean"), d.get("dataset", ""), d.get("metrics", {}), d.get("config", {}))


class Ensemble(nn.Module):
    """Backbones run side by side; features concatenated (EASY's `E`)."""

    def __init__(self, members: list[Backbone]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.feature_dim = sum(m.feature_dim for m in members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m(x) for m in self.members], dim=1)


def build_model(ckpt: BackboneCheckpoint) -> nn.Module:
    """The feature extractor of a checkpoint, in eval mode: a Backbone, or an Ensemble of them."""
    backbones = []
    for m in ckpt.members:
        net = build_backbone(m.spec)
        try:
            net.load_state_dict(m.state_dict)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise CheckpointError(f"checkpoint weights do not fit {m.spec.family}: {first}") from None
        if not all(bool(torch.isfinite(t).all()) for t in m.state_dict.values() if t.is_floating_point()):
            raise CheckpointError("checkpoint weights are not finite (NaN or inf): a diverged training run")
        backbones.append(net.eval())
    return backbones[0] if len(backbones) == 1 else Ensemble(backbones).eval()


def atomic_torch_save(obj: object, path: str | Path) -> None:
    """`torch.save` through a temp file and one rename: never a half-written file."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _feed(h: "hashlib._Hash", value: object) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(value.shape)}:".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        h.update(b"{")
        for key in sorted(value, key=str):
            _feed(h, key)
            _feed(h, value[key])
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[")
        for item in value:
            _feed(h, item)
        h.update(b"]")
    else:
        h.update(f"{type(value).__name__}:{value!r};".encode())


def content_digest(d: dict) -> str:
    """sha256 of a checkpoint dict's contents (tensors by their bytes, other values by repr),
    without its own `sha256` entry."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in d.items() if k != "sha256"})
    return h.hexdigest()


def save_checkpoint(ckpt: BackboneCheckpoint, path: str | Path) -> Path:
    d = ckpt.to_dict()
    d["sha256"] = content_digest(d)
    atomic_torch_save(d, path)
    return Path(path)


def load_checkpoint(path: str | Path) -> BackboneCheckpoint:
    """Load and check a contract-1 checkpoint; CheckpointError with one line otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt files
        raise CheckpointError(f"{path}: cannot be read as a checkpoint ({type(e).__name__})") from None
    if isinstance(d, dict) and "sha256" in d and d["sha256"] != content_digest(d):
        raise CheckpointError(f"{path}: corrupt (its contents differ from the sha256 recorded when it was written)")
    return BackboneCheckpoint.from_dict(d, source=str(path))
