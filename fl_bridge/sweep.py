"""`python -m fl_bridge precision-sweep`: the Q-FedUpdate paper's scalability experiment on our
data. For each number of clients per round K, the same federation is trained with FP32 FedAvg
(the ceiling), Q-FedAvg and Q-FedUpdate (INT8 clients, INT8 messages), in-process
(`inline.InlineGrid`). Writes `<out>/<method>_k<K>/` (ordinary run folders, resumable),
`<out>/sweep.json` (final accuracies, bytes and bits, mean effective-update fractions), the same
as a markdown table in `<out>/sweep.md`, and `<out>/sweep.png` (accuracy and effective updates
against K)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from safeio import output_lock

from fl_bridge.config import RunConfig
from fl_bridge.errors import FLError
from fl_bridge.inline import InlineGrid, task_identity
from fl_bridge.plot import Panel, line_plot
from fl_bridge.rundir import write_json
from fl_bridge.server import run_federation
from train.files import atomic_write_text

METHODS = ("fedavg", "q-fedavg", "q-fedupdate")
COLOURS = {"fedavg": "tab:gray", "q-fedavg": "tab:red", "q-fedupdate": "tab:blue"}


def run_config(base: RunConfig, method: str, per_round: int) -> RunConfig:
    bits = 32 if method == "fedavg" else 8
    return replace(base, method=method, per_round=per_round, quant_bits=bits,
                   out=str(Path(base.out) / f"{method}_k{per_round}"))


def summarise(run_dir: Path, method: str, per_round: int) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rounds = metrics["rounds"]
    last = rounds[-1]
    row = {"method": method, "per_round": per_round, "rounds": last["round"],
           **{k: v for k, v in last.items() if k.startswith(("fewshot", "base_test"))},
           "total_bytes": metrics["summary"]["total_bytes"], "total_bits": metrics["summary"]["total_bits"]}
    for key in ("effective_update_fraction", "broadcast_changed_fraction"):
        values = [r[key] for r in rounds if key in r]
        if values:
            row[f"mean_{key}"] = float(np.mean(values))
            row[key] = values
    return row


def sweep(base: RunConfig, per_round: list[int]) -> Path:
    """Every run of the sweep (each resumable), then `sweep.json` and `sweep.png`; one sweep per folder."""
    if not per_round or any(not 1 <= k <= base.clients for k in per_round):
        raise FLError(f"--per-round-list values must be between 1 and --clients ({base.clients})")
    for k in per_round:
        for method in METHODS:
            run_config(base, method, k).check()
    with output_lock(Path(base.out), "sweep folder", FLError):
        return _sweep(base, per_round)


def _sweep(base: RunConfig, per_round: list[int]) -> Path:
    rows = []
    for k in per_round:
        for method in METHODS:
            cfg = run_config(base, method, k)
            with task_identity():
                run_federation(InlineGrid(), cfg)
            rows.append(summarise(Path(cfg.out), method, k))
    out = Path(base.out)
    write_json(out / "sweep.json", {"per_round": per_round, "config": base.to_dict(), "runs": rows})
    atomic_write_text(out / "sweep.md", markdown(rows, base) + "\n")
    plot(rows, per_round, base, out / "sweep.png")
    return out / "sweep.json"


def _pct(row: dict, key: str) -> str:
    return f"{100 * row[key]:.2f}" if key in row else "-"


def markdown(rows: list[dict], base: RunConfig) -> str:
    shots = [f"fewshot_{k}shot" for k in base.shots]
    head = ("| K | method | " + " | ".join(f"{k}-shot %" for k in base.shots)
            + " | base-test % | effective updates % (mean/round) | broadcast changed % | bytes (measured) | bits (analytic) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        acc = " | ".join(f"{100 * r[s]:.2f} +- {100 * r[s + '_ci95']:.2f}" for s in shots)
        lines.append(f"| {r['per_round']} | {r['method']} | {acc} | {_pct(r, 'base_test_accuracy')} | "
                     f"{_pct(r, 'mean_effective_update_fraction')} | {_pct(r, 'mean_broadcast_changed_fraction')} | "
                     f"{r['total_bytes'] / 1e6:.2f} MB | {r['total_bits'] / 8e6:.2f} MB |")
    return "\n".join(lines)


def plot(rows: list[dict], per_round: list[int], base: RunConfig, path: Path) -> None:
    shots = base.shots[0]
    series = {m: [r for r in rows if r["method"] == m] for m in METHODS}
    panels = [
        Panel(f"few-shot {shots}-shot accuracy (%)", "clients per round K",
              {m: [(r["per_round"], 100 * r[f"fewshot_{shots}shot"]) for r in s] for m, s in series.items()}),
        Panel("base-test accuracy (%)", "clients per round K",
              {m: [(r["per_round"], 100 * r["base_test_accuracy"]) for r in s] for m, s in series.items()}),
        Panel("effective updates (% INT8 weights/round)", "clients per round K",
              {m: [(r["per_round"], 100 * r["mean_effective_update_fraction"]) for r in s]
               for m, s in series.items() if s and "mean_effective_update_fraction" in s[0]}),
        Panel("broadcast changed (% INT8 weights/round)", "clients per round K",
              {m: [(r["per_round"], 100 * r["mean_broadcast_changed_fraction"]) for r in s]
               for m, s in series.items() if s and "mean_broadcast_changed_fraction" in s[0]}),
    ]
    line_plot(panels, COLOURS, path)
