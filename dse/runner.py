"""Running a sweep: finished points are read back, the others run in this process, in a pool of
worker processes, or as Ray tasks; one line per finished point and a bar over the sweep; the
table and plots are rewritten from every finished row at the end."""

from __future__ import annotations

import multiprocessing
import os
import re
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from dse import plots
from dse.config import Point, Sweep
from dse.errors import DseError
from dse.layout import SweepLayout
from dse.pareto import accuracy_key
from dse.point import finished_row, run_point
from dse.table import with_front, write_tables

REPO_ROOT = Path(__file__).resolve().parent.parent
RAY_ADDRESS = re.compile(r"^(auto|local|(ray://)?[A-Za-z0-9_.\-]+:\d{1,5})$")


@dataclass(frozen=True)
class RunOptions:
    workers: int = 1
    ray: str | None = None  # address of an existing Ray cluster
    ray_gpus: float = 0.0  # GPUs each Ray task asks for (training on the cluster's GPUs)
    only: tuple[str, ...] = ()  # point ids or labels (prefixes) to run; empty: all
    plots: bool = True

    def check(self) -> "RunOptions":
        if self.workers < 1:
            raise DseError(f"--workers {self.workers}: at least 1")
        if self.ray_gpus < 0 or (self.ray_gpus and self.ray is None):
            raise DseError(f"--ray-gpus {self.ray_gpus:g}: a non-negative number, with --ray only")
        if self.ray is not None and not RAY_ADDRESS.match(self.ray):
            raise DseError(f"--ray {self.ray!r}: expected HOST:PORT (e.g. 127.0.0.1:6379), ray://HOST:PORT or auto")
        return self


@dataclass(frozen=True)
class Outcome:
    point: Point
    row: dict | None
    error: str | None = None
    seconds: float = 0.0


def work(sweep: Sweep, point: Point, root: str, out: str) -> Outcome:
    """One point in a worker (process or Ray task): never raises, a failure is one line."""
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        return Outcome(point, run_point(sweep, point, root, out), seconds=time.perf_counter() - start)
    except Exception as e:  # noqa: BLE001 - a point's failure must not stop the sweep
        paths = SweepLayout(Path(root)).paths(sweep, point)
        paths.log.parent.mkdir(parents=True, exist_ok=True)
        with open(paths.log, "a") as f:
            traceback.print_exc(file=f)
        line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return Outcome(point, None, f"{type(e).__name__}: {line} (log: {paths.log})", time.perf_counter() - start)


def selected(sweep: Sweep, layout: SweepLayout, only: tuple[str, ...]) -> list[Point]:
    if not only:
        return list(sweep.points)
    chosen = [p for p in sweep.points
              if any(layout.paths(sweep, p).point_id.startswith(o) or p.label() == o for o in only)]
    if not chosen:
        raise DseError(f"--only {' '.join(only)}: no point of {sweep.name} has that id or label")
    return chosen


def _line(o: Outcome, acc: str) -> str:
    if o.error:
        return f"FAILED {o.point.label()}: {o.error}"
    r = o.row
    fixed = f", fixed point {100 * r[acc.replace('float', 'fixed')]:.2f}%" if r.get(acc.replace("float", "fixed")) is not None else ""
    how = "reused" if r.get("reused") else f"in {o.seconds:.0f} s"
    fit = "fits" if r["fits"] else "DOES NOT FIT"
    return (f"{o.point.label()}: {acc.split('_')[1]} float {100 * r[acc]:.2f}% (+-{100 * (r.get(acc + '_ci95') or 0):.2f})"
            f"{fixed}, {r['latency_ms']:.2f} ms = {r['fps']:.1f} FPS at {o.point.mhz:g} MHz, "
            f"{r['tensil_kcycles']:.0f} KCycles, {fit} ({how})")


def _run_local(sweep: Sweep, points: list[Point], root: str, out: str, workers: int,
               done: Callable[[Outcome], None]) -> None:
    if workers == 1:
        for p in points:
            done(work(sweep, p, root, out))
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(work, sweep, p, root, out) for p in points]
        try:
            for f in as_completed(futures):
                done(f.result())
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _run_ray(sweep: Sweep, points: list[Point], root: str, out: str, address: str, gpus: float,
             done: Callable[[Outcome], None]) -> None:
    import ray

    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1"}
    try:
        ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise DseError(f"--ray {address}: cannot connect ({str(e).strip().splitlines()[0]})") from None
    try:
        task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(work)
        pending = [task.remote(sweep, p, root, out) for p in points]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                done(ray.get(ref))
    finally:
        ray.shutdown()


def finish(sweep: Sweep, layout: SweepLayout, make_plots: bool = True) -> list[dict]:
    """Rewrite the table (and plots) from the finished rows of every point of the sweep."""
    rows = [r for r in (finished_row(layout.paths(sweep, p).row) for p in sweep.points) if r is not None]
    rows = with_front(rows)
    missing = len(sweep.points) - len(rows)
    write_tables(rows, [], layout.results_csv, layout.results_json,
                 {"sweep": sweep.name, "source": sweep.source, "points_total": len(sweep.points),
                  "points_missing": missing})
    if make_plots and rows:
        acc = accuracy_key(rows)
        for shots in sweep.evaluate.shots:
            key = acc.replace(f"_{sweep.evaluate.shots[0]}shot", f"_{shots}shot")
            if all(r.get(key) is not None for r in rows):
                plots.accuracy_latency(rows, key, layout.plots_dir / f"accuracy_latency_{shots}shot.png", sweep.name)
        if any(r.get("fixed_loss_1shot") is not None for r in rows):
            plots.fixed_point_loss(rows, sweep.evaluate.shots, layout.plots_dir / "fixed_point_loss.png")
    return rows


def run_sweep(sweep: Sweep, layout: SweepLayout, options: RunOptions, out: str) -> tuple[list[dict], list[Outcome]]:
    """Run every selected point not finished yet; (table rows, failed outcomes)."""
    options.check()
    points = selected(sweep, layout, options.only)
    root = str(layout.root)
    layout.root.mkdir(parents=True, exist_ok=True)
    acc = f"float_{sweep.evaluate.shots[0]}shot"
    failed: list[Outcome] = []
    bar = tqdm(total=len(points), desc=f"dse {sweep.name}", unit="point", file=sys.stderr, dynamic_ncols=True)

    def done(o: Outcome) -> None:
        bar.update(1)
        tqdm.write(f"dse: [{bar.n}/{len(points)}] {_line(o, acc)}", file=sys.stderr)
        if o.error:
            failed.append(o)

    todo = []
    for p in points:
        row = finished_row(layout.paths(sweep, p).row)
        if row is not None:
            done(Outcome(p, {**row, "reused": True}))
        else:
            todo.append(p)
    try:
        if options.ray is not None:
            _run_ray(sweep, todo, root, out, options.ray, options.ray_gpus, done)
        else:
            _run_local(sweep, todo, root, out, min(options.workers, max(1, len(todo))), done)
    finally:
        bar.close()
    return finish(sweep, layout, options.plots), failed
