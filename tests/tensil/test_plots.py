"""`tensil compile` draws `<name>.cycles.png` (per-layer cycles) next to its report and ends with a
summary line; `--no-plot` skips it; the board's numpy-only modules never import matplotlib."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from tensil.cli import main
from tensil.plots import cycles_png_path, plot_layer_cycles
from test_cli_tensil import small_model

ROOT = Path(__file__).resolve().parents[2]
BLUE = np.array([180, 119, 31])          # matplotlib's tab:blue in BGR: the hardware-aware bars


def _report(cycles: list[float]) -> dict:
    layers = [{"name": f"l{i}", "kind": "layer", "tensil_cycles": c / 2, "macs": 10, "mac_efficiency": 0.5,
               "hardware_cycles": {"50MHz": c, "125MHz": c}} for i, c in enumerate(cycles)]
    return {"name": "net", "layers": layers,
            "estimate": {"tensil_cycles": sum(cycles) / 2, "hardware_cycles": {"50MHz": 1, "125MHz": 1},
                         "latency_ms": {"50MHz": 1.0, "125MHz": 0.5}}}


def _bar_lengths(png: Path) -> list[int]:
    """Width in pixels of each blue bar, top to bottom."""
    img = cv2.imread(str(png))
    blue = (np.abs(img.astype(int) - BLUE).max(axis=2) < 10)
    rows = np.where(blue.sum(axis=1) > 0)[0]
    runs = np.split(rows, np.where(np.diff(rows) > 1)[0] + 1)
    return [int(blue[r].sum(axis=1).max()) for r in runs]


def test_bars_follow_the_report(tmp_path):
    png = plot_layer_cycles(_report([1000, 4000, 2000]), tmp_path / "net.cycles.png")
    short, longest, mid = _bar_lengths(png)
    assert longest > mid > short > 0
    assert abs(longest / short - 4) < 0.3 and abs(mid / short - 2) < 0.2
    assert [p.name for p in tmp_path.iterdir()] == ["net.cycles.png"]     # no temp left
    assert cycles_png_path(tmp_path / "a_custom_perf.report.json").name == "a_custom_perf.cycles.png"


def test_compile_draws_the_plot_and_says_so(tmp_path, capsys):
    onnx_path = small_model(tmp_path / "net.onnx")
    assert main(["compile", "--onnx", str(onnx_path), "--out", str(tmp_path / "a"), "--samples", "0"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    png = tmp_path / "a" / "net_custom_perf.cycles.png"
    assert png.is_file() and len(_bar_lengths(png)) >= 2
    assert err[-1].startswith("tensil: summary: net_custom_perf: ") and "ms at 125 MHz" in err[-1]
    assert str(png) in err[-1]
    assert main(["compile", "--onnx", str(onnx_path), "--out", str(tmp_path / "b"), "--samples", "0",
                 "--no-plot"]) == 0
    assert not list((tmp_path / "b").glob("*.png"))


def test_board_modules_do_not_import_matplotlib():
    code = ("import sys, tensil.arch, tensil.fixed, tensil.isa, tensil.layout, tensil.tmodel, tensil.emulator, "
            "tensil.plots; assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
