"""The server loop and strategy against an in-process Grid that runs the real client handler:
crashed, timed-out and malformed clients, resume after a killed server, and the run folder."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, Error, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid

from fl_bridge.client_app import run_train_task
from fl_bridge.config import RunConfig
from fl_bridge.errors import FLError
from fl_bridge.inline import task_identity
from fl_bridge.server import run_federation
from fl_bridge.task import TrainTask
from train.checkpoint import build_model as build_feature_model
from train.checkpoint import load_checkpoint

Behaviour = Callable[[Message, TrainTask], Message | None]


def honest(msg: Message, task: TrainTask) -> Message:
    return Message(run_train_task(task, msg.content["arrays"]), reply_to=msg)


class LocalGrid(Grid):
    """Delivers each message to `behaviour(partition)`; None = no reply (a timeout)."""

    def __init__(self, nodes: int, behaviour: Callable[[int, int], Behaviour] = lambda r, p: honest,
                 stop_after: int | None = None):
        self.nodes, self.behaviour, self.stop_after, self.calls = nodes, behaviour, stop_after, 0

    def set_run(self, run_id: int) -> None:  # pragma: no cover - not used by the loop
        pass

    @property
    def run(self):  # pragma: no cover
        raise NotImplementedError

    def create_message(self, *a, **k):  # pragma: no cover
        raise NotImplementedError

    def get_node_ids(self) -> Iterable[int]:
        return list(range(1, self.nodes + 1))

    def push_messages(self, messages):  # pragma: no cover
        raise NotImplementedError

    def pull_messages(self, message_ids):  # pragma: no cover
        raise NotImplementedError

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        self.calls += 1
        if self.stop_after is not None and self.calls > self.stop_after:
            raise KeyboardInterrupt("server killed")
        replies = []
        for msg in messages:
            task = TrainTask.from_config(msg.content["config"])
            reply = self.behaviour(int(msg.content["config"]["server-round"]), task.partition)(msg, task)
            if reply is not None:
                replies.append(reply)
        return replies


@pytest.fixture(autouse=True)
def identity():
    """The process-wide task identity Flower's processes set (messages need it), as the inline engine sets it."""
    with task_identity():
        yield


def small(tmp_path, **kw) -> RunConfig:
    base = dict(out=str(tmp_path / "run"), image_size=16, feature_maps=4, clients=4, per_round=3, rounds=2,
                samples_per_client=24, batch_size=8, eval_every=2, episodes=4, shots=(1,), queries=5)
    return RunConfig(**{**base, **kw})


def crash(msg: Message, task: TrainTask) -> Message:
    return Message(Error(code=0, reason="client crashed"), reply_to=msg)


def timeout(msg: Message, task: TrainTask) -> None:
    return None


def tamper(fn: Callable[[np.ndarray], np.ndarray]) -> Behaviour:
    def behaviour(msg: Message, task: TrainTask) -> Message:
        reply = honest(msg, task)
        blob = reply.content["arrays"]["payload"].numpy()
        content = RecordDict({"arrays": ArrayRecord({"payload": Array(fn(blob))}), "metrics": reply.content["metrics"]})
        return Message(content, reply_to=msg)
    return behaviour


def nan_payload(blob: np.ndarray) -> np.ndarray:
    out = blob.copy()
    out[-4:] = np.frombuffer(np.float32(np.inf).tobytes(), np.uint8)
    return out


def bad_metrics(msg: Message, task: TrainTask) -> Message:
    reply = honest(msg, task)
    content = RecordDict({"arrays": reply.content["arrays"], "metrics": MetricRecord({"num-examples": [1, 2]})})
    return Message(content, reply_to=msg)


def greedy(msg: Message, task: TrainTask) -> Message:
    """Claims far more examples than its partition holds, to dominate the weighted average."""
    reply = honest(msg, task)
    metrics = MetricRecord({"num-examples": 10**9, "train-loss": 0.0})
    return Message(RecordDict({"arrays": reply.content["arrays"], "metrics": metrics}), reply_to=msg)


MALFORMED = {
    "wrong dtype": tamper(lambda b: b.view(np.int8) if b.size % 4 else b.view(np.float32)),
    "truncated": tamper(lambda b: b[:-8]),
    "oversized": tamper(lambda b: np.concatenate([b, np.zeros(1 << 16, np.uint8)])),
    "nan": tamper(nan_payload),
}


def test_crash_timeout_and_malformed_updates_do_not_stop_a_round(tmp_path):
    cfg = small(tmp_path, clients=8, per_round=8, rounds=1, quant_bits=32)
    bad = {0: crash, 1: timeout, 2: MALFORMED["wrong dtype"], 3: MALFORMED["nan"], 4: MALFORMED["oversized"],
           5: bad_metrics, 6: greedy}
    run = run_federation(LocalGrid(3, lambda r, p: bad.get(p, honest)), cfg)
    entry = json.loads(run.metrics_path.read_text())["rounds"][1]
    assert (entry["sent"], entry["received"], entry["failed"], entry["timed_out"], entry["dropped"]) == (8, 1, 1, 1, 5)
    assert run.checkpoint_path.is_file()


def test_a_round_without_usable_update_keeps_the_global_model(tmp_path):
    cfg = small(tmp_path, rounds=1)
    run = run_federation(LocalGrid(2, lambda r, p: MALFORMED["truncated"]), cfg)
    state = torch.load(run.state_path, weights_only=True)
    assert state["round"] == 1 and json.loads(run.metrics_path.read_text())["rounds"][1]["dropped"] == 3


