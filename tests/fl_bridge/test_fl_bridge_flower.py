"""Flower end to end: the simulation engine, and a real deployment (a SuperLink and two
SuperNodes as separate processes on loopback, the run submitted with `flwr run`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path


import cv2
import numpy as np
import pytest

from fl_bridge.config import RunConfig
from fl_bridge.data import dataset
from fl_bridge.deployment import (flower_env, node_config_arg, run_on_superlink, superlink_command,
                                  supernode_command)
from fl_bridge.simulate import simulate
from fl_bridge.errors import FLError

DEPLOY_TIMEOUT_S = 240


def tiny(out: Path, **kw) -> RunConfig:
    base = dict(out=str(out), image_size=16, feature_maps=4, clients=4, per_round=2, rounds=2,
                samples_per_client=16, batch_size=8, eval_every=2, episodes=4, shots=(1,), queries=5,
                round_timeout=120.0)
    return RunConfig(**{**base, **kw})


def _rounds(out: Path) -> list[dict]:
    return json.loads((out / "metrics.json").read_text())["rounds"]


def test_ray_and_inline_engines_train_the_same_federation(tmp_path, monkeypatch):
    """Flower's Ray simulation (a simulation SuperLink and `flwr run`, not the deprecated
    `run_simulation`) and the in-process engine run the same messages: same bytes, same metrics,
    same global model. The inline engine (the default) opens no network socket."""
    import torch

    ray = simulate(tiny(tmp_path / "ray", engine="ray"))

    def no_listening(*args, **kwargs):
        raise AssertionError("the inline engine opened a listening socket")

    monkeypatch.setattr(socket.socket, "listen", no_listening)
    inline = simulate(tiny(tmp_path / "inline"))
    rounds = _rounds(inline.path)
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert all(r["received"] == 2 and r["bytes_up"] > 0 for r in rounds[1:])
    strip = lambda rs: [{k: v for k, v in r.items() if "seconds" not in k and k != "time"} for r in rs]  # noqa: E731
    assert strip(rounds) == strip(_rounds(ray.path))
    a = torch.load(inline.checkpoint_path, weights_only=True)
    b = torch.load(ray.checkpoint_path, weights_only=True)
    assert len(a["members"][0]["state_dict"]) == len(b["members"][0]["state_dict"]) > 10
    for (name, x), (_, y) in zip(a["members"][0]["state_dict"].items(), b["members"][0]["state_dict"].items()):
        assert torch.equal(x, y), name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def _signal_group(p: subprocess.Popen, sig: int) -> None:
    """Signal the process group a test process leads (it and the ClientApps it spawned)."""
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        pass


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        _signal_group(p, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal_group(p, signal.SIGKILL)
            p.wait()


def _start_federation(tmp_path: Path, node_configs: list[str | None], deadline: float,
                      procs: list[subprocess.Popen]) -> str:
    """A SuperLink and one SuperNode per node config on loopback (appended to `procs`); its address."""
    env = flower_env()
    link = _free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    procs.append(subprocess.Popen(superlink_command("127.0.0.1", link), env=env, start_new_session=True,
                                  stdout=open(logs / "superlink.log", "w"), stderr=subprocess.STDOUT))
    _wait_for_port(link, deadline)
    for i, node_config in enumerate(node_configs):
        procs.append(subprocess.Popen(supernode_command(f"127.0.0.1:{link}", _free_port(), node_config=node_config),
                                      env=env, start_new_session=True, stdout=open(logs / f"supernode{i}.log", "w"),
                                      stderr=subprocess.STDOUT))
    return f"127.0.0.1:{link}"


def test_superlink_and_two_supernodes_on_loopback(tmp_path, monkeypatch):
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr_home"))
    monkeypatch.setenv("FLWR_SUPEREXEC_TASK_POLL_INTERVAL", "0.2")
    procs: list[subprocess.Popen] = []
    deadline = time.monotonic() + DEPLOY_TIMEOUT_S
    try:
        link = _start_federation(tmp_path, [None, None], deadline, procs)
        # INT8 FLoCoRA (q-fedupdate --lora): its task (INT8 training settings) and power-of-two
        # messages cross Flower's real transport; plain FLoCoRA is the simulation test's default
        deployed = tiny(tmp_path / "deployed", method="q-fedupdate", quant_bits=8, lora=True, rank=2, alpha=32)
        run = run_on_superlink(deployed, link, timeout_s=max(10.0, deadline - time.monotonic()))
        rounds = _rounds(run.path)
        assert [r["round"] for r in rounds] == [0, 1, 2]
        assert all(r["received"] == 2 and r["failed"] == 0 and "effective_update_fraction" in r for r in rounds[1:])
        assert run.checkpoint_path.is_file()
    finally:
        _stop(procs)
    assert all(p.returncode is not None for p in procs)


def _write_folder_dataset(root: Path, per_class: int, seed: int) -> Path:
    """A `folder` dataset (base/ and novel/ of PNGs) cut from the synthetic classes: 4 base
    classes with `per_class` images each, 5 novel classes with 6."""
    data = dataset("synthetic", "", 16)
    rng = np.random.default_rng(seed)
    for split, source, classes, count in (("base", data.base, 4, per_class), ("novel", data.novel, 5, 6)):
        labels = np.asarray(source.labels)
        for c in range(classes):
            folder = root / split / f"c{c}"
            folder.mkdir(parents=True)
            for j, i in enumerate(rng.choice(np.flatnonzero(labels == np.unique(labels)[c]), count, replace=False)):
                image = np.asarray(source.images[i]).transpose(1, 2, 0)[:, :, ::-1]   # CHW RGB -> HWC BGR
                cv2.imwrite(str(folder / f"{j}.png"), np.ascontiguousarray(image))
    return root


def test_two_supernodes_train_on_their_own_data_folders(tmp_path, monkeypatch):
    """A real deployment with `--node-data`: each SuperNode reads partition-id, num-partitions and
    data-folder from its node config and trains on its own folder (the server assigns nothing):
    every round's reported example counts are those of the two folders, which differ."""
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr_home"))
    monkeypatch.setenv("FLWR_SUPEREXEC_TASK_POLL_INTERVAL", "0.2")
    folders = [_write_folder_dataset(tmp_path / name, per_class, seed)
               for name, per_class, seed in (("server_data", 4, 0), ("node_a", 6, 1), ("node_b", 10, 2))]
    sizes = sorted(len(dataset("folder", str(f), 16).base.labels) for f in folders[1:])
    assert sizes[0] < sizes[1]
    procs: list[subprocess.Popen] = []
    deadline = time.monotonic() + DEPLOY_TIMEOUT_S
    try:
        link = _start_federation(tmp_path, [node_config_arg(0, 1, str(f)) for f in folders[1:]], deadline, procs)
        cfg = tiny(tmp_path / "own_data", dataset="folder", data_root=str(folders[0]), samples_per_client=0,
                   node_data=True, rounds=1, eval_every=1, clients=2)
        run = run_on_superlink(cfg, link, timeout_s=max(10.0, deadline - time.monotonic()))
        rounds = _rounds(run.path)
        assert [r["round"] for r in rounds] == [0, 1]
        assert rounds[1]["received"] == 2 and rounds[1]["node_examples"] == sizes and rounds[1]["partitions"] == [0, 0]
        assert json.loads((run.path / "partitions.json").read_text())["assignment"] == "node-config"
    finally:
        _stop(procs)


def test_node_data_needs_supernodes(tmp_path):
    with pytest.raises(FLError, match="node config"):
        simulate(tiny(tmp_path / "x", node_data=True))
