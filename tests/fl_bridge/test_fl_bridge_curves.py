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


ORANGE = np.array([14, 127, 255])        # tab:orange in BGR: the second run


def _comparison(tmp_path):
    """A compare folder: fedavg rising to 80%, flocora to 70% with a tenth of the bytes."""
    fed, flo = _metrics([0.3, 0.6, 0.8]), _metrics([0.3, 0.5, 0.7])
    for r in flo["rounds"]:
        r["bytes_up"], r["bytes_down"] = r["bytes_up"] // 10, r["bytes_down"] // 10
    for name, m in (("fedavg", fed), ("flocora", flo)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(m))
    results = {"fedavg": {"fewshot_1shot": 0.8, "total_bytes": 6_000_000},
               "flocora": {"fewshot_1shot": 0.7, "total_bytes": 600_000},
               "flocora_minus_fedavg_points": {"fewshot_1shot": -10.0}, "bytes_ratio_fedavg_over_flocora": 10.0}
    (tmp_path / "comparison.json").write_text(json.dumps(results))
    return tmp_path / "comparison.json"


def test_compare_draws_both_runs_and_says_which_won(tmp_path, capsys):
    from fl_bridge.cli import report_compare

    report_compare(_comparison(tmp_path))
    img = cv2.imread(str(tmp_path / "comparison.png"))
    for colour in (BLUE, ORANGE):
        rows, cols = np.nonzero(np.abs(img.astype(int) - colour).max(axis=2) < 12)
        assert (cols < img.shape[1] // 2).sum() > 50 and (cols > img.shape[1] // 2).sum() > 50   # both panels
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"fl_bridge: summary: {tmp_path}: 5-way 1-shot FedAvg 80.00%, FLoCoRA 70.00% (-10.00 points); "
        f"FLoCoRA exchanged 10.0x fewer bytes (0.60 MB vs 6.00 MB); curves in {tmp_path / 'comparison.png'}")


def test_round_line_is_readable():
    from fl_bridge.curves import round_line

    entry = {"round": 2, "partitions": [0, 2], "bytes_up": 155086, "bytes_down": 1_550_860, "sent": 2, "received": 1,
             "dropped": 1, "failed": 0, "timed_out": 0, "train_loss": 4.20293, "fewshot_1shot": 0.2541,
             "fewshot_1shot_ci95": 0.0163, "base_test_accuracy": 0.018, "seconds": 176.13}
    assert round_line(entry, 20) == ("round 2/20: 1 of 2 replies (1 dropped); 0.16 MB up, 1.55 MB down; "
                                     "train loss 4.203; 5-way 1-shot 25.41% +- 1.63; base classes 1.80%; 176.1 s")


def test_flower_logs_carry_no_colour_codes_off_a_terminal(capsys):
    import logging

    from flwr.common.logger import ConsoleHandler

    from fl_bridge.cli import configure_logging

    configure_logging("run")                       # stderr is pytest's capture: not a terminal
    handlers = [h for h in logging.getLogger("flwr").handlers if isinstance(h, ConsoleHandler)]
    record = logging.LogRecord("flwr", logging.WARNING, __file__, 1, "fraction_evaluate", None, None)
    assert handlers and all("\x1b[" not in h.format(record) for h in handlers)