def test_killed_server_resumes_to_the_same_model(tmp_path):
    cfg = small(tmp_path, rounds=3, eval_every=3)
    with pytest.raises(KeyboardInterrupt):
        run_federation(LocalGrid(2, stop_after=2), cfg)
    assert torch.load(tmp_path / "run" / "state.pt", weights_only=True)["round"] == 2
    resumed = run_federation(LocalGrid(2), cfg)
    straight = run_federation(LocalGrid(2), small(tmp_path, rounds=3, eval_every=3, out=str(tmp_path / "straight")))
    a = torch.load(resumed.state_path, weights_only=True)
    b = torch.load(straight.state_path, weights_only=True)
    assert a["round"] == b["round"] == 3
    assert all(torch.equal(a["tensors"][k], b["tensors"][k]) for k in b["tensors"])
    rounds = json.loads(resumed.metrics_path.read_text())["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2, 3]


def test_other_settings_in_an_existing_run_folder_are_refused(tmp_path):
    run_federation(LocalGrid(2), small(tmp_path, rounds=1))
    with pytest.raises(FLError, match="other settings"):
        run_federation(LocalGrid(2), small(tmp_path, rounds=1, rank=4))
    fedavg = small(tmp_path, rounds=1, method="fedavg", out=str(tmp_path / "fedavg"))
    run_federation(LocalGrid(2), fedavg)
    run_federation(LocalGrid(2), small(tmp_path, rounds=2, method="fedavg", rank=4, out=fedavg.out))  # LoRA-only


def test_run_folder_contents_and_final_checkpoint(tmp_path):
    cfg = small(tmp_path, method="flocora", rank=2, alpha=32, quant_bits=4)
    run = run_federation(LocalGrid(2), cfg)
    metrics = json.loads(run.metrics_path.read_text())
    rounds = metrics["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert all(r["bytes_up"] > 0 and r["bytes_down"] > 0 for r in rounds[1:])
    assert {"base_test_accuracy", "fewshot_1shot", "fewshot_1shot_ci95"} <= set(rounds[2])
    # measured bytes per message vs the analytic formula (+ .npy header and BatchNorm statistics)
    per_message = rounds[1]["bytes_down"] / rounds[1]["sent"]
    assert metrics["summary"]["message_bytes_with_buffers"] <= per_message <= metrics["summary"]["message_bytes_with_buffers"] + 200
    hist = np.array(json.loads(run.partitions_path.read_text())["histograms"])
    assert hist.shape[0] == 4 and (hist.sum(axis=1) == 24).all()
    ckpt = load_checkpoint(run.checkpoint_path)
    assert ckpt.base_mean is not None and ckpt.metrics["merge_max_abs_diff"] < 1e-4
    net = build_feature_model(ckpt)
    assert not any("lora" in k for k in ckpt.members[0].state_dict)
    assert net(torch.zeros(1, 3, 16, 16)).shape == (1, ckpt.feature_dim)
    assert json.loads(run.config_path.read_text())["quant_bits"] == 4


def test_deploy_turns_a_run_into_a_bundle_whose_emulated_features_match(tmp_path):
    from fl_bridge.bridge import DeployConfig, deploy

    run = run_federation(LocalGrid(2), small(tmp_path, rounds=1, method="flocora", rank=2, alpha=32))
    report = json.loads(deploy(DeployConfig(str(run.path), "fltest", "custom_perf", str(tmp_path / "build"), 2)).read_text())
    bundle = tmp_path / "build" / "bundle" / "fltest"
    assert (bundle / "model.json").is_file() and (bundle / "fltest_custom_perf.tmodel").is_file()
    check = report["emulator_vs_torch"]
    assert check["images"] == 2 and check["min_cosine"] > 0.99
    assert report["bitstream"] is None or (bundle / "design.bit").is_file()


def test_deploy_refuses_groupnorm_and_missing_runs(tmp_path):
    from fl_bridge.bridge import DeployConfig, deploy
    from fl_bridge.errors import DeployError

    run = run_federation(LocalGrid(2), small(tmp_path, rounds=1, norm="group"))
    with pytest.raises(DeployError, match="GroupNormalization"):
        deploy(DeployConfig(str(run.path), build=str(tmp_path / "build")))
    with pytest.raises(FLError, match="not a federated run folder"):
        deploy(DeployConfig(str(tmp_path / "nothing"), build=str(tmp_path / "build")))


def _write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_idx_files(tmp_path):
    """A 10-class grey dataset (base = classes 0-4, novel = 5-9, no val) read from IDX files."""
    rng = np.random.default_rng(0)
    root = tmp_path / "fashion"
    root.mkdir()
    for prefix, per_class in (("train", 12), ("t10k", 8)):
        labels = np.repeat(np.arange(10), per_class)
        images = (rng.integers(0, 60, (labels.size, 28, 28)) + labels[:, None, None] * 19).astype(np.uint8)
        _write_idx(root / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(root / f"{prefix}-labels-idx1-ubyte", labels)
    cfg = small(tmp_path, dataset="fashionmnist", data_root=str(root), clients=2, per_round=2, rounds=1,
                samples_per_client=0, eval_every=1)
    run = run_federation(LocalGrid(2), cfg)
    last = json.loads(run.metrics_path.read_text())["rounds"][-1]
    assert last["received"] == 2 and 0.0 <= last["fewshot_1shot"] <= 1.0
    assert np.array(json.loads(run.partitions_path.read_text())["histograms"]).sum() == 60
