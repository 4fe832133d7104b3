"""`python -m fl_bridge fedmpq-compare`: FedMPQ against its baselines on the same federation, in
this process (`inline.InlineGrid`), into `<out>/<method>/` (ordinary run folders, resumable), then
`<out>/fedmpq.json`, the table `<out>/fedmpq.md` and `<out>/fedmpq.png` (accuracy against the
achieved average weight bits, one line per method, one point per budget level).

Per method and budget level: the clients at that level, their achieved average bits (of the
allocation of the last round, and the largest over every round they were sent), whether every
message sent met the budget, and the final accuracies of that level's model (`server.evaluate_levels`)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from safeio import output_lock

from fl_bridge.config import RunConfig
from fl_bridge.errors import FLError
from fl_bridge.fedmpq.methods import FEDMPQ_METHODS
from fl_bridge.inline import InlineGrid, task_identity
from fl_bridge.plot import Panel, line_plot
from fl_bridge.rundir import write_json
from fl_bridge.server import run_federation
from train.files import atomic_write_text

COLOURS = {"fedmpq": "tab:blue", "fedmpq-strict": "tab:cyan", "fedmpq-offset": "tab:purple", "aqfl": "tab:red",
           "fpq8": "tab:gray"}
# variant -> (method, Alg. 2 mode, representation); the other settings are the comparison's
VARIANTS = {"fedmpq": ("fedmpq", "literal", "sign-magnitude"), "fedmpq-strict": ("fedmpq", "strict", "sign-magnitude"),
            "fedmpq-offset": ("fedmpq", "literal", "literal"), "aqfl": ("aqfl", "literal", "sign-magnitude"),
            "fpq8": ("fpq8", "literal", "sign-magnitude")}


def run_config(base: RunConfig, variant: str) -> RunConfig:
    method, allocation, representation = VARIANTS[variant]
    return replace(base, method=method, mpq_allocation=allocation, mpq_representation=representation,
                   out=str(Path(base.out) / variant))


def summarise(run_dir: Path, variant: str) -> list[dict]:
    """One row per budget level of a finished run."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    summary, rounds = metrics["summary"], metrics["rounds"]
    last = rounds[-1]
    budgets = summary["budgets"]
    rows = []
    for v in sorted(set(budgets)):
        clients = [c for c, b in enumerate(budgets) if b == v]
        sent = [r["sent_avg_bits"][str(c)] for r in rounds if "sent_avg_bits" in r for c in clients
                if str(c) in r["sent_avg_bits"]]
        rows.append({
            "variant": variant, "budget": v, "clients": clients,
            "final_avg_bits": [summary["final_avg_bits"][c] for c in clients],
            "max_sent_avg_bits": max(sent) if sent else None,
            "budget_met_every_round": all(x <= v + 1e-9 for x in sent),
            "level_model_avg_bits": last[f"b{v}_avg_bits"],
            **{k[len(f"b{v}_"):]: val for k, val in last.items() if k.startswith(f"b{v}_") and k != f"b{v}_avg_bits"},
            "total_bytes": summary["total_bytes"], "total_bits": summary["total_bits"]})
    if variant == "fpq8":  # one model for every client: one row, under the largest budget, every client
        rows = [{**rows[-1], "clients": list(range(len(budgets)))}]
    return rows


def compare(base: RunConfig, variants: list[str]) -> Path:
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise FLError(f"--variants: choose from {', '.join(VARIANTS)} (got {' '.join(variants) or 'none'})")
    for v in variants:
        run_config(base, v).check()
    with output_lock(Path(base.out), "comparison folder", FLError):
        rows = []
        for v in variants:
            cfg = run_config(base, v)
            with task_identity():
                run_federation(InlineGrid(), cfg)
            rows += summarise(Path(cfg.out), v)
        out = Path(base.out)
        write_json(out / "fedmpq.json", {"variants": variants, "config": base.to_dict(), "rows": rows})
        atomic_write_text(out / "fedmpq.md", markdown(rows, base) + "\n")
        plot(rows, variants, base, out / "fedmpq.png")
        return out / "fedmpq.json"


def _bits(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.3f}" if abs(hi - lo) < 5e-4 else f"{lo:.3f}-{hi:.3f}"


def _sent(row: dict) -> str:
    if row["max_sent_avg_bits"] is None:
        return "- | - (never sampled)"
    return f"{row['max_sent_avg_bits']:.3f} | {'yes' if row['budget_met_every_round'] else 'no'}"


def markdown(rows: list[dict], base: RunConfig) -> str:
    shots = [f"fewshot_{k}shot" for k in base.shots]
    head = ("| method | budget | clients | avg bits (final) | max avg bits sent | budget met | base-test % | "
            + " | ".join(f"{k}-shot %" for k in base.shots) + " | MB exchanged (measured) | MB (formula) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        acc = " | ".join(f"{100 * r[s]:.2f} +- {100 * r[s + '_ci95']:.2f}" for s in shots)
        lines.append(f"| {r['variant']} | {r['budget']} | {len(r['clients'])} | {_bits(r['final_avg_bits'])} | "
                     f"{_sent(r)} | "
                     f"{100 * r['base_test_accuracy']:.2f} | {acc} | {r['total_bytes'] / 1e6:.2f} | "
                     f"{r['total_bits'] / 8e6:.2f} |")
    return "\n".join(lines)


def plot(rows: list[dict], variants: list[str], base: RunConfig, path: Path) -> Path:
    shots = base.shots[0]
    series = {v: [r for r in rows if r["variant"] == v] for v in variants}
    panels = [
        Panel("base-test accuracy (%)", "average weight bits of the level's model",
              {v: [(r["level_model_avg_bits"], 100 * r["base_test_accuracy"]) for r in s] for v, s in series.items()}),
        Panel(f"few-shot {shots}-shot accuracy (%)", "average weight bits of the level's model",
              {v: [(r["level_model_avg_bits"], 100 * r[f"fewshot_{shots}shot"], 100 * r[f"fewshot_{shots}shot_ci95"])
                   for r in s] for v, s in series.items()}),
    ]
    return line_plot(panels, COLOURS, path)


