"""`python -m fl_bridge.halo.report RUN [RUN ...]`: the markdown tables of HaLo-FL runs.

Per run: the final accuracies (few-shot on novel classes, base-test), the bytes exchanged and
the analytic upload bits; per client type: the final precision, the precision averaged over the
rounds, and the modelled energy, latency and area averaged over the rounds relative to the start
precision (the paper's Table II reports such round averages). Every cost is modelled."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from fl_bridge.halo.costs import METRICS


def _load(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def run_row(run: Path) -> dict:
    m = _load(run)
    cfg, rounds = m["config"], m["rounds"]
    last = rounds[-1]
    halo = [r for r in rounds if "halo_precisions" in r]
    out = {"run": run.name, "cost_model": cfg["halo_cost_model"], "aggregation": cfg["halo_aggregation"],
           **{k: v for k, v in last.items() if k.startswith(("fewshot", "base_test"))},
           "total_bytes": m["summary"]["total_bytes"], "bits_up": sum(r.get("bits_up", 0) for r in rounds[1:]),
           "types": {}}
    mix = ["energy"] * cfg["halo_energy"] + ["latency"] * cfg["halo_latency"] + ["area"] * cfg["halo_area"] + \
          ["none"] * cfg["halo_unconstrained"]
    for t in dict.fromkeys(mix):
        clients = [i for i, k in enumerate(mix) if k == t]
        precisions = np.array([[r["halo_precisions"][i] for i in clients] for r in halo], dtype=float)
        costs = {metric: [r["halo_mean_costs_modelled"][t][metric] for r in halo] for metric in METRICS}
        out["types"][t] = {"clients": len(clients), "final": halo[-1]["halo_precisions"][clients[0]],
                           "mean_precision": precisions.mean(axis=(0, 1)).round(2).tolist(),
                           "cost_ratio": {metric: float(np.mean(v) / v[0]) for metric, v in costs.items()},
                           "final_cost_ratio": {metric: float(v[-1] / v[0]) for metric, v in costs.items()}}
    return out


def markdown(rows: list[dict]) -> str:
    shots = sorted({k for r in rows for k in r if k.startswith("fewshot_") and not k.endswith("ci95")})
    head = ("| run | cost model | " + " | ".join(s.replace("fewshot_", "").replace("shot", "-shot %") for s in shots)
            + " | base-test % | MB exchanged | MB up (analytic, at bw) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        acc = " | ".join(f"{100 * r[s]:.2f} +- {100 * r[s + '_ci95']:.2f}" for s in shots)
        lines.append(f"| {r['run']} | {r['cost_model']} | {acc} | {100 * r.get('base_test_accuracy', float('nan')):.2f} | "
                     f"{r['total_bytes'] / 1e6:.2f} | {r['bits_up'] / 8e6:.2f} |")
    lines += ["", "| run | client type | clients | final bw-ba-be | mean bw-ba-be over rounds | energy | latency | area |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for t, v in r["types"].items():
            ratios = " | ".join(f"x{v['cost_ratio'][m]:.3f} (final x{v['final_cost_ratio'][m]:.3f})" for m in METRICS)
            lines.append(f"| {r['run']} | {t} | {v['clients']} | {'-'.join(map(str, v['final']))} | "
                         f"{'-'.join(f'{b:g}' for b in v['mean_precision'])} | {ratios} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    runs = [Path(a) for a in (sys.argv[1:] if argv is None else argv)]
    missing = [str(r) for r in runs if not (r / "metrics.json").is_file()]
    if not runs or missing:
        print(f"fl_bridge.halo.report: error: give HaLo-FL run folders with a metrics.json "
              f"(missing: {', '.join(missing) or 'no folder given'})", file=sys.stderr)
        return 2
    print(markdown([run_row(r) for r in runs]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
