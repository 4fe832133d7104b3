"""A real deployment: SuperLink and SuperNodes as separate processes, the run submitted with
`flwr run`. `python -m fl_bridge superlink|supernode` start the documented Flower commands;
`python -m fl_bridge run --superlink HOST:PORT` writes a Flower app folder (pyproject.toml whose
components are `fl_bridge.server_app:app` and `fl_bridge.client_app:app`, run config = this
`RunConfig`, one typed key per field) and a Flower home with the connection, then runs `flwr run` and waits.
Every machine needs this repository installed in its Python environment (the app code is not
shipped in the FAB). With `--node-data` each SuperNode trains on its own data, named in its node
config (`python -m fl_bridge supernode --data-folder DIR --partition-id 0 --num-partitions 1`);
without it every node rebuilds the server-assigned partitions of the run's `--data-root`.

`simulate_on_superlink` is Flower's current simulation path: a SuperLink in simulation mode on
a free loopback port, the run submitted with `flwr run --federation-config num-supernodes=N`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from fl_bridge.config import RunConfig
from fl_bridge.errors import FLError
from fl_bridge.rundir import RunDir, atomic_write_text
from fl_bridge.flat import run_config_toml

CONNECTION = "fl-bridge"


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid TOML basic string


def flower_env() -> dict[str, str]:
    """Environment for Flower's commands: this interpreter's bin folder first, no update check."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["FLWR_DISABLE_UPDATE_CHECK"] = "1"
    return env


def flower_command(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def superlink_command(host: str, port: int, database: str | None = None) -> list[str]:
    cmd = [flower_command("flower-superlink"), "--insecure", "--host", host, "--port", str(port),
           "--disable-runtime-dependency-installation"]
    return cmd + (["--database", database] if database else [])


def node_config_arg(partition_id: int, num_partitions: int, data_folder: str | None = None) -> str:
    """A SuperNode's `--node-config`: Flower's `partition-id` and `num-partitions`, and our
    `data-folder` (the node's own dataset; see `fl_bridge.data.NodeData`)."""
    pairs = [f"partition-id={partition_id}", f"num-partitions={num_partitions}"]
    return " ".join(pairs + ([f"data-folder={_toml_str(str(data_folder))}"] if data_folder else []))


def supernode_command(superlink: str, port: int, host: str = "127.0.0.1", node_config: str | None = None) -> list[str]:
    cmd = [flower_command("flower-supernode"), "--insecure", "--superlink", superlink,
           "--host", host, "--port", str(port)]
    return cmd + (["--node-config", node_config] if node_config else [])


def write_flower_app(app_dir: Path, cfg: RunConfig) -> Path:
    """The app folder `flwr run` builds its FAB from; its run config declares every field of
    `cfg` as a typed key (`flwr run --run-config 'rounds=3'` overrides one)."""
    text = "\n".join([
        "[build-system]", 'requires = ["hatchling"]', 'build-backend = "hatchling.build"', "",
        "[project]", 'name = "fl-bridge"', 'version = "1.0.0"',
        'description = "Federated backbone training of fl_bridge (code installed on every node)"',
        'license = "Apache-2.0"', "dependencies = []", "",
        "[tool.flwr.app]", 'publisher = "fsl-fpga"', "",
        "[tool.flwr.app.components]", 'serverapp = "fl_bridge.server_app:app"',
        'clientapp = "fl_bridge.client_app:app"', "",
        "[tool.flwr.app.config]", run_config_toml(cfg), "",
    ])
    atomic_write_text(app_dir / "pyproject.toml", text)
    return app_dir


def write_flower_home(home: Path, superlink: str) -> Path:
    text = "\n".join(["[superlink]", f"default = {_toml_str(CONNECTION)}", "",
                      f"[superlink.{CONNECTION}]", f"address = {_toml_str(superlink)}", "insecure = true", ""])
    atomic_write_text(home / "config.toml", text)
    return home


def run_on_superlink(cfg: RunConfig, superlink: str, timeout_s: float | None = None,
                     federation_config: list[str] | None = None) -> RunDir:
    """Submit `cfg` to a running SuperLink with `flwr run --stream` and wait for the run
    (`federation_config`: `key=value` settings of a simulation SuperLink's federation)."""
    cfg = replace(cfg, out=str(Path(cfg.out).resolve())).check()
    flower = Path(cfg.out) / "flower"
    app = write_flower_app(flower / "app", cfg)
    env = flower_env()
    env["FLWR_HOME"] = str(write_flower_home(flower / "home", superlink))
    try:
        cmd = [flower_command("flwr"), "run", str(app), CONNECTION, "--stream"]
        for setting in federation_config or []:
            cmd += ["--federation-config", setting]
        proc = subprocess.run(cmd, env=env, timeout=timeout_s, stdout=sys.stderr, stderr=sys.stderr)
    except subprocess.TimeoutExpired:
        raise FLError(f"the run on SuperLink {superlink} did not finish within {timeout_s:.0f} s") from None
    run = RunDir(cfg.out)
    if proc.returncode != 0 or not run.checkpoint_path.is_file():
        raise FLError(f"the run on SuperLink {superlink} failed (flwr run exit {proc.returncode}); see the log above")
    return run


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout_s: float, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise FLError(f"nothing listens on {host}:{port} after {timeout_s:.0f} s")


def stop_process_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the group `proc` leads (it and what it spawned), SIGKILL after `grace_s`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def local_superlink(simulation: bool = False, log_path: Path | None = None) -> Iterator[str]:
    """A SuperLink on a free 127.0.0.1 port for the block (in simulation mode: it runs the
    ServerApp and virtual SuperNodes itself); yields its address, stops it after the block."""
    port = free_port()
    cmd = superlink_command("127.0.0.1", port) + (["--simulation"] if simulation else [])
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(open(log_path, "w") if log_path else tempfile.TemporaryFile("w"))
        proc = subprocess.Popen(cmd, env=flower_env(), start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, 60.0)
            yield f"127.0.0.1:{port}"
        finally:
            stop_process_group(proc)


def simulate_on_superlink(cfg: RunConfig, timeout_s: float | None = None) -> RunDir:
    """Flower's simulation engine (Ray), started the current way: a simulation SuperLink on
    loopback and `flwr run` with the federation's size and resources. Each virtual SuperNode
    trains the partition the server assigns in its task (seeded, reproducible)."""
    out = Path(cfg.out).resolve()
    (out / "flower").mkdir(parents=True, exist_ok=True)
    federation = [f"num-supernodes={cfg.supernodes or cfg.per_round}",
                  f"client-resources-num-cpus={max(1, round(cfg.client_cpus))}", "client-resources-num-gpus=0.0",
                  f"init-args-num-cpus={max(1, os.cpu_count() or 1)}", "init-args-logging-level='warning'",
                  "init-args-log-to-driver=true"]
    with local_superlink(simulation=True, log_path=out / "flower" / "superlink.log") as address:
        return run_on_superlink(cfg, address, timeout_s, federation_config=federation)
