"""The modelled timing of Q-FedUpdate's pipelined batch quantization (paper Sec. 3.2).

A client's local step has four stages per batch: P1 sample the batch (CPU), P2 quantize it to
INT8 (CPU), P3 hand it to the accelerator, P4 INT8 forward + backward + update (accelerator).
Done serially every batch also pays a CPU-accelerator switch; pipelined, the CPU prepares batch
i+1 while the accelerator trains batch i:

    T_serial    = N (P1 + P2 + P3 + P4 + switch)
    T_pipelined = (P1 + P2 + P3) + N max(P1 + P2, P3, P4)

Every figure of a `TimingRow` carries its origin: "measured" (here), "modelled" (derived), or
"reported" (copied from the paper); they are never mixed in one number without saying so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

# Reported by the Q-FedUpdate paper (Table 2, Xiaomi 10 medium DSP; Sec. 3.2): CIFAR-10 VGG-16
# batches of 64 images.
PAPER_DSP_INT8_MS_PER_BATCH = 397.0
PAPER_CPU_INT8_MS_PER_BATCH = 1075.0
PAPER_BATCH = 64
PAPER_SWITCH_MS = 25.0
VGG16_CIFAR = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16_cifar_macs(image_size: int = 32, classes: int = 10) -> int:
    """Multiply-accumulates of one VGG-16 forward pass on CIFAR (3x3 convs, one 512->classes FC)."""
    macs, cin, size = 0, 3, image_size
    for v in VGG16_CIFAR:
        if v == "M":
            size //= 2
        else:
            macs += size * size * cin * v * 9
            cin = v
    return macs + 512 * classes


def forward_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of the conv and linear layers of one forward pass of `example` (batch 1)."""
    total = 0

    def hook(m: nn.Module, args: tuple, out: torch.Tensor) -> None:
        nonlocal total
        per_output = m.weight[0].numel() if isinstance(m, (nn.Conv2d, nn.Linear)) else 0
        total += out.numel() * per_output

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for h in handles:
            h.remove()
    return total


@dataclass(frozen=True)
class StageTimes:
    """Milliseconds per batch of each stage, and where each figure comes from."""

    sample_ms: float
    quantize_ms: float
    transfer_ms: float
    train_ms: float
    switch_ms: float
    origin: dict[str, str]

    def serial_ms(self, batches: int) -> float:
        return batches * (self.sample_ms + self.quantize_ms + self.transfer_ms + self.train_ms + self.switch_ms)

    def pipelined_ms(self, batches: int) -> float:
        fill = self.sample_ms + self.quantize_ms + self.transfer_ms
        return fill + batches * max(self.sample_ms + self.quantize_ms, self.transfer_ms, self.train_ms)


def scaled_accelerator_ms(our_macs: int, batch: int, paper_ms: float = PAPER_DSP_INT8_MS_PER_BATCH) -> float:
    """The paper's per-batch accelerator time scaled by work (MACs x batch) to our model: modelled."""
    return paper_ms * (our_macs * batch) / (vgg16_cifar_macs() * PAPER_BATCH)


def timing_table(stages: StageTimes, batches: int) -> list[dict]:
    """Rows of the per-round client timing, each with its origin."""
    serial, piped = stages.serial_ms(batches), stages.pipelined_ms(batches)
    return [
        {"quantity": "P1 sample a batch (CPU)", "ms": stages.sample_ms, "origin": stages.origin["sample_ms"]},
        {"quantity": "P2 quantize a batch to INT8 (CPU)", "ms": stages.quantize_ms,
         "origin": stages.origin["quantize_ms"]},
        {"quantity": "P3 transfer a batch to the accelerator", "ms": stages.transfer_ms,
         "origin": stages.origin["transfer_ms"]},
        {"quantity": "P4 INT8 training step (accelerator)", "ms": stages.train_ms, "origin": stages.origin["train_ms"]},
        {"quantity": "CPU-accelerator switch (serial only)", "ms": stages.switch_ms, "origin": stages.origin["switch_ms"]},
        {"quantity": f"one local epoch, serial ({batches} batches)", "ms": serial, "origin": "modelled"},
        {"quantity": f"one local epoch, pipelined ({batches} batches)", "ms": piped, "origin": "modelled"},
        {"quantity": "pipelining speed-up", "ms": None, "ratio": serial / piped, "origin": "modelled"},
    ]


def to_dict(stages: StageTimes) -> dict:
    return asdict(stages)
