"""EASY's training routine (Bendou et al. 2022) for one backbone or an ensemble.

Per batch, two forward/backward passes with accumulated gradients, then one SGD step:
1. manifold mixup: lam ~ Beta(2, 2), a layer drawn uniformly over the backbone's valid mixing
   layers, a random permutation; loss lam * CE(y) + (1 - lam) * CE(y[perm]);
2. rotations: batch quarters rotated by 0/90/180/270 degrees; loss 0.5 * CE(class) + 0.5 * CE(rot).
SGD Nesterov (momentum 0.9, weight decay 5e-4); per-step cosine annealing with warm restarts
every `cycle_epochs`, peak x gamma per cycle, momentum reset at each restart (EASY re-creates
its optimiser). After each epoch the backbone is scored by 5-way few-shot accuracy on the
validation classes (ME + NCM); the best epoch is kept (the last epoch when there is no val).

Every epoch writes, atomically, the contract-1 checkpoint (`out`: finished members + the current
member at its best epoch) and a resume state (`out` + `.state.pt`: weights, heads, optimiser,
random generator, epoch, best so far). `fit` resumes from that state when it exists and was
written by the same configuration, and deletes it when training completes.

Multi-GPU: started under `torchrun`, each process trains on its share of every batch through
DistributedDataParallel and rank 0 writes the files (run here on CPU with gloo, never on GPUs).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from contracts import backbone_path
from train.augment import Augment, AugmentConfig
from train.backbones import Backbone, BackboneSpec, Mixup, build_backbone, check_spec
from train.checkpoint import (BackboneCheckpoint, CheckpointError, Member, build_model, load_checkpoint,
                              save_checkpoint)
from train.files import atomic_path
from train.datasets import FewShotData, ImageSplit, load_dataset
from train.fewshot import FewShotResult, evaluate_fewshot, extract_features
from train.losses import beta22, mixup_cross_entropy, rotate_quarters
from train.schedule import CosineRestarts
from safeio import UsageError, check_output, check_range, output_lock

STATE_SUFFIX = ".state.pt"
STATE_VERSION = 2
STATE_MAGIC = b"fsl-train-state\n"  # then the sha256 of the torch payload, then the payload
# Fields that do not change the trained weights: a run may resume with other values of these.
NOT_TRAINING = ("episodes", "compare_untrained", "device", "threads", "force")
DEVICE_NAME = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


class TrainError(RuntimeError):
    """A training run that cannot start or resume (bad config, foreign resume state)."""


@dataclass(frozen=True)
class FitConfig:
    """Everything `python -m train fit` takes; defaults = the embedded default."""

    dataset: str = "synthetic"
    data_root: str | None = None
    backbone: str = "resnet9"
    feature_maps: int = 16
    strided: bool = True
    image_size: int = 32
    norm: str = "batch"
    epochs: int = 12
    cycle_epochs: int = 6
    batch_size: int = 128
    lr: float = 0.1
    gamma: float = 0.9
    momentum: float = 0.9
    weight_decay: float = 5e-4
    rotations: bool = True
    mixup: bool = True
    ensemble: int = 1
    seed: int = 0
    val_episodes: int = 500
    episodes: int = 2000
    compare_untrained: bool = True
    device: str = "auto"
    threads: int = 1
    out: str = backbone_path()
    force: bool = False

    @property
    def spec(self) -> BackboneSpec:
        return BackboneSpec(self.backbone, self.feature_maps, self.strided, 3, self.image_size, self.norm)

    def to_dict(self) -> dict:
        return asdict(self)

    def training_fields(self) -> dict:
        """The fields a resume state must match (everything that changes the weights)."""
        return {k: v for k, v in self.to_dict().items() if k not in NOT_TRAINING}

    def check(self) -> "FitConfig":
        """TrainError with one line for a flag that cannot work; nothing is read or written."""
        positive = ("epochs", "cycle_epochs", "batch_size", "ensemble", "val_episodes", "episodes")
        bad = [f.name for f in fields(self) if f.name in positive and getattr(self, f.name) < 1]
        if bad:
            raise TrainError(f"{', '.join(bad)} must be at least 1")
        if self.batch_size < 4 and self.rotations:
            raise TrainError("rotation training needs a batch of at least 4 (one image per rotation)")
        try:
            check_range("--lr", self.lr, 0, low_open=True)
            check_range("--gamma", self.gamma, 0, 1, low_open=True)
            check_range("--momentum", self.momentum, 0, 1, high_open=True)
            check_range("--weight-decay", self.weight_decay, 0)
            if self.seed < 0 or self.threads < 0:
                raise UsageError("--seed and --threads must not be negative")
            if not DEVICE_NAME.match(self.device):
                raise UsageError(f"--device {self.device!r}: unknown; use auto, cpu, cuda, cuda:N or mps")
            check_output("--out", self.out, "file")
        except UsageError as e:
            raise TrainError(str(e)) from None
        check_spec(self.spec)
        return self


class EasyNet(nn.Module):
    """A backbone with EASY's heads: base-class classifier and 4-way rotation classifier."""

    def __init__(self, backbone: Backbone, num_classes: int, rotations: bool):
        super().__init__()
        self.backbone = backbone
        self.classifier = nn.Linear(backbone.feature_dim, num_classes)
        self.rotation = nn.Linear(backbone.feature_dim, 4) if rotations else None

    def forward(self, x: torch.Tensor, mixup: Mixup | None = None,
                rotation: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Class logits and, when asked and present, rotation logits (a head whose output is not
        computed takes no part in the step, which DistributedDataParallel needs to know)."""
        f = self.backbone(x, mixup)
        use_rotation = rotation and self.rotation is not None
        return self.classifier(f), (self.rotation(f) if use_rotation else None)


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job (world 1 when not under torchrun)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> Distributed:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), world)


def pick_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def train_step(net: nn.Module, x: torch.Tensor, y: torch.Tensor, config: FitConfig, layers: int,
               gen: torch.Generator) -> float:
    """EASY's two-pass step (gradients accumulated, no optimiser step); returns the summed loss."""
    total = 0.0
    if config.mixup:
        lam = beta22(gen)
        layer = int(torch.randint(0, layers, (1,), generator=gen))
        perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
        logits, _ = net(x, Mixup(layer, lam, perm), rotation=False)
        loss = mixup_cross_entropy(logits, y, perm, lam)
        loss.backward()
        total += loss.item()
    if config.rotations:
        xr, r = rotate_quarters(x)
        logits, rot = net(xr)
        loss = 0.5 * F.cross_entropy(logits, y) + 0.5 * F.cross_entropy(rot, r)
        loss.backward()
        total += loss.item()
    if not (config.mixup or config.rotations):
        logits, _ = net(x, rotation=False)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        total += loss.item()
    return total


@dataclass
class Scored:
    """A backbone scored on few-shot episodes with its base-class feature mean."""

    result: FewShotResult
    base_mean: torch.Tensor


def score(model: nn.Module, data: FewShotData, split: ImageSplit, shots: int, episodes: int, seed: int,
          device: torch.device) -> Scored:
    """5-way `shots`-shot NCM accuracy on `split`, ME-centred on clean base images' mean."""
    base_mean = extract_features(model, data.base.images, data.preprocessing, device=device).mean(dim=0)
    feats = extract_features(model, split.images, data.preprocessing, device=device)
    result = evaluate_fewshot(feats, split.labels, base_mean, ways=min(5, split.num_classes), shots=shots,
                              queries=15, episodes=episodes, seed=seed)
    return Scored(result, base_mean)


class MemberTrainer:
    """Trains one ensemble member; resumable from the state dict it writes each epoch."""

    def __init__(self, config: FitConfig, data: FewShotData, index: int, device: torch.device, dist: Distributed):
        self.config, self.data, self.index, self.device, self.dist = config, data, index, device, dist
        self.seed = config.seed + index
        torch.manual_seed(self.seed)
        self.net = EasyNet(build_backbone(config.spec), data.base.num_classes, config.rotations).to(device)
        self.model: nn.Module = self.net
        if dist.world > 1:
            self.model = nn.parallel.DistributedDataParallel(self.net, find_unused_parameters=True)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=config.lr, momentum=config.momentum,
                                   weight_decay=config.weight_decay, nesterov=config.momentum > 0)
        self.steps_per_epoch = max(1, len(data.base) // config.batch_size)
        self.schedule = CosineRestarts(config.lr, config.cycle_epochs * self.steps_per_epoch, config.gamma)
        self.gen = torch.Generator().manual_seed(self.seed)
        self.augment = Augment(AugmentConfig(), data.preprocessing)
        self.epoch = 0
        self.best_score = -1.0
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] = {}
        self.best_mean: torch.Tensor | None = None
        self.history: list[dict] = []

    def state(self) -> dict:
        return {"member": self.index, "epoch": self.epoch, "net": self.net.state_dict(),
                "opt": self.opt.state_dict(), "gen": self.gen.get_state(), "best_score": self.best_score,
                "best_epoch": self.best_epoch, "best_state": self.best_state, "best_mean": self.best_mean,
                "history": self.history}

    def load_state(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])
        self.epoch, self.best_score, self.best_epoch = state["epoch"], state["best_score"], state["best_epoch"]
        self.best_state, self.best_mean, self.history = state["best_state"], state["best_mean"], state["history"]

    def run_epoch(self) -> float:
        """One pass over the base split; returns the mean loss."""
        config, images, labels = self.config, self.data.base.images, self.data.base.labels
        order = torch.randperm(len(labels), generator=self.gen)
        per_rank = config.batch_size // self.dist.world
        self.net.train()
        losses = []
        bar = tqdm(range(self.steps_per_epoch), desc=f"member {self.index + 1} epoch {self.epoch + 1}/{config.epochs}",
                   file=sys.stderr, leave=False, disable=not self.dist.main)
        for i in bar:
            step = self.epoch * self.steps_per_epoch + i
            if self.schedule.is_restart(step):
                self.opt.state.clear()  # a warm restart starts with fresh momentum, as EASY does
            for group in self.opt.param_groups:
                group["lr"] = self.schedule.lr(step)
            batch = order[i * config.batch_size : (i + 1) * config.batch_size]
            batch = batch[self.dist.rank * per_rank : (self.dist.rank + 1) * per_rank]
            x = self.augment(torch.as_tensor(images[batch.numpy()]).to(self.device), self.gen)
            y = torch.as_tensor(labels[batch.numpy()]).to(self.device)
            self.opt.zero_grad(set_to_none=True)
            losses.append(train_step(self.model, x, y, config, self.net.backbone.mixup_layers, self.gen))
            self.opt.step()
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        return sum(losses) / len(losses)

    def validate(self, loss: float) -> dict:
        """Score this epoch on the val classes; keep the weights if they are the best so far."""
        val = self.data.val
        record = {"epoch": self.epoch + 1, "loss": round(loss, 4), "lr_end": self.schedule.lr(
            (self.epoch + 1) * self.steps_per_epoch - 1)}
        if val is not None:
            scored = score(self.net.backbone, self.data, val, 1, self.config.val_episodes, self.seed, self.device)
            record.update(val_1shot=scored.result.accuracy, val_1shot_ci95=scored.result.ci95)
            better = scored.result.accuracy > self.best_score
        else:
            scored, better = None, True  # no validation classes: the last epoch is kept
        if better:
            self.best_score = record.get("val_1shot", float(self.epoch))
            self.best_epoch = self.epoch + 1
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.net.backbone.state_dict().items()}
            self.best_mean = scored.base_mean if scored is not None else None
        self.history.append(record)
        self.epoch += 1
        return record

    def best_member(self) -> tuple[Member, torch.Tensor]:
        """The best epoch's backbone and its clean base-class feature mean."""
        if self.best_mean is None:
            net = build_backbone(self.config.spec)
            net.load_state_dict(self.best_state)
            self.best_mean = extract_features(net.to(self.device), self.data.base.images, self.data.preprocessing,
                                              device=self.device).mean(dim=0)
        return Member(self.config.spec, self.best_state), self.best_mean


