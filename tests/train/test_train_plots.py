"""Training curves drawn from a checkpoint's metrics, and the closing summary line of `train fit`."""

from __future__ import annotations

import cv2
import numpy as np

from train.plots import curves_png_path, plot_training, summary_line

RED = np.array([40, 39, 214])            # matplotlib's tab:red in BGR: the loss curve


def _metrics(losses, accs):
    history = [{"epoch": i + 1, "loss": l, "val_1shot": a, "val_1shot_ci95": 0.01}
               for i, (l, a) in enumerate(zip(losses, accs))]
    return {"complete": True, "train_seconds": 90.0, "members": [{"seed": 0, "best_epoch": int(np.argmax(accs)) + 1, "history": history}],
            "trained_novel_5way_1shot": 0.8564, "trained_novel_5way_1shot_ci95": 0.0036,
            "trained_novel_5way_5shot": 0.9432, "trained_novel_5way_5shot_ci95": 0.0019}


def _red_rows(png) -> tuple[float, float]:
    """Mean row of the loss curve's pixels in the left and the right third of the image."""
    img = cv2.imread(str(png))
    red = np.abs(img.astype(int) - RED).max(axis=2) < 12
    rows, cols = np.nonzero(red)
    w = img.shape[1]
    return rows[cols < w // 3].mean(), rows[cols > 2 * w // 3].mean()


def test_the_loss_curve_follows_the_history(tmp_path):
    falling = plot_training(_metrics([6, 5, 4, 3, 2, 1], [0.3, 0.4, 0.5, 0.6, 0.7, 0.7]), tmp_path / "a.png", "t")
    left, right = _red_rows(falling)
    assert left < right - 50                           # high loss on the left: drawn near the top
    rising = plot_training(_metrics([1, 2, 3, 4, 5, 6], [0.3] * 6), tmp_path / "b.png")
    left, right = _red_rows(rising)
    assert left > right + 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]   # no temp left


def test_summary_line_and_path():
    assert curves_png_path("build/backbone/default.pt").as_posix() == "build/backbone/default.curves.png"
    line = summary_line(_metrics([2, 1], [0.5, 0.6]), "build/backbone/default.pt", curves_png_path("x/d.pt"))
    assert line == ("train: summary: build/backbone/default.pt; novel 5-way 1-shot 85.64% +- 0.36, "
                    "5-shot 94.32% +- 0.19; kept epoch 2 of 2; trained in 1.5 min; curves in x/d.curves.png")


def test_fit_ends_with_curves_and_a_summary(tmp_path, monkeypatch, capsys):
    """`train fit`'s hook: the PNG next to the checkpoint and the summary as the last line."""
    import types

    import train.cli

    metrics = _metrics([3, 2, 1], [0.4, 0.5, 0.6])
    monkeypatch.setattr(train.cli, "fit", lambda config: types.SimpleNamespace(metrics=metrics))
    out = tmp_path / "m.pt"
    assert train.cli.main(["fit", "--out", str(out)]) == 0
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert (tmp_path / "m.curves.png").is_file() and _red_rows(tmp_path / "m.curves.png")[0] < _red_rows(tmp_path / "m.curves.png")[1]
    assert last == f"train: summary: {out}; novel 5-way 1-shot 85.64% +- 0.36, 5-shot 94.32% +- 0.19; " \
                   f"kept epoch 3 of 3; trained in 1.5 min; curves in {tmp_path / 'm.curves.png'}"
