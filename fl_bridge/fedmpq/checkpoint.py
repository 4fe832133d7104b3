"""`python -m fl_bridge allocate`: per-layer weight bits for a trained backbone checkpoint
(contract 1) under an average bit budget, with FedMPQ's own code, outside federated training.

1. Importance signal: every conv/linear weight at `B_MAX` bits (fresh step), then MSB pruning with
   `eps` (`planes.msb_prune`): a layer whose top planes are nearly empty (few large weights) loses
   them; `pruned` = the bits it lost.
2. Alg. 2 (`allocate.Allocator`, literal or strict) from that allocation and `pruned` to the budget.
3. The fake-quantized model (every layer at its bits; activations float, or at `act_bits`) is
   evaluated on the checkpoint's dataset: few-shot NCM accuracy on the novel split (base-mean
   centring as in `train/`), next to the float model and to every layer at the budget's whole bits
   (fixed precision, the AQFL-style allocation of the same budget).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fl_bridge.data import dataset
from fl_bridge.errors import FLError
from fl_bridge.fedmpq.allocate import Allocator, average_bits
from fl_bridge.fedmpq.planes import B_MAX, B_MIN, REPRESENTATIONS, msb_prune, quantize
from fl_bridge.fedmpq.train import mixed_precision
from train.checkpoint import CheckpointError, build_model, load_checkpoint
from train.fewshot import evaluate_fewshot, extract_features


@dataclass(frozen=True)
class AllocateConfig:
    checkpoint: str
    budget: float
    mode: str = "strict"
    eps: float = 0.03
    representation: str = "sign-magnitude"
    act_bits: int = 0  # 0 = float activations
    shots: int = 1
    episodes: int = 500
    data_root: str = ""

    def check(self) -> "AllocateConfig":
        problems = [
            (not B_MIN <= self.budget <= B_MAX, f"--budget must be in {B_MIN}..{B_MAX} bits (got {self.budget})"),
            (self.mode not in ("literal", "strict"), "--mode must be literal or strict"),
            (not 0 <= self.eps < 1, f"--eps must be in [0, 1) (got {self.eps})"),
            (self.representation not in REPRESENTATIONS, f"--representation must be one of {', '.join(REPRESENTATIONS)}"),
            (self.act_bits != 0 and not 2 <= self.act_bits <= 8, "--act-bits must be 0 (float) or in 2..8"),
            (self.shots < 1 or self.episodes < 1, "--shots and --episodes must be >= 1"),
        ]
        for bad, line in problems:
            if bad:
                raise FLError(line)
        if not Path(self.checkpoint).is_file():
            raise FLError(f"checkpoint {self.checkpoint} does not exist")
        return self


def weight_layers(model: nn.Module) -> list[str]:
    """State-dict names of the conv/linear weights of a backbone."""
    return [f"{n}.weight" if n else "weight" for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def allocation(weights: dict[str, np.ndarray], cfg: AllocateConfig) -> tuple[list[int], list[int]]:
    """(per-layer bits for the budget, bits pruned by the importance pass), in the order of `weights`."""
    pruned = [B_MAX - msb_prune(quantize(w, B_MAX, cfg.representation), cfg.eps).bits for w in weights.values()]
    m = [w.size for w in weights.values()]
    start = [B_MAX - p for p in pruned]
    try:
        return Allocator(cfg.mode, B_MIN, B_MAX)(start, pruned, m, cfg.budget), pruned
    except ValueError as e:
        raise FLError(str(e)) from None


def _accuracy(model: nn.Module, data, cfg: AllocateConfig, seed: int = 0) -> tuple[float, float]:
    pre = data.preprocessing
    base_mean = extract_features(model, data.base.images, pre).mean(dim=0)
    res = evaluate_fewshot(extract_features(model, data.novel.images, pre), data.novel.labels, base_mean,
                           shots=cfg.shots, episodes=cfg.episodes, seed=seed)
    return res.accuracy, res.ci95


def _quantized_accuracy(model: nn.Module, names: list[str], bits: list[int], data, cfg: AllocateConfig,
                        state: dict[str, torch.Tensor]) -> tuple[float, float]:
    codes = {n: quantize(state[n].numpy(), b, cfg.representation) for n, b in zip(names, bits)}
    with mixed_precision(model, codes, cfg.act_bits or None):
        result = _accuracy(model, data, cfg)
    model.load_state_dict(state)
    return result


def allocate_checkpoint(cfg: AllocateConfig) -> dict:
    cfg.check()
    try:
        ckpt = load_checkpoint(cfg.checkpoint)
        model = build_model(ckpt)
    except CheckpointError as e:
        raise FLError(str(e)) from None
    if len(ckpt.members) != 1:
        raise FLError("allocate takes a single-backbone checkpoint, not an ensemble")
    data = dataset(ckpt.dataset, cfg.data_root or str(ckpt.config.get("data_root", "")),
                   ckpt.preprocessing.image_size)
    if data.novel is None:
        raise FLError(f"dataset {ckpt.dataset} has no novel split to evaluate on")
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    names = weight_layers(model)
    weights = {n: state[n].numpy() for n in names}
    bits, pruned = allocation(weights, cfg)
    m = [w.size for w in weights.values()]
    uniform = [max(B_MIN, math.floor(cfg.budget))] * len(names)
    float_acc = _accuracy(model, data, cfg)
    return {
        "config": asdict(cfg),
        "layers": [{"name": n, "params": size, "bits": b, "pruned_at_8_bits": p}
                   for n, size, b, p in zip(names, m, bits, pruned)],
        "average_bits": average_bits(bits, m),
        "accuracy": {
            "float": float_acc,
            "allocated": _quantized_accuracy(model, names, bits, data, cfg, state),
            f"uniform_{uniform[0]}_bits": _quantized_accuracy(model, names, uniform, data, cfg, state),
        },
    }


def markdown(report: dict) -> str:
    cfg = report["config"]
    lines = ["| layer | params | bits | planes pruned at 8 bits |", "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['params']} | {r['bits']} | {r['pruned_at_8_bits']} |" for r in report["layers"]]
    lines.append(f"\naverage bits {report['average_bits']:.3f} for a budget of {cfg['budget']:g} ({cfg['mode']}); "
                 f"{cfg['shots']}-shot accuracy over {cfg['episodes']} episodes, activations "
                 f"{'float' if not cfg['act_bits'] else str(cfg['act_bits']) + ' bits'}:")
    for name, (acc, ci) in report["accuracy"].items():
        lines.append(f"- {name}: {100 * acc:.2f}% +- {100 * ci:.2f}")
    return "\n".join(lines)
