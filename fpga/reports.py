"""Parsers of the Vivado reports the build writes: timing summary and utilisation."""

from __future__ import annotations

import re

from fpga.errors import VivadoError

UTILISATION_ROWS = {"Slice LUTs": "lut", "Slice Registers": "ff", "Block RAM Tile": "bram36", "DSPs": "dsp"}


def worst_slack_ns(timing_summary: str) -> float:
    """WNS of `report_timing_summary` (the first value under the `WNS(ns)` header)."""
    lines = timing_summary.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("WNS(ns)"):
            for value_line in lines[i + 1 : i + 4]:
                fields = value_line.split()
                if fields and re.fullmatch(r"-?\d+(\.\d+)?", fields[0]):
                    return float(fields[0])
    raise VivadoError("no WNS found in the timing summary report")


def utilisation(report: str) -> dict[str, float]:
    """{lut, ff, bram36, dsp: used} from `report_utilization`'s tables."""
    used: dict[str, float] = {}
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0] in UTILISATION_ROWS and UTILISATION_ROWS[cells[0]] not in used:
            try:
                used[UTILISATION_ROWS[cells[0]]] = float(cells[1])
            except ValueError:
                continue
    return used
