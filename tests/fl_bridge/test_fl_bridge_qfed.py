"""Q-FedAvg and Q-FedUpdate in the federation (in-process grid, real client handler and codec):
erasure through real messages, the run folder's bits and effective updates, resume after a
kill, FLoCoRA adapters in INT8, the sweep command, the modelled timing and deployment."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from flwr.app import Message, MetricRecord, RecordDict

from fl_bridge.codec import decode, encode
from fl_bridge.config import RunConfig
from fl_bridge.errors import FLError
from fl_bridge.inline import InlineGrid, task_identity
from fl_bridge.model import build_model, get_communicated, layout
from fl_bridge.precision.optim import grid_exponent
from fl_bridge.precision.server import broadcast_values
from fl_bridge.precision.timing import StageTimes, timing_table, vgg16_cifar_macs
from fl_bridge.server import run_federation
from fl_bridge.task import TrainTask


@pytest.fixture(autouse=True)
def flower_identity():
    with task_identity():
        yield


def small(tmp_path, **kw) -> RunConfig:
    base = dict(out=str(tmp_path / "run"), image_size=16, feature_maps=4, clients=4, per_round=3, rounds=2,
                samples_per_client=24, batch_size=8, eval_every=2, episodes=4, shots=(1,), queries=5,
                method="q-fedupdate", quant_bits=8)
    return RunConfig(**{**base, **kw})


class ShrinkGrid(InlineGrid):
    """Clients 0-2 of 10 move every INT8 weight one LSB towards zero, the others send the model
    back unchanged: the average update is 0.3 LSB on every non-zero weight."""

    def send_and_receive(self, messages, *, timeout=None):
        replies = []
        for msg in messages:
            task = TrainTask.from_config(msg.content["config"])
            lay = layout(build_model(task.model))
            tensors = decode(msg.content["arrays"], lay, task.codec)
            if task.partition < 3:
                for name, shape in lay:
                    if len(shape) > 1:
                        step = 2.0 ** grid_exponent(torch.from_numpy(tensors[name]), 8)
                        tensors[name] = tensors[name] - np.sign(tensors[name]) * step
            content = RecordDict({"arrays": encode(tensors, lay, task.codec),
                                  "metrics": MetricRecord({"num-examples": 24, "train-loss": 1.0})})
            replies.append(Message(content, reply_to=msg))
        return replies


def test_erasure_through_real_messages(tmp_path):
    moved = {}
    for method in ("q-fedavg", "q-fedupdate"):
        cfg = small(tmp_path, method=method, clients=10, per_round=10, rounds=2, eval_every=5, out=str(tmp_path / method))
        run = run_federation(ShrinkGrid(), cfg)
        rounds = json.loads(run.metrics_path.read_text())["rounds"][1:]
        assert all(r["effective_update_fraction"] == 0.0 for r in rounds)  # 0.3 LSB < LSB/2
        moved[method] = [r["broadcast_changed_fraction"] for r in rounds]
    assert moved["q-fedavg"] == [0.0, 0.0]  # the INT8 global model never moves
    # Q-FedUpdate: the FP32 master starts off the grid (residual in +-LSB/2), so some weights cross
    # in round 1, more in round 2; the master holds the whole 2 x 0.3 LSB
    assert moved["q-fedupdate"][0] > 0.2 and moved["q-fedupdate"][1] > 0.05
    start_cfg = small(tmp_path, clients=10, per_round=10)
    model = build_model(start_cfg.model_config(64, 3))
    lay, start = layout(model), get_communicated(model)
    sent = broadcast_values(start, lay, start_cfg.codec)
    final = torch.load(tmp_path / "q-fedupdate" / "state.pt", weights_only=True)["tensors"]
    name = "backbone.blocks.1.conv2.weight"
    step = 2.0 ** grid_exponent(torch.from_numpy(sent[name]), 8)
    big = np.abs(sent[name]) >= 2 * step  # codes that cannot reach 0 within two rounds
    assert big.mean() > 0.5
    assert np.allclose((final[name].numpy() - start[name])[big], -0.6 * step * np.sign(sent[name])[big],
                       atol=1e-3 * step)


def test_quantized_run_folder_bits_next_to_bytes(tmp_path):
    run = run_federation(InlineGrid(), small(tmp_path))
    metrics = json.loads(run.metrics_path.read_text())
    summary, entry = metrics["summary"], metrics["rounds"][1]
    bits = summary["message_bits"]
    assert bits["scales"] == 8 * sum(1 for _ in range(bits["scales"] // 8))  # one int8 exponent per tensor
    per_message = bits["total"] // 8
    assert entry["bits_down"] == entry["sent"] * bits["total"] and entry["bits_up"] == entry["received"] * bits["total"]
    assert per_message < entry["bytes_down"] / entry["sent"] <= per_message + 200  # + .npy header and key
    assert summary["message_bytes_with_buffers"] == per_message
    assert 0.0 < entry["effective_update_fraction"] <= 1.0 and "fewshot_1shot" in metrics["rounds"][2]
    assert summary["total_bits"] == sum(r.get("bits_up", 0) + r.get("bits_down", 0) for r in metrics["rounds"])


class KilledGrid(InlineGrid):
    def __init__(self, stop_after: int):
        super().__init__()
        self.stop_after, self.calls = stop_after, 0

    def send_and_receive(self, messages, *, timeout=None):
        self.calls += 1
        if self.calls > self.stop_after:
            raise KeyboardInterrupt("server killed")
        return super().send_and_receive(messages, timeout=timeout)


class EtaGrid(InlineGrid):
    """The real clients, recording the INT8 training settings each round's tasks carry."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[int, int, int, int]] = []

    def send_and_receive(self, messages, *, timeout=None):
        for msg in messages:
            int8 = TrainTask.from_config(msg.content["config"]).int8
            self.seen.append((int(msg.content["config"]["server-round"]), int8.eta, int8.momentum, int8.decay_shift))
        return super().send_and_receive(messages, timeout=timeout)


