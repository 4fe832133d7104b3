"""`python -m fl_bridge precision-sweep`: the Q-FedUpdate paper's scalability experiment on our
data. For each number of clients per round K (and each seed), the same federation is trained with
FP32 FedAvg (the ceiling), Q-FedAvg and Q-FedUpdate (INT8 clients, INT8 messages), in-process
(`inline.InlineGrid`). Writes `<out>/<method>_k<K>/` (ordinary run folders, resumable; under
`<out>/seed<S>/` when several seeds are given), `<out>/sweep.json` (final accuracies, bytes and
bits, mean effective-update fractions, per run and as mean and standard deviation over seeds),
the same as a markdown table in `<out>/sweep.md`, and `<out>/sweep.png` (accuracy and effective
updates against K).

The initial global model does not depend on K, so its round-0 evaluation is done once per seed
and kind of model (float32 for FedAvg; the INT8 broadcast, with INT8 activations, for Q-FedAvg and
Q-FedUpdate, which start from the same one) and recorded in the other runs."""

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
ROUND_KEYS = ("round", "bytes_up", "bytes_down")  # round 0's entry less these = its evaluation


def run_config(base: RunConfig, method: str, per_round: int, seed: int | None = None) -> RunConfig:
    """The run of `method` at K = `per_round`; with a `seed`, in `<out>/seed<seed>/`."""
    bits = 32 if method == "fedavg" else 8
    folder = Path(base.out) if seed is None else Path(base.out) / f"seed{seed}"
    return replace(base, method=method, per_round=per_round, quant_bits=bits,
                   seed=base.seed if seed is None else seed, out=str(folder / f"{method}_k{per_round}"))


def summarise(run_dir: Path, method: str, per_round: int, seed: int = 0) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rounds = metrics["rounds"]
    last = rounds[-1]
    row = {"method": method, "per_round": per_round, "seed": seed, "rounds": last["round"],
           **{k: v for k, v in last.items() if k.startswith(("fewshot", "base_test"))},
           "total_bytes": metrics["summary"]["total_bytes"], "total_bits": metrics["summary"]["total_bits"]}
    for key in ("effective_update_fraction", "broadcast_changed_fraction"):
        values = [r[key] for r in rounds if key in r]
        if values:
            row[f"mean_{key}"] = float(np.mean(values))
            row[key] = values
    return row


def initial_evaluation(run_dir: Path) -> dict:
    """Round 0's evaluation of a finished run (the initial global model)."""
    first = json.loads((run_dir / "metrics.json").read_text())["rounds"][0]
    return {k: v for k, v in first.items() if k not in ROUND_KEYS}


def sweep(base: RunConfig, per_round: list[int], seeds: list[int] | None = None) -> Path:
    """Every run of the sweep (each resumable), then `sweep.json` and `sweep.png`; one sweep per folder.
    `seeds`: seeds of the federation (model, partition, sampling, rounding); default: `base.seed` only."""
    if not per_round or any(not 1 <= k <= base.clients for k in per_round):
        raise FLError(f"--per-round-list values must be between 1 and --clients ({base.clients})")
    if seeds is not None and (not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0):
        raise FLError("--seeds must be distinct integers >= 0")
    for k in per_round:
        for method in METHODS:
            run_config(base, method, k).check()
    with output_lock(Path(base.out), "sweep folder", FLError):
        return _sweep(base, per_round, seeds)


def _sweep(base: RunConfig, per_round: list[int], seeds: list[int] | None) -> Path:
    rows = []
    for seed in seeds if seeds and len(seeds) > 1 else [None]:
        initial: dict[bool, dict] = {}  # quantized_training -> round-0 evaluation
        for k in per_round:
            for method in METHODS:
                cfg = run_config(base, method, k, seed)
                with task_identity():
                    run_federation(InlineGrid(), cfg, initial.get(cfg.quantized_training))
                initial.setdefault(cfg.quantized_training, initial_evaluation(Path(cfg.out)))
                rows.append(summarise(Path(cfg.out), method, k, cfg.seed))
    n_seeds = len({r["seed"] for r in rows})
    out = Path(base.out)
    table = aggregate(rows)
    write_json(out / "sweep.json", {"per_round": per_round, "seeds": sorted({r["seed"] for r in rows}),
                                    "config": base.to_dict(), "runs": rows, "mean_over_seeds": table})
    atomic_write_text(out / "sweep.md", markdown(rows if n_seeds == 1 else table, base, n_seeds) + "\n")
    plot(table, base, out / "sweep.png", n_seeds)
    return out / "sweep.json"


