"""`fl_bridge run`'s convergence plot and summary line, from a run's metrics."""

from __future__ import annotations

import json

import cv2
import numpy as np

from fl_bridge.curves import plot_run, summary_line

BLUE = np.array([180, 119, 31])          # matplotlib's tab:blue in BGR: the 1-shot curve


def _metrics(acc):
    rounds = [{"round": 0, "bytes_up": 0, "bytes_down": 0, "fewshot_1shot": acc[0], "fewshot_1shot_ci95": 0.01}]
    rounds += [{"round": i, "bytes_up": 2_000_000, "bytes_down": 1_000_000, "fewshot_1shot": a, "fewshot_1shot_ci95": 0.01}
               for i, a in enumerate(acc[1:], 1)]
    return {"config": {}, "summary": {}, "rounds": rounds}


def _blue_rows(png):
    img = cv2.imread(str(png))
    rows, cols = np.nonzero(np.abs(img.astype(int) - BLUE).max(axis=2) < 12)
    half = img.shape[1] // 2                       # the left panel: against rounds
    left = cols < half
    c, r = cols[left], rows[left]
    return r[c < np.percentile(c, 20)].mean(), r[c > np.percentile(c, 80)].mean()


def test_rising_accuracy_is_drawn_rising(tmp_path):
    png = plot_run(_metrics([0.3, 0.5, 0.7, 0.8]), tmp_path / "convergence.png", "run")
    first, last = _blue_rows(png)
    assert last < first - 40                       # higher accuracy is drawn higher up
    png = plot_run(_metrics([0.8, 0.7, 0.5, 0.3]), tmp_path / "down.png")
    first, last = _blue_rows(png)
    assert last > first + 40
    assert sorted(p.name for p in tmp_path.iterdir()) == ["convergence.png", "down.png"]


def test_summary_line(tmp_path):
    line = summary_line(_metrics([0.3, 0.5, 0.7]), "build/fl/x", tmp_path / "convergence.png")
    assert line == ("fl_bridge: summary: build/fl/x: 2 rounds; 5-way 1-shot 70.00% +- 1.00 after round 2; "
                    f"6.00 MB exchanged (up 4.00, down 2.00); curves in {tmp_path / 'convergence.png'}")


def test_run_command_reports(tmp_path, capsys):
    from fl_bridge.cli import report_run

    (tmp_path / "metrics.json").write_text(json.dumps(_metrics([0.3, 0.5])))
    report_run(tmp_path / "metrics.json")
    assert (tmp_path / "convergence.png").is_file()
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"fl_bridge: summary: {tmp_path}: 1 rounds")