def test_eta_schedule_momentum_and_decay_reach_the_clients(tmp_path):
    grid = EtaGrid()
    cfg = small(tmp_path, rounds=3, per_round=1, eval_every=3, eta=2, eta_schedule="2:5,3:4", int8_momentum=8,
                int8_decay_shift=6)
    run_federation(grid, cfg)
    assert grid.seen == [(1, 2, 8, 6), (2, 5, 8, 6), (3, 4, 8, 6)]
    for bad in (dict(eta_schedule="0:5"), dict(eta_schedule="2:9"), dict(eta_schedule="2-5"),
                dict(eta_schedule="2:5,2:4"), dict(int8_momentum=16), dict(int8_decay_shift=-1)):
        with pytest.raises(FLError):
            small(tmp_path, **bad).check()


def test_killed_quantized_server_resumes_to_the_same_master(tmp_path):
    """FLoCoRA adapters trained in INT8 with an FP32 master; seeded stochastic rounding per client."""
    extra = {"lora": True, "rank": 2, "alpha": 32}
    cfg = small(tmp_path, rounds=3, eval_every=3, **extra)
    with pytest.raises(KeyboardInterrupt):
        run_federation(KilledGrid(2), cfg)
    resumed = run_federation(InlineGrid(), cfg)
    straight = run_federation(InlineGrid(), small(tmp_path, rounds=3, eval_every=3, out=str(tmp_path / "s"), **extra))
    a, b = (torch.load(r.state_path, weights_only=True) for r in (resumed, straight))
    assert a["round"] == b["round"] == 3
    assert all(torch.equal(a["tensors"][k], b["tensors"][k]) for k in b["tensors"])
    # FLoCoRA in INT8: only adapters, stem, norms and heads travel
    assert any("lora_B" in k for k in a["tensors"]) and not any(k.endswith("base.weight") for k in a["tensors"])


