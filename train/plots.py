"""Training curves of a finished checkpoint, and the one-line summary `train fit` ends with.

`plot_training` draws, from the metrics a checkpoint carries (`metrics.members[].history`), the
training loss and the validation 5-way 1-shot accuracy per epoch (with its 95% interval) for
each ensemble member, marks the epoch that was kept, and writes `<checkpoint stem>.curves.png`
next to the checkpoint. matplotlib is imported only when drawing.
"""

from __future__ import annotations

from pathlib import Path

from safeio import save_figure


def curves_png_path(checkpoint: str | Path) -> Path:
    """`build/backbone/default.pt` -> `build/backbone/default.curves.png`."""
    path = Path(checkpoint)
    return path.with_name(path.stem + ".curves.png")


def plot_training(metrics: dict, out: str | Path, title: str = "") -> Path:
    """Loss (left) and validation 1-shot accuracy (right) against epochs; `out` written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    members = metrics.get("members") or [{"history": metrics.get("history", []), "best_epoch": None}]
    fig, loss_ax = plt.subplots(figsize=(7, 4), dpi=100)
    acc_ax = loss_ax.twinx()
    for i, member in enumerate(members):
        history = member.get("history") or []
        epochs = [r["epoch"] for r in history]
        suffix = f" (member {i + 1})" if len(members) > 1 else ""
        loss_ax.plot(epochs, [r["loss"] for r in history], color="tab:red", marker=".", alpha=1 - 0.3 * i,
                     label=f"training loss{suffix}")
        val = [(r["epoch"], 100 * r["val_1shot"], 100 * r.get("val_1shot_ci95", 0)) for r in history if "val_1shot" in r]
        if val:
            e, a, ci = zip(*val)
            acc_ax.errorbar(e, a, yerr=ci, color="tab:blue", marker="o", ms=3, capsize=2, alpha=1 - 0.3 * i,
                            label=f"val 5-way 1-shot{suffix}")
        best = member.get("best_epoch")
        if best:
            loss_ax.axvline(best, color="grey", ls=":", lw=1)
            loss_ax.annotate(f"kept: epoch {best} ", (best, 0.02), xycoords=("data", "axes fraction"),
                             ha="right", va="bottom", fontsize=7, color="grey")
    novel = metrics.get("trained_novel_5way_1shot")
    if novel is not None:
        acc_ax.axhline(100 * novel, color="tab:green", ls="--", lw=1,
                       label=f"novel 5-way 1-shot {100 * novel:.2f}%")
    loss_ax.set_xlabel("epoch")
    loss_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_ax.set_ylabel("training loss", color="tab:red")
    acc_ax.set_ylabel("accuracy (%)", color="tab:blue")
    handles = [h for ax in (loss_ax, acc_ax) for h in ax.get_legend_handles_labels()[0]]
    labels = [lb for ax in (loss_ax, acc_ax) for lb in ax.get_legend_handles_labels()[1]]
    acc_ax.legend(handles, labels, fontsize=7, loc="lower center", ncol=2)
    loss_ax.grid(alpha=0.3)
    if title:
        loss_ax.set_title(title, fontsize=9)
    out = save_figure(fig, out)
    plt.close(fig)
    return out


def summary_line(metrics: dict, checkpoint: str | Path, png: Path | None) -> str:
    """`train: summary: ...`: what was written and the key figures, in one line."""
    parts = [f"train: summary: {checkpoint}"]
    shots = [(k, metrics.get(f"trained_novel_5way_{k}shot"), metrics.get(f"trained_novel_5way_{k}shot_ci95"))
             for k in (1, 5)]
    figures = [f"{k}-shot {100 * a:.2f}% +- {100 * (ci or 0):.2f}" for k, a, ci in shots if a is not None]
    if figures:
        parts.append("novel 5-way " + ", ".join(figures))
    members = metrics.get("members") or []
    if members and members[0].get("best_epoch"):
        kept = ", ".join(str(m.get("best_epoch")) for m in members)
        parts.append(f"kept epoch{'s' if len(members) > 1 else ''} {kept} of {len(members[0].get('history', []))}")
    if "train_seconds" in metrics:
        parts.append(f"trained in {metrics['train_seconds'] / 60:.1f} min")
    if png is not None:
        parts.append(f"curves in {png}")
    return "; ".join(parts)