def state_path(config: FitConfig) -> Path:
    return Path(config.out + STATE_SUFFIX)


def save_resume_state(state: dict, path: Path) -> None:
    """The resume state, prefixed by a magic line and the sha256 of its torch payload (so a
    corrupt file is told apart from one of another configuration)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_bytes(STATE_MAGIC + hashlib.sha256(payload).digest() + payload)


def load_resume_state(config: FitConfig) -> dict | None:
    path = state_path(config)
    if not path.is_file():
        return None
    corrupt = f"resume state {path} is corrupt or truncated; delete it to start afresh"
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TrainError(f"resume state {path} cannot be read ({e.strerror or e})") from None
    head, digest, payload = data[:len(STATE_MAGIC)], data[len(STATE_MAGIC):len(STATE_MAGIC) + 32], \
        data[len(STATE_MAGIC) + 32:]
    if head != STATE_MAGIC or hashlib.sha256(payload).digest() != digest:
        raise TrainError(corrupt)
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - torch raises many types
        raise TrainError(corrupt) from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise TrainError(f"resume state {path} is of another version; delete it to start afresh")
    if state.get("config") != config.training_fields():
        old = state.get("config") or {}
        differ = sorted(k for k in set(old) | set(config.training_fields())
                        if old.get(k) != config.training_fields().get(k))
        raise TrainError(f"resume state {path} was written with other values of {', '.join(differ)}; "
                         f"use the same flags to resume, or delete it to start afresh")
    return state


def finished_checkpoint(config: FitConfig) -> BackboneCheckpoint | None:
    """The finished checkpoint already at `out` when it was trained with this configuration;
    None when there is nothing finished there. TrainError when a finished (or unreadable) file
    would be overwritten without --force."""
    out = Path(config.out)
    if not out.exists():
        return None
    try:
        existing = load_checkpoint(out)
    except CheckpointError:
        if config.force:
            return None
        raise TrainError(f"--out {out} exists and is not a readable checkpoint; pass --force to replace it "
                         f"or choose another --out") from None
    if existing.metrics.get("complete") is False:
        return None  # a partial checkpoint of an interrupted run: resumed or replaced
    if config.force:
        return None
    ignored = (*NOT_TRAINING, "out")  # a checkpoint copied elsewhere is still the same training
    same = ({k: v for k, v in existing.config.items() if k not in ignored}
            == {k: v for k, v in config.training_fields().items() if k not in ignored})
    if same:
        return existing
    raise TrainError(f"--out {out} holds a finished checkpoint of another configuration; pass --force to "
                     f"replace it or choose another --out")


def _ensure_finite(loss: float, index: int, epoch: int) -> None:
    if not math.isfinite(loss):
        raise TrainError(f"member {index + 1}: the loss became {loss} in epoch {epoch}; lower --lr")


def fit(config: FitConfig, on_epoch_end: Callable[[dict], None] | None = None,
        log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> BackboneCheckpoint:
    """Train (or resume) the configured backbone(s); returns the final checkpoint, also saved to `out`.

    A finished checkpoint at `out` of the same configuration is returned as is; one of another
    configuration is never overwritten without `force` (and with it, only when the new run ends:
    partial checkpoints then go to the resume state only). One process per `out` (a lock)."""
    config.check()
    if int(os.environ.get("RANK", "0")) != 0:
        return _fit(config, on_epoch_end, log, keep_out=False)
    with _lock(config):
        finished = finished_checkpoint(config)
        if finished is not None:
            log(f"train: {config.out} is already a finished checkpoint of this configuration; nothing to do "
                f"(--force retrains)")
            return finished
        keep_out = config.force and Path(config.out).exists() and _is_finished(config.out)
        return _fit(config, on_epoch_end, log, keep_out)


def _lock(config: FitConfig):
    """The lock of `out`: a second `fit` on the same output stops with one line."""
    return output_lock(Path(config.out), "checkpoint", TrainError)


def _is_finished(path: str) -> bool:
    try:
        return load_checkpoint(path).metrics.get("complete") is not False
    except CheckpointError:
        return False


def _fit(config: FitConfig, on_epoch_end: Callable[[dict], None] | None, log: Callable[[str], None],
         keep_out: bool) -> BackboneCheckpoint:
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device)
    dist = setup_distributed(device)
    if not dist.main:
        log = lambda s: None  # noqa: E731 - only rank 0 reports
    data = load_dataset(config.dataset, config.data_root, config.image_size)
    resume = load_resume_state(config)
    done: list[dict] = resume["done"] if resume else []
    if resume:
        epoch = resume["current"]["epoch"] if resume["current"] else 0
        log(f"train: resuming from {state_path(config)} (member {len(done) + 1}, after epoch {epoch})")
    started = time.perf_counter() - (resume.get("seconds", 0.0) if resume else 0.0)
    for index in range(len(done), config.ensemble):
        trainer = MemberTrainer(config, data, index, device, dist)
        if resume and resume["current"] and resume["current"]["member"] == index:
            trainer.load_state(resume["current"])
        while trainer.epoch < config.epochs:
            loss = trainer.run_epoch()
            _ensure_finite(loss, index, trainer.epoch)
            record = trainer.validate(loss)
            if dist.main:
                figures = " ".join(f"{k}={_fmt(v)}" for k, v in record.items())
                log(f"train: member {index + 1}/{config.ensemble} {figures}")
                member, mean = trainer.best_member()
                partial = [*(_member(d) for d in done), member]
                means = [*(d["base_mean"] for d in done), mean]
                if not keep_out:  # a finished checkpoint there stays until this run finishes
                    _save(config, data, partial, means, {"complete": False, "history": trainer.history})
                save_resume_state({"version": STATE_VERSION, "config": config.training_fields(), "done": done,
                                   "current": trainer.state(), "seconds": time.perf_counter() - started},
                                  state_path(config))
            if on_epoch_end is not None:
                on_epoch_end(record)
        member, mean = trainer.best_member()
        done.append({"spec": member.spec.to_dict(), "state_dict": member.state_dict, "base_mean": mean,
                     "best_epoch": trainer.best_epoch, "history": trainer.history})
    metrics = {"complete": True, "train_seconds": round(time.perf_counter() - started, 1),
               "members": [{"seed": config.seed + i, "best_epoch": d["best_epoch"], "history": d["history"]}
                           for i, d in enumerate(done)]}
    ckpt = BackboneCheckpoint([_member(d) for d in done], data.preprocessing,
                              torch.cat([d["base_mean"] for d in done]), config.dataset, metrics, config.to_dict())
    metrics.update(novel_metrics(ckpt, data, config, device, log))
    if dist.main:
        save_checkpoint(ckpt, config.out)
        state_path(config).unlink(missing_ok=True)
        log(f"train: wrote {config.out}")
    return ckpt


def novel_metrics(ckpt: BackboneCheckpoint, data: FewShotData, config: FitConfig, device: torch.device,
                  log: Callable[[str], None]) -> dict:
    """5-way 1/5-shot novel accuracy of the trained model and, as a reference, of untrained
    backbones of the same architecture and seeds and of raw normalised pixels with the same ME +
    NCM (figures stored in the checkpoint)."""
    if data.novel is None:
        log(f"train: {config.dataset} has no novel classes; few-shot figures skipped")
        return {}
    models = {"trained": (build_model(ckpt).to(device), ckpt.base_mean)}
    if config.compare_untrained:
        untrained = []
        for i in range(config.ensemble):
            torch.manual_seed(config.seed + i)
            untrained.append(build_backbone(config.spec).eval())
        model = untrained[0] if len(untrained) == 1 else build_model(BackboneCheckpoint(
            [Member(config.spec, u.state_dict()) for u in untrained], data.preprocessing))
        models["untrained"] = (model.to(device), None)
        models["pixels"] = (nn.Flatten(), None)
    out = {}
    for name, (model, base_mean) in models.items():
        if base_mean is None:
            base_mean = extract_features(model, data.base.images, data.preprocessing, device=device).mean(dim=0)
        feats = extract_features(model, data.novel.images, data.preprocessing, device=device)
        for shots in (1, 5):
            r = evaluate_fewshot(feats, data.novel.labels, base_mean, ways=5, shots=shots, queries=15,
                                 episodes=config.episodes, seed=config.seed)
            out[f"{name}_novel_5way_{shots}shot"] = r.accuracy
            out[f"{name}_novel_5way_{shots}shot_ci95"] = r.ci95
            log(f"train: {name:9s} 5-way {shots}-shot novel accuracy {100 * r.accuracy:.2f}% "
                f"+- {100 * r.ci95:.2f} ({config.episodes} episodes)")
    return out


def _member(d: dict) -> Member:
    return Member(BackboneSpec.from_dict(d["spec"]), d["state_dict"])


def _save(config: FitConfig, data: FewShotData, members: list[Member], means: list[torch.Tensor],
          metrics: dict) -> None:
    ckpt = BackboneCheckpoint(members, data.preprocessing, torch.cat(means), config.dataset, metrics, config.to_dict())
    save_checkpoint(ckpt, config.out)


def _fmt(v: object) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)

