"""`--ray ADDRESS`: the points run as tasks on an existing Ray cluster, here a local one with node
address 127.0.0.1 (started for the test, stopped by its process group only; Ray 2.55 still
listens on every interface, see dse/README.md)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from dse.cli import main
from dse.config import load_sweep
from dse.layout import SweepLayout
from tests.dse.conftest import tiny_sweep

ray = pytest.importorskip("ray")
RAY = Path(sys.executable).with_name("ray")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture
def local_ray():
    if not RAY.is_file():
        pytest.skip("no ray command next to the interpreter")
    gcs, *others = _free_ports(8)
    base = 20000 + (os.getpid() % 400) * 100
    temp = tempfile.mkdtemp(prefix="dseray", dir="/tmp")  # short: Ray's socket paths are length-limited
    flags = dict(zip(("--node-manager-port", "--object-manager-port", "--ray-client-server-port",
                      "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--metrics-export-port",
                      "--runtime-env-agent-port"), others))
    cmd = [str(RAY), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
           "--num-cpus", "1", "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", temp,
           "--object-store-memory", str(100 * 2**20), "--min-worker-port", str(base), "--max-worker-port",
           str(base + 99), *[str(x) for kv in flags.items() for x in kv]]
    log = open(Path(temp) / "start.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    try:
        deadline = time.time() + 90
        while time.time() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", gcs), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        if proc.poll() is not None:
            pytest.fail(f"ray start failed: {(Path(temp) / 'start.log').read_text()[-500:]}")
        time.sleep(2)  # the raylet registers after the GCS answers
        yield f"127.0.0.1:{gcs}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_points_run_as_ray_tasks(finished_sweep, local_ray, tmp_path):
    _, out = finished_sweep
    out2 = tmp_path / "out"
    shutil.copytree(out / "two", out2 / "two")  # the checkpoint is reused: no training in the task
    sweep_file = tiny_sweep(tmp_path / "two.toml", "two", [{"test_size": 16}, {"test_size": 20}])
    sweep = load_sweep(sweep_file)
    new = SweepLayout.for_sweep(sweep, out2).paths(sweep, sweep.points[1])
    assert main(["run", "--sweep", str(sweep_file), "--out", str(out2), "--ray", local_ray, "--no-plots"]) == 0
    import json

    row = json.loads(new.row.read_text())
    assert row["test_size"] == 20 and 0.2 < row["fixed_1shot"] <= 1
    assert int(row["worker"].rsplit(":", 1)[1]) != os.getpid()  # computed in a Ray worker process
