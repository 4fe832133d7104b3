"""fl_bridge: message encode/decode throughput, server aggregation per round at 100 clients,
and the simulation engine's overhead per round (simulated round vs the same local training run
directly in this process)."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from fl_bridge.codec import CodecConfig, decode, encode, record_nbytes
from fl_bridge.local import LocalConfig
from fl_bridge.model import ModelConfig, build_model, get_communicated, layout
from train.backbones import BackboneSpec

RESNET8 = BackboneSpec("resnet8", 64, True, 3, 32, "group")


def _best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_codec() -> None:
    print("message encode/decode, ResNet-8 w=64 (CIFAR-10 head); MB = 1e6 B of float32 input")
    print(f"{'message':34s} {'bytes':>10s} {'enc MB/s':>9s} {'dec MB/s':>9s}")
    cases = [("fedavg", None, CodecConfig(32)), ("flocora r32", 32, CodecConfig(32)),
             ("flocora r32 int8", 32, CodecConfig(8)), ("flocora r32 int4", 32, CodecConfig(4)),
             ("flocora r32 int2", 32, CodecConfig(2)), ("fedavg prune 0.8 + deflate", None, CodecConfig(32, 0.8, True))]
    for label, rank, codec in cases:
        method = "flocora" if rank else "fedavg"
        model = build_model(ModelConfig(RESNET8, 10, method, rank or 8, 512.0))
        lay, tensors = layout(model), get_communicated(model)
        raw = sum(v.nbytes for v in tensors.values()) / 1e6
        record = encode(tensors, lay, codec)
        enc = _best(lambda: encode(tensors, lay, codec))
        dec = _best(lambda: decode(record, lay, codec))
        print(f"{label:34s} {record_nbytes(record):10d} {raw / enc:9.1f} {raw / dec:9.1f}")


def bench_aggregation(clients: int = 100) -> None:
    from flwr.app import Message, MessageType, MetricRecord, RecordDict
    from flwr.supercore.task_identity import TaskIdentity

    from fl_bridge.strategy import CompressedFedAvg
    from fl_bridge.task import DataTask

    TaskIdentity.run_id = TaskIdentity.node_id = TaskIdentity.task_id = 1  # Messages outside a Flower runtime
    print(f"\nserver aggregation of one round, {clients} synthetic client updates")
    rng = np.random.default_rng(0)
    for label, method, rank, codec in [("ResNet-8 fedavg fp32", "fedavg", None, CodecConfig(32)),
                                       ("ResNet-8 flocora r32 int8", "flocora", 32, CodecConfig(8))]:
        cfg = ModelConfig(RESNET8, 10, method, rank or 8, 512.0)
        model = build_model(cfg)
        lay = layout(model)
        strategy = CompressedFedAvg(cfg, codec, LocalConfig(), DataTask("synthetic", "", 32, clients, 0.5, 0, 0),
                                    lay, "-", clients)
        request = Message(RecordDict(), dst_node_id=1, message_type=MessageType.TRAIN, group_id="1")
        replies = []
        for _ in range(clients):
            tensors = {n: rng.standard_normal(s).astype(np.float32) * 0.05 for n, s in lay}
            content = RecordDict({"arrays": encode(tensors, lay, codec), "metrics": MetricRecord({"num-examples": 500})})
            replies.append(Message(content, reply_to=request))
        seconds = _best(lambda: strategy.aggregate_train(1, replies), repeat=2)
        print(f"{label:28s} {seconds:7.2f} s per round ({1e3 * seconds / clients:.1f} ms per update)")


def bench_simulation_overhead(rounds: int = 4) -> None:
    from flwr.supercore.task_identity import TaskIdentity

    from fl_bridge.client_app import run_train_task
    from fl_bridge.config import RunConfig
    from fl_bridge.server import data_task
    from fl_bridge.simulate import simulate
    from fl_bridge.data import dataset, model_config
    from fl_bridge.model import base_hash
    from fl_bridge.partition import sample_clients
    from fl_bridge.strategy import CompressedFedAvg

    TaskIdentity.run_id = TaskIdentity.node_id = TaskIdentity.task_id = 1
    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig(out=str(Path(tmp) / "run"), clients=8, per_round=4, rounds=rounds, eval_every=rounds,
                        episodes=10, samples_per_client=160, supernodes=1)
        start = time.perf_counter()
        simulate(cfg)
        wall = time.perf_counter() - start
        sim_rounds = [r["seconds"] for r in json.loads((Path(cfg.out) / "metrics.json").read_text())["rounds"][1:]]
        data = dataset(cfg.dataset, cfg.data_root, cfg.image_size)
        mcfg = model_config(cfg, data)
        model = build_model(mcfg)
        lay = layout(model)
        strategy = CompressedFedAvg(mcfg, cfg.codec, cfg.local, data_task(cfg),
                                    lay, base_hash(model), cfg.per_round)
        payload = encode(get_communicated(model), lay, cfg.codec)
        run_train_task(strategy.task(1, 0), payload)  # warm-up: dataset and partitions built once
        direct = []
        for rnd in range(2, rounds):
            start = time.perf_counter()
            for p in sample_clients(cfg.clients, cfg.per_round, cfg.seed, rnd):
                run_train_task(strategy.task(rnd, p), payload)
            direct.append(time.perf_counter() - start)
    print(f"\nsimulation overhead (1 virtual SuperNode, {cfg.per_round} clients x {cfg.samples_per_client} images per round)")
    sim = float(np.mean(sim_rounds[1:-1]))
    print(f"rounds 2..{rounds - 1}: simulated {sim:.2f} s per round, the same clients trained in-process "
          f"{np.mean(direct):.2f} s: overhead {sim - np.mean(direct):+.2f} s per round; whole simulation "
          f"(Ray start, data, evaluations, checkpoint) {wall:.1f} s")


def main() -> None:
    import torch

    torch.set_num_threads(1)  # as the simulation's one-CPU client actors
    bench_codec()
    bench_aggregation()
    bench_simulation_overhead()


if __name__ == "__main__":
    main()