def test_sweep_writes_table_plot_and_run_folders(tmp_path, monkeypatch):
    import cv2

    from fl_bridge import server
    from fl_bridge.sweep import sweep

    evaluations = []
    evaluate = server.evaluate_global
    monkeypatch.setattr(server, "evaluate_global", lambda *a: evaluations.append(a[2].method) or evaluate(*a))
    path = sweep(small(tmp_path, rounds=1, eval_every=1, out=str(tmp_path / "sweep")), [2])
    # round 0 evaluated once per kind of initial model: Q-FedUpdate starts from Q-FedAvg's INT8 broadcast
    assert evaluations == ["fedavg", "fedavg", "q-fedavg", "q-fedavg", "q-fedupdate"]
    first = {m: json.loads((tmp_path / "sweep" / f"{m}_k2" / "metrics.json").read_text())["rounds"][0]
             for m in ("fedavg", "q-fedavg", "q-fedupdate")}
    assert first["q-fedupdate"] == first["q-fedavg"] != first["fedavg"] and "fewshot_1shot" in first["fedavg"]
    rows = json.loads(path.read_text())["runs"]
    assert [(r["method"], r["per_round"]) for r in rows] == [(m, 2) for m in ("fedavg", "q-fedavg", "q-fedupdate")]
    fed = [r for r in rows if r["method"] == "fedavg"]
    assert all("mean_effective_update_fraction" not in r for r in fed)
    assert all(0 <= r["mean_effective_update_fraction"] <= 1 for r in rows if r["method"] != "fedavg")
    assert all(r["total_bits"] < f["total_bits"] for r, f in zip(rows[1::3], fed))  # INT8 vs FP32 messages
    image = cv2.imread(str(path.parent / "sweep.png"))
    assert image is not None and image.shape[1] > image.shape[0]


def test_sweep_over_seeds_reports_mean_and_spread(tmp_path):
    from fl_bridge.sweep import sweep

    path = sweep(small(tmp_path, rounds=1, eval_every=1, out=str(tmp_path / "sweep")), [1], seeds=[0, 1])
    result = json.loads(path.read_text())
    assert result["seeds"] == [0, 1] and [r["seed"] for r in result["runs"]] == [0, 0, 0, 1, 1, 1]
    assert all((tmp_path / "sweep" / f"seed{s}" / f"{m}_k1" / "metrics.json").is_file()
               for s in (0, 1) for m in ("fedavg", "q-fedavg", "q-fedupdate"))
    table = result["mean_over_seeds"]
    assert [(r["method"], r["seeds"]) for r in table] == [(m, 2) for m in ("fedavg", "q-fedavg", "q-fedupdate")]
    for row in table:
        runs = [r["fewshot_1shot"] for r in result["runs"] if r["method"] == row["method"]]
        assert row["fewshot_1shot"] == pytest.approx(np.mean(runs)) and row["fewshot_1shot_std"] == pytest.approx(np.std(runs))
    assert runs[0] != runs[1]  # the seeds are different federations
    assert "standard deviation over 2 seeds" in (tmp_path / "sweep" / "sweep.md").read_text()
    with pytest.raises(FLError, match="seeds"):
        sweep(small(tmp_path, out=str(tmp_path / "other")), [1], seeds=[1, 1])


def test_modelled_timing_formulas_and_labels():
    assert vgg16_cifar_macs() == 313_201_664  # 3x3 convs of VGG-16 at 32x32 + the 512x10 classifier
    stages = StageTimes(2.0, 3.0, 1.0, 10.0, 25.0, {k: "measured" for k in
                                                    ("sample_ms", "quantize_ms", "transfer_ms", "train_ms", "switch_ms")})
    assert stages.serial_ms(10) == 10 * 41.0
    assert stages.pipelined_ms(10) == 6.0 + 10 * 10.0  # the accelerator is the bottleneck
    rows = timing_table(stages, 10)
    assert {r["origin"] for r in rows[-3:]} == {"modelled"}
    assert rows[-1]["ratio"] == pytest.approx(410 / 106)


def test_cli_timing_table(capsys, tmp_path):
    from fl_bridge.cli import main

    assert main(["timing", "--image-size", "16", "--feature-maps", "4", "--clients", "4", "--per-round", "2",
                 "--samples-per-client", "24", "--batch-size", "8", "--out", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    for label in ("| measured |", "| modelled |", "| reported |", "pipelined"):
        assert label in out


def test_deploy_of_an_int8_run_reports_the_int8_model_against_the_emulator(tmp_path):
    from fl_bridge.bridge import DeployConfig, deploy

    run = run_federation(InlineGrid(), small(tmp_path, rounds=1, eval_every=1))
    report = json.loads(deploy(DeployConfig(str(run.path), "flq", "custom_perf", str(tmp_path / "build"), 2)).read_text())
    check = report["emulator_vs_torch"]
    assert check["min_cosine"] > 0.99
    int8 = check["int8_trained_vs_emulated"]
    assert int8["images"] == 2 and 0.5 < int8["min_cosine"] <= 1.0 and "INT8 activations" in int8["reference"]