AVERAGED = ("base_test_accuracy", "mean_effective_update_fraction", "mean_broadcast_changed_fraction",
            "total_bytes", "total_bits")


def aggregate(rows: list[dict]) -> list[dict]:
    """One row per (method, K): the mean of every accuracy and fraction over seeds, `<key>_std`
    their standard deviation (ddof 0; 0 for one seed), `seeds` how many."""
    out = []
    for key in dict.fromkeys((r["method"], r["per_round"]) for r in rows):
        group = [r for r in rows if (r["method"], r["per_round"]) == key]
        row: dict = {"method": key[0], "per_round": key[1], "seeds": len(group)}
        names = [n for n in group[0] if n.startswith("fewshot") and not n.endswith("_ci95")] + list(AVERAGED)
        for name in names:
            if all(name in r for r in group):
                values = np.array([r[name] for r in group], dtype=float)
                row[name], row[f"{name}_std"] = float(values.mean()), float(values.std())
        out.append(row)
    return out


def _pct(row: dict, key: str, spread: bool = False) -> str:
    if key not in row:
        return "-"
    text = f"{100 * row[key]:.2f}"
    return f"{text} +- {100 * row[key + '_std']:.2f}" if spread else text


def markdown(rows: list[dict], base: RunConfig, n_seeds: int = 1) -> str:
    """The table: one row per run (one seed: +- = 95% CI over episodes) or per (K, method) over
    several seeds (mean +- standard deviation over seeds)."""
    shots = [f"fewshot_{k}shot" for k in base.shots]
    spread = n_seeds > 1
    head = ("| K | method | " + " | ".join(f"{k}-shot %" for k in base.shots)
            + " | base-test % | effective updates % (mean/round) | broadcast changed % | bytes (measured) | bits (analytic) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        if spread:
            acc = " | ".join(_pct(r, s, True) for s in shots)
        else:
            acc = " | ".join(f"{100 * r[s]:.2f} +- {100 * r[s + '_ci95']:.2f}" for s in shots)
        lines.append(f"| {r['per_round']} | {r['method']} | {acc} | {_pct(r, 'base_test_accuracy', spread)} | "
                     f"{_pct(r, 'mean_effective_update_fraction', spread)} | "
                     f"{_pct(r, 'mean_broadcast_changed_fraction', spread)} | "
                     f"{r['total_bytes'] / 1e6:.2f} MB | {r['total_bits'] / 8e6:.2f} MB |")
    if spread:
        lines.append(f"\n+- = standard deviation over {n_seeds} seeds (each run: {base.episodes} episodes).")
    return "\n".join(lines)


def plot(table: list[dict], base: RunConfig, path: Path, n_seeds: int = 1) -> None:
    """Accuracy, effective updates (log scale) and broadcast changes against K; with several
    seeds, points are means and bars +- one standard deviation."""
    shots = base.shots[0]
    series = {m: [r for r in table if r["method"] == m] for m in METHODS}

    def points(key: str) -> dict[str, list[tuple[float, ...]]]:
        return {m: [(r["per_round"], 100 * r[key], 100 * r[f"{key}_std"]) if n_seeds > 1
                    else (r["per_round"], 100 * r[key]) for r in s]
                for m, s in series.items() if s and key in s[0]}

    note = f" (mean of {n_seeds} seeds)" if n_seeds > 1 else ""
    k = "clients per round K"
    panels = [
        Panel(f"few-shot {shots}-shot accuracy (%){note}", k, points(f"fewshot_{shots}shot"), log_x=True),
        Panel(f"base-test accuracy (%){note}", k, points("base_test_accuracy"), log_x=True),
        Panel("effective updates (% INT8 weights/round)", k, points("mean_effective_update_fraction"),
              log_y=True, log_x=True),
        Panel("broadcast changed (% INT8 weights/round)", k, points("mean_broadcast_changed_fraction"), log_x=True),
    ]
    line_plot(panels, COLOURS, path)
