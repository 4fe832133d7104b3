"""`<run>/convergence.png` and the closing summary line of `fl_bridge run`; `comparison.png` and
the summary line of `fl_bridge compare`.

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


def _round_and_bytes_axes():
    """A two-panel figure sharing y: against the round (left) and the cumulative MB (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, 2, figsize=(9, 3.6), dpi=100, sharey=True)


def _finish(fig, axes, out: str | Path, ylabel: str, title: str) -> Path:
    """Label, grid and legend both panels, write `out` atomically, close the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    axes[0].set_xlabel("round")
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].set_xlabel("MB exchanged (up + down, cumulative)")
    axes[0].set_ylabel(ylabel)
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    out = save_figure(fig, out)
    plt.close(fig)
    return out


def plot_run(metrics: dict, out: str | Path, title: str = "") -> Path:
    """Accuracy against rounds (left) and against cumulative MB (right); `out` written atomically."""
    rounds, mb = _series(metrics)
    fig, axes = _round_and_bytes_axes()
    for key, label, colour in (("fewshot_1shot", "5-way 1-shot", "tab:blue"), ("fewshot_5shot", "5-way 5-shot", "tab:green"),
                               ("base_test_accuracy", "base classes (test)", "tab:gray")):
        points = [(r["round"], m, 100 * r[key], 100 * r.get(f"{key}_ci95", 0)) for r, m in zip(rounds, mb) if key in r]
        if not points:
            continue
        x_round, x_mb, acc, ci = zip(*points)
        axes[0].errorbar(x_round, acc, yerr=ci, color=colour, marker="o", ms=3, capsize=2, label=label)
        axes[1].errorbar(x_mb, acc, yerr=ci, color=colour, marker="o", ms=3, capsize=2, label=label)
    return _finish(fig, axes, out, "accuracy (%)", title)


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


COMPARE_PNG = "comparison.png"
_SHOTS = (("fewshot_1shot", "1-shot", "-"), ("fewshot_5shot", "5-shot", "--"))


def plot_compare(runs: dict[str, dict], out: str | Path, title: str = "") -> Path:
    """`compare`'s figure: each run's few-shot accuracy against rounds (left) and against
    cumulative MB exchanged (right), one colour per run (`runs`: name -> its metrics.json)."""
    fig, axes = _round_and_bytes_axes()
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    for (name, metrics), colour in zip(runs.items(), colours):
        rounds, mb = _series(metrics)
        for key, shots, style in _SHOTS:
            points = [(r["round"], m, 100 * r[key]) for r, m in zip(rounds, mb) if key in r]
            if not points:
                continue
            x_round, x_mb, acc = zip(*points)
            axes[0].plot(x_round, acc, style, color=colour, marker="o", ms=3, label=f"{name} {shots}")
            axes[1].plot(x_mb, acc, style, color=colour, marker="o", ms=3)
    axes[1].set_xscale("symlog", linthresh=0.1)  # runs that differ tenfold in bytes stay readable
    return _finish(fig, axes, out, "5-way accuracy (%)", title)


def compare_summary_line(results: dict, out_dir: str | Path, png: Path | None) -> str:
    """`fl_bridge: summary: ...` of `compare` (results: what comparison.json holds)."""
    fed, flo = results["fedavg"], results["flocora"]
    parts = []
    for key, shots, _ in _SHOTS:
        if key in fed and key in flo:
            parts.append(f"5-way {shots} FedAvg {100 * fed[key]:.2f}%, FLoCoRA {100 * flo[key]:.2f}% "
                         f"({results['flocora_minus_fedavg_points'][key]:+.2f} points)")
    parts.append(f"FLoCoRA exchanged {results['bytes_ratio_fedavg_over_flocora']:.1f}x fewer bytes "
                 f"({flo['total_bytes'] / 1e6:.2f} MB vs {fed['total_bytes'] / 1e6:.2f} MB)")
    if png is not None:
        parts.append(f"curves in {png}")
    return f"fl_bridge: summary: {out_dir}: " + "; ".join(parts)


_ROUND_KEYS = {"round", "partitions", "bytes_up", "bytes_down", "bits_up", "bits_down", "sent", "received", "dropped",
               "failed", "timed_out", "train_loss", "base_test_accuracy", "seconds",
               "fewshot_1shot", "fewshot_1shot_ci95", "fewshot_5shot", "fewshot_5shot_ci95"}


def round_line(entry: dict, rounds: int) -> str:
    """One readable log line for a finished round (the metrics.json entry keeps every figure)."""
    parts = [f"round {entry['round']}/{rounds}: {entry.get('received', 0)} of {entry.get('sent', 0)} replies"]
    lost = [f"{entry[k]} {k.replace('_', ' ')}" for k in ("dropped", "failed", "timed_out") if entry.get(k)]
    if lost:
        parts[0] += f" ({', '.join(lost)})"
    parts.append(f"{entry.get('bytes_up', 0) / 1e6:.2f} MB up, {entry.get('bytes_down', 0) / 1e6:.2f} MB down")
    if entry.get("train_loss") is not None:   # None: no usable update this round
        parts.append(f"train loss {entry['train_loss']:.3f}")
    shots = [f"{label} {100 * entry[key]:.2f}% +- {100 * entry.get(f'{key}_ci95', 0):.2f}"
             for key, label, _ in _SHOTS if key in entry]
    if shots:
        parts.append("5-way " + ", ".join(shots))
    if "base_test_accuracy" in entry:
        parts.append(f"base classes {100 * entry['base_test_accuracy']:.2f}%")
    extra = [f"{k} {v}" for k, v in entry.items() if k not in _ROUND_KEYS and isinstance(v, (int, float, str))]
    parts += extra
    if "seconds" in entry:
        parts.append(f"{entry['seconds']:.1f} s")
    return "; ".join(parts)
