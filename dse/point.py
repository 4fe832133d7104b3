"""One point from start to finished row: train (or reuse), retarget, export, compile, estimate,
measure. The row is written last, atomically: its presence is what "finished" means."""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import asdict
from pathlib import Path

from dse import accuracy, stages
from dse.commands import deploy_commands, rebuild_commands, rerun_command, shell_join
from dse.config import Point, Sweep
from dse.layout import SweepLayout


def finished_row(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _figures(prefix: str, acc: dict, shots: tuple[int, ...]) -> dict:
    return {f"{prefix}_{s}shot{sfx}": acc.get(f"{s}shot{sfx}") for s in shots for sfx in ("", "_ci95")}


def run_point(sweep: Sweep, point: Point, root: str, out: str = "") -> dict:
    """The point's row (a dict of every figure); reused as is when already finished. Stage output
    goes to the point's log file; exceptions propagate (the caller records the failure)."""
    layout = SweepLayout(Path(root))
    paths = layout.paths(sweep, point)
    done = finished_row(paths.row)
    if done is not None:
        return {**done, "reused": True}
    paths.log.parent.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    did: dict[str, bool] = {}
    with open(paths.log, "a") as log_file, redirect_stderr(log_file), redirect_stdout(log_file):
        log = lambda s: print(s, file=log_file, flush=True)  # noqa: E731
        log(f"dse: point {paths.point_id} {json.dumps(asdict(point))}")
        for name, step in (("train", lambda: stages.train(sweep, point, paths, log)),
                           ("retarget", lambda: stages.retarget(point, paths)),
                           ("export", lambda: stages.export(sweep, paths)),
                           ("compile", lambda: stages.compile_program(point, paths))):
            t = time.perf_counter()
            did[name] = step()
            seconds[name] = round(time.perf_counter() - t, 2)
            log(f"dse: {name} {'done' if did[name] else 'reused'} in {seconds[name]} s")
        t = time.perf_counter()
        est = stages.estimate(point, paths)
        acc_float = accuracy.float_accuracy(paths.checkpoint, paths.float_accuracy, sweep.evaluate)
        seconds["float_accuracy"] = round(time.perf_counter() - t, 2)
        acc_fixed: dict = {}
        if sweep.evaluate.fixed_point:
            t = time.perf_counter()
            acc_fixed = accuracy.fixed_accuracy(paths.checkpoint, paths.tmodel, paths.fixed_accuracy, sweep.evaluate)
            seconds["fixed_accuracy"] = round(time.perf_counter() - t, 2)
        log(f"dse: measured in {seconds.get('float_accuracy', 0) + seconds.get('fixed_accuracy', 0):.1f} s")
    from train.checkpoint import load_checkpoint

    metrics = load_checkpoint(paths.train_checkpoint).metrics
    shots = sweep.evaluate.shots
    row = {
        "id": paths.point_id,
        **asdict(point),
        **est,
        **_figures("float", acc_float, shots),
        **_figures("fixed", acc_fixed, shots),
        **{f"fixed_loss_{s}shot": (acc_float[f"{s}shot"] - acc_fixed[f"{s}shot"]) if acc_fixed else None
           for s in shots},
        "min_cosine": acc_fixed.get("min_cosine"),
        "saturations": acc_fixed.get("saturations"),
        "eval_images": acc_float.get("images"),
        "train_seconds": metrics.get("train_seconds"),
        "stage_seconds": seconds,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "checkpoint": str(paths.checkpoint),
        "onnx": str(paths.onnx),
        "tmodel": str(paths.tmodel),
        "rebuild": shell_join(rebuild_commands(sweep, point, paths)),
        "rerun": rerun_command(sweep.source, paths.point_id, out or str(layout.root.parent)),
        "deploy": shell_join(deploy_commands(point, paths)),
    }
    stages.write_json(paths.row, row)
    return {**row, "reused": False}
