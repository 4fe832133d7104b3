"""`<run>/convergence.png` and the closing summary line of `fl_bridge run`.

From a run's `metrics.json`: the few-shot accuracy (and the base-class test accuracy when it was
measured) against the round and against the bytes exchanged so far (up + down, measured on the
serialised messages). matplotlib is imported only when drawing.
"""

from __future__ import annotations

from pathlib import Path

from safeio import save_figure

PNG_NAME = "convergence.png"


def _series(metrics: dict) -> tuple[list[dict], list[float]]:
    """Rounds in order and the cumulative MB exchanged after each."""
    rounds = sorted(metrics.get("rounds", []), key=lambda r: r["round"])
    total, cumulative = 0.0, []
    for r in rounds:
        total += (r.get("bytes_up", 0) + r.get("bytes_down", 0)) / 1e6
        cumulative.append(total)
    return rounds, cumulative


def plot_run(metrics: dict, out: str | Path, title: str = "") -> Path:
    """Accuracy against rounds (left) and against cumulative MB (right); `out` written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rounds, mb = _series(metrics)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=100, sharey=True)
    for key, label, colour in (("fewshot_1shot", "5-way 1-shot", "tab:blue"), ("fewshot_5shot", "5-way 5-shot", "tab:green"),
                               ("base_test_accuracy", "base classes (test)", "tab:gray")):
        points = [(r["round"], m, 100 * r[key], 100 * r.get(f"{key}_ci95", 0)) for r, m in zip(rounds, mb) if key in r]
        if not points:
            continue
        x_round, x_mb, acc, ci = zip(*points)
        axes[0].errorbar(x_round, acc, yerr=ci, color=colour, marker="o", ms=3, capsize=2, label=label)
        axes[1].errorbar(x_mb, acc, yerr=ci, color=colour, marker="o", ms=3, capsize=2, label=label)
    axes[0].set_xlabel("round")
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].set_xlabel("MB exchanged (up + down, cumulative)")
    axes[0].set_ylabel("accuracy (%)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    out = save_figure(fig, out)
    plt.close(fig)
    return out


def summary_line(metrics: dict, run_dir: str | Path, png: Path | None) -> str:
    """`fl_bridge: summary: ...`: rounds, the last few-shot figure, the bytes, the plot."""
    rounds, mb = _series(metrics)
    parts = [f"fl_bridge: summary: {run_dir}: {max((r['round'] for r in rounds), default=0)} rounds"]
    evaluated = [r for r in rounds if "fewshot_1shot" in r]
    if evaluated:
        last = evaluated[-1]
        parts.append(f"5-way 1-shot {100 * last['fewshot_1shot']:.2f}% +- {100 * last.get('fewshot_1shot_ci95', 0):.2f} "
                     f"after round {last['round']}")
    up = sum(r.get("bytes_up", 0) for r in rounds) / 1e6
    down = sum(r.get("bytes_down", 0) for r in rounds) / 1e6
    parts.append(f"{mb[-1] if mb else 0:.2f} MB exchanged (up {up:.2f}, down {down:.2f})")
    if png is not None:
        parts.append(f"curves in {png}")
    return "; ".join(parts)
