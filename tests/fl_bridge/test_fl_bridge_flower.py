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


from fl_bridge.config import RunConfig
from fl_bridge.deployment import flower_env, run_on_superlink, superlink_command, supernode_command
from fl_bridge.simulate import simulate

DEPLOY_TIMEOUT_S = 240


def tiny(out: Path, **kw) -> RunConfig:
    base = dict(out=str(out), image_size=16, feature_maps=4, clients=4, per_round=2, rounds=2,
                samples_per_client=16, batch_size=8, eval_every=2, episodes=4, shots=(1,), queries=5,
                round_timeout=120.0)
    return RunConfig(**{**base, **kw})


def _rounds(out: Path) -> list[dict]:
    return json.loads((out / "metrics.json").read_text())["rounds"]


def test_ray_and_inline_engines_train_the_same_federation(tmp_path, monkeypatch):
    """Flower's Ray simulation and the in-process engine run the same messages: same bytes, same
    metrics, same global model. The inline engine (the default) opens no network socket."""
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


def test_superlink_and_two_supernodes_on_loopback(tmp_path, monkeypatch):
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr_home"))
    monkeypatch.setenv("FLWR_SUPEREXEC_TASK_POLL_INTERVAL", "0.2")
    env = flower_env()
    link = _free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen] = []
    deadline = time.monotonic() + DEPLOY_TIMEOUT_S
    try:
        procs.append(subprocess.Popen(superlink_command("127.0.0.1", link), env=env, start_new_session=True,
                                      stdout=open(logs / "superlink.log", "w"), stderr=subprocess.STDOUT))
        _wait_for_port(link, deadline)
        for i in range(2):
            procs.append(subprocess.Popen(supernode_command(f"127.0.0.1:{link}", _free_port()), env=env,
                                          start_new_session=True, stdout=open(logs / f"supernode{i}.log", "w"),
                                          stderr=subprocess.STDOUT))
        # INT8 FLoCoRA (q-fedupdate --lora): its task (INT8 training settings) and power-of-two
        # messages cross Flower's real transport; plain FLoCoRA is the simulation test's default
        deployed = tiny(tmp_path / "deployed", method="q-fedupdate", quant_bits=8, lora=True, rank=2, alpha=32)
        run = run_on_superlink(deployed, f"127.0.0.1:{link}", timeout_s=max(10.0, deadline - time.monotonic()))
        rounds = _rounds(run.path)
        assert [r["round"] for r in rounds] == [0, 1, 2]
        assert all(r["received"] == 2 and r["failed"] == 0 and "effective_update_fraction" in r for r in rounds[1:])
        assert run.checkpoint_path.is_file()
    finally:
        _stop(procs)
    assert all(p.returncode is not None for p in procs)
