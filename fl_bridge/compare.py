"""`python -m fl_bridge compare`: the same federation trained with FedAvg (float32 messages) and
with the given FLoCoRA settings, side by side: final few-shot accuracy and measured bytes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from fl_bridge.config import RunConfig
from fl_bridge.rundir import write_json
from fl_bridge.simulate import simulate


def _final(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    last = metrics["rounds"][-1]
    return {"run": str(run_dir), **{k: v for k, v in last.items() if k.startswith(("fewshot", "base_test"))},
            "total_bytes": metrics["summary"]["total_bytes"],
            "analytic_message_bytes": metrics["summary"]["message_bytes"]}


def compare(cfg: RunConfig) -> Path:
    """Run `<out>/fedavg` and `<out>/flocora` (resumable) and write `<out>/comparison.json`."""
    out = Path(cfg.out)
    runs = {"fedavg": replace(cfg, out=str(out / "fedavg"), method="fedavg", quant_bits=32, prune_rate=0.0,
                              deflate=False),
            "flocora": replace(cfg, out=str(out / "flocora"), method="flocora")}
    results = {}
    for name, run_cfg in runs.items():
        simulate(run_cfg)
        results[name] = _final(Path(run_cfg.out))
    fed, flo = results["fedavg"], results["flocora"]
    results["flocora_minus_fedavg_points"] = {
        k: round(100 * (flo[k] - fed[k]), 2) for k in fed if k.startswith("fewshot") and not k.endswith("ci95")}
    results["bytes_ratio_fedavg_over_flocora"] = fed["total_bytes"] / flo["total_bytes"]
    path = out / "comparison.json"
    write_json(path, results)
    return path
