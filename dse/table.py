"""The results table: one row per finished point, as CSV and JSON, written atomically."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Sequence

from dse.pareto import accuracy_key, pareto_front
from train.files import atomic_write_text

DROP = ("reused",)


def with_front(rows: Sequence[dict]) -> list[dict]:
    """Rows sorted by latency with `pareto` (on the accuracy/latency front) set."""
    rows = [{k: v for k, v in r.items() if k not in DROP} for r in rows]
    if not rows:
        return []
    acc = accuracy_key(rows)
    front = {r["id"] for r in pareto_front(rows, acc)}
    return sorted(({**r, "pareto": r["id"] in front} for r in rows), key=lambda r: (r["latency_ms"], r["id"]))


def columns(rows: Sequence[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows:
        seen.update(dict.fromkeys(r))
    return list(seen)


def to_csv(rows: Sequence[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns(rows), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in r.items()})
    return buf.getvalue()


def write_tables(rows: Sequence[dict], failed: Sequence[dict], csv_path: Path, json_path: Path, meta: dict) -> None:
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(csv_path, to_csv(rows))
    atomic_write_text(json_path, json.dumps({**meta, "accuracy": accuracy_key(rows) if rows else None,
                                             "points": list(rows), "failed": list(failed)}, indent=2) + "\n")


def read_rows(json_path: Path) -> list[dict]:
    return json.loads(json_path.read_text())["points"]
