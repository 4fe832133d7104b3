"""A real two-point sweep (one training shared by two test sizes): table, plots, pick, resume."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from dse.cli import main
from dse.config import load_sweep
from dse.layout import SweepLayout
from tests.dse.conftest import tiny_sweep

REPO = Path(__file__).resolve().parents[2]


def _rows(out: Path, name: str) -> list[dict]:
    return json.loads((out / name / "results.json").read_text())["points"]


def test_table_has_every_figure_of_both_points(finished_sweep):
    sweep_file, out = finished_sweep
    rows = _rows(out, "two")
    assert [r["test_size"] for r in rows] == [16, 24]  # sorted by latency: the larger input is slower
    a, b = rows
    assert a["latency_ms"] < b["latency_ms"] and a["tensil_kcycles"] < b["tensil_kcycles"]
    assert a["checkpoint"] != b["checkpoint"] and Path(a["checkpoint"]).name in b["checkpoint"].replace("_test24", "")
    for r in rows:
        assert r["fits"] is True and r["arch"] == "custom_perf" and r["mhz"] == 125.0
        assert abs(r["fps"] - 1e3 / r["latency_ms"]) < 1e-6
        assert r["latency_ms"] == r["tensil_kcycles"] * 0 + r["latency_ms"] > 0
        for kind in ("float", "fixed"):
            for shots in (1, 5):
                acc, ci = r[f"{kind}_{shots}shot"], r[f"{kind}_{shots}shot_ci95"]
                assert 0.2 <= acc <= 1.0 and 0 < ci < 0.1
        assert r["fixed_loss_1shot"] == r["float_1shot"] - r["fixed_1shot"]
        assert abs(r["fixed_loss_1shot"]) < 0.05 and r["min_cosine"] > 0.95
        assert r["eval_images"] == 160  # 20 novel classes x 8 images
        assert "python -m train fit" in r["rebuild"] and "python -m tensil compile" in r["rebuild"]
        assert f"--mhz 125" in r["rebuild"] and "python -m board deploy" in r["deploy"]
        assert Path(r["tmodel"]).is_file() and Path(r["onnx"]).is_file()
    assert "python -m dse retarget" in b["rebuild"] and "retarget" not in a["rebuild"]
    assert a["pareto"] is True  # faster, and b cannot be both slower and better than a... unless it is:
    assert b["pareto"] == (b["fixed_1shot"] > a["fixed_1shot"])
    with open(out / "two" / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [t["id"] for t in table] == [r["id"] for r in rows]
    assert float(table[1]["latency_ms"]) == b["latency_ms"]


def test_plots_are_pngs(finished_sweep):
    _, out = finished_sweep
    for name in ("accuracy_latency_1shot.png", "accuracy_latency_5shot.png", "fixed_point_loss.png"):
        data = (out / "two" / "plots" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_pick_prints_the_point_and_how_to_deploy_it(finished_sweep, capsys):
    sweep_file, out = finished_sweep
    assert main(["pick", "--fps", "30", "--sweep", str(sweep_file), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    best = max(_rows(out, "two"), key=lambda r: (r["fixed_1shot"], -r["latency_ms"]))
    assert best["id"] in text and "python -m board bundle" in text and "python -m fpga build" in text
    assert main(["pick", "--fps", "1000000", "--sweep", str(sweep_file), "--out", str(out)]) == 1
    assert "no fitting point meets" in capsys.readouterr().err


def test_rerun_redoes_nothing(finished_sweep, capsys):
    sweep_file, out = finished_sweep
    root = out / "two"
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and p.suffix in (".json", ".pt", ".onnx", ".tmodel")}
    start = time.perf_counter()
    assert main(["run", "--sweep", str(sweep_file), "--out", str(out), "--no-plots"]) == 0
    assert time.perf_counter() - start < 10
    after = {p: p.stat().st_mtime_ns for p in before}
    changed = [p for p in before if before[p] != after[p] and p.name != "results.json"]
    assert changed == []
    assert capsys.readouterr().err.count("(reused)") == 2


def _copy(finished: Path, dest: Path) -> Path:
    shutil.copytree(finished, dest)
    return dest


def test_resume_after_kill_keeps_finished_points(finished_sweep, tmp_path):
    """Kill a sweep while it works on a new point; the rerun (two worker processes, two new points)
    finishes them and leaves the finished points (rows, artifacts) untouched."""
    _, out = finished_sweep
    out2 = tmp_path / "out"
    _copy(out / "two", out2 / "two")
    sweep_file = tiny_sweep(tmp_path / "two.toml", "two", [{"test_size": 16}, {"test_size": 24}, {"test_size": 20},
                                                             {"test_size": 28}])
    sweep = load_sweep(sweep_file)
    layout = SweepLayout.for_sweep(sweep, out2)
    paths = [layout.paths(sweep, p) for p in sweep.points]
    finished = {p.row: p.row.stat().st_mtime_ns for p in paths[:2]}
    ckpt = {p.train_checkpoint: p.train_checkpoint.stat().st_mtime_ns for p in paths[:2]}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "dse", "run", "--sweep", str(sweep_file), "--out", str(out2)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 120
        while not paths[2].log.is_file() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(0.5)
        assert proc.poll() is None, "the sweep ended before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not paths[2].row.exists() and not paths[3].row.exists()
    assert main(["run", "--sweep", str(sweep_file), "--out", str(out2), "--workers", "2", "--no-plots"]) == 0
    assert paths[2].row.is_file() and paths[3].row.is_file()
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    assert {p: p.stat().st_mtime_ns for p in ckpt} == ckpt
    rows = _rows(out2, "two")
    assert sorted(r["test_size"] for r in rows) == [16, 20, 24, 28]
    new = [r for r in rows if r["test_size"] in (20, 28)]
    assert all(not r["worker"].endswith(f":{os.getpid()}") for r in new)  # ran in the worker processes
