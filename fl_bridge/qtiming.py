"""`python -m fl_bridge timing`: the modelled CPU/accelerator pipelining of batch quantization
(`precision.timing`) for a run's client: P1 and P2 measured on this CPU with the run's batches,
P4 modelled from the paper's DSP time scaled by multiply-accumulates, the switch reported by the
paper, P3 not reported (taken as 0). Each figure keeps its origin. Measured figures are CPU time
of this (single-threaded) process, so that other jobs on a shared machine do not inflate them."""

from __future__ import annotations

import math
import time

import torch

from fl_bridge.config import RunConfig
from fl_bridge.data import client_data, dataset, model_config
from fl_bridge.local import train_local
from fl_bridge.model import build_model
from fl_bridge.precision.quantizers import Pow2Quantizer
from fl_bridge.precision.timing import (PAPER_BATCH, PAPER_DSP_INT8_MS_PER_BATCH, PAPER_SWITCH_MS, StageTimes,
                                        forward_macs, scaled_accelerator_ms, timing_table, vgg16_cifar_macs)
from fl_bridge.server import data_task
from train.augment import random_flip, to_input


def _ms(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return 1000 * (time.process_time() - start) / repeats


def client_timing(cfg: RunConfig, repeats: int = 20) -> dict:
    cfg.check()
    data = dataset(cfg.dataset, cfg.data_root, cfg.image_size)
    model = build_model(model_config(cfg, data))
    images, labels = client_data(data_task(cfg), 0)
    batch, pre, gen = torch.as_tensor(images[: cfg.batch_size]), data.preprocessing, torch.Generator().manual_seed(0)
    x = random_flip(to_input(batch, pre), gen)
    quantizer = Pow2Quantizer(8)
    sample_ms = _ms(lambda: random_flip(to_input(batch, pre), gen), repeats)
    quantize_ms = _ms(lambda: quantizer.quantize(x), repeats)
    macs = forward_macs(model, x[:1])
    stages = StageTimes(sample_ms, quantize_ms, 0.0, scaled_accelerator_ms(macs, len(batch)), PAPER_SWITCH_MS,
                        {"sample_ms": "measured", "quantize_ms": "measured",
                         "transfer_ms": "not reported by the paper (taken as 0)",
                         "train_ms": "modelled (paper's DSP time x MACs ratio)", "switch_ms": "reported"})
    batches = math.ceil(len(labels) / cfg.batch_size)
    step_ms = 1000 * _time_local_epoch(model, images[: 4 * cfg.batch_size], labels[: 4 * cfg.batch_size], cfg) / 4
    return {
        "batch_size": len(batch), "batches_per_epoch": batches, "model_macs_per_image": macs,
        "vgg16_cifar_macs_per_image": vgg16_cifar_macs(),
        "paper": {"dsp_int8_ms_per_batch": PAPER_DSP_INT8_MS_PER_BATCH, "batch": PAPER_BATCH,
                  "switch_ms": PAPER_SWITCH_MS, "origin": "reported (Q-FedUpdate Table 2, Sec. 3.2)"},
        "table": timing_table(stages, batches),
        "measured_fake_quant_step_ms": {"ms": step_ms, "origin": "measured",
                                        "note": "CPU time of one INT8 fake-quantized training step on this "
                                                "CPU in float arithmetic: the numerics of INT8, not its speed"},
    }


def _time_local_epoch(model, images, labels, cfg: RunConfig) -> float:
    start = time.process_time()
    train_local(model, images, labels, dataset(cfg.dataset, cfg.data_root, cfg.image_size).preprocessing,
                cfg.local, cfg.int8)
    return time.process_time() - start


def markdown(report: dict) -> str:
    lines = ["| quantity | ms | origin |", "|---|---|---|"]
    for row in report["table"]:
        value = f"{row['ratio']:.2f}x" if row.get("ms") is None else f"{row['ms']:.2f}"
        lines.append(f"| {row['quantity']} | {value} | {row['origin']} |")
    m = report["measured_fake_quant_step_ms"]
    lines.append(f"| INT8 fake-quant training step on this CPU (float arithmetic) | {m['ms']:.2f} | {m['origin']} |")
    return "\n".join(lines)
