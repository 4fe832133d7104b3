"""PNG plots of a sweep in PEFSL's Figure 34 style: one panel per test image size, accuracy
against hardware-aware latency, colour = feature maps (dark: strided, light: max-pool),
marker = training image size, empty = ResNet-9, filled = ResNet-12; the Pareto front of each
panel and the 10 and 30 FPS budgets drawn; points on another architecture or clock than most are
labelled with it. A second plot shows the fixed-point loss per point."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from dse.pareto import budget_ms, pareto_front  # noqa: E402
from safeio import save_figure  # noqa: E402

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
BUDGETS_FPS = (10.0, 30.0)


def _shade(colour: str, strided: bool) -> tuple[float, float, float]:
    """Dark for strided, light (mixed with white) for max-pool."""
    r, g, b = to_rgb(colour)
    return (r * 0.75, g * 0.75, b * 0.75) if strided else (r + (1 - r) * 0.55, g + (1 - g) * 0.55, b + (1 - b) * 0.55)


def _styles(rows: Sequence[dict]) -> tuple[dict, dict]:
    cmap = plt.get_cmap("tab10")
    fms = sorted({r["feature_maps"] for r in rows})
    sizes = sorted({r["train_size"] for r in rows})
    return ({fm: cmap(i % 10) for i, fm in enumerate(fms)}, {s: MARKERS[i % len(MARKERS)] for i, s in enumerate(sizes)})


def accuracy_latency(rows: Sequence[dict], acc: str, path: Path, title: str = "") -> Path:
    """Accuracy (%) against latency (ms, log scale) per test size, front and budgets drawn."""
    colours, markers = _styles(rows)
    tests = sorted({r["test_size"] for r in rows})
    common_arch = Counter(r["arch"] for r in rows).most_common(1)[0][0]  # others are labelled
    common_mhz = Counter(r["mhz"] for r in rows).most_common(1)[0][0]
    fig, axes = plt.subplots(len(tests), 1, figsize=(10, 4.2 * len(tests)), squeeze=False, layout="constrained")
    lat = [r["latency_ms"] for r in rows]
    lo, hi = min(lat + [budget_ms(max(BUDGETS_FPS))]) / 1.5, max(lat + [budget_ms(min(BUDGETS_FPS))]) * 1.5
    for ax, test in zip(axes[:, 0], tests):
        panel = [r for r in rows if r["test_size"] == test]
        for r in panel:
            colour = _shade(colours[r["feature_maps"]], r["strided"])
            filled = r["backbone"] != "resnet9"
            ci = r.get(f"{acc}_ci95") or 0.0
            ax.errorbar(r["latency_ms"], 100 * r[acc], yerr=100 * ci, fmt="none", ecolor=colour, elinewidth=1, alpha=0.7)
            ax.plot(r["latency_ms"], 100 * r[acc], linestyle="none", marker=markers[r["train_size"]], markersize=9,
                    markeredgewidth=1.8, markeredgecolor=colour, markerfacecolor=colour if filled else "none")
            note = " ".join(x for x in (Path(r["arch"]).stem if r["arch"] != common_arch else "",
                                        f"{r['mhz']:g} MHz" if r["mhz"] != common_mhz else "") if x)
            if note:
                ax.annotate(note, (r["latency_ms"], 100 * r[acc]), textcoords="offset points", xytext=(7, -3),
                            fontsize=7, color="dimgrey")
            if not r.get("fits", True):
                ax.plot(r["latency_ms"], 100 * r[acc], "x", color="red", markersize=12)
        front = pareto_front(panel, acc)
        ax.step([r["latency_ms"] for r in front], [100 * r[acc] for r in front], where="post", color="black",
                linewidth=1, linestyle="--", label="Pareto front")
        for fps in BUDGETS_FPS:
            ax.axvline(budget_ms(fps), color="grey", linewidth=1, linestyle=":")
            ax.text(budget_ms(fps), 0.02, f" {fps:g} FPS", transform=ax.get_xaxis_transform(), color="grey",
                    rotation=90, va="bottom", ha="right")
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ax.set_xlabel("hardware-aware latency of the backbone (ms)")
        ax.set_ylabel(f"5-way {acc.split('_')[1].replace('shot', '-shot')} accuracy (%, {acc.split('_')[0]})")
        ax.set_title(f"test images {test}x{test}" + (f" — {title}" if title else ""))
        ax.grid(True, which="both", alpha=0.3)
    legend = [Line2D([], [], color=c, marker="s", linestyle="none", label=f"{fm} feature maps")
              for fm, c in colours.items()]
    legend += [Line2D([], [], color="black", marker=m, linestyle="none", markerfacecolor="none",
                      label=f"trained at {s}x{s}") for s, m in markers.items()]
    legend += [Line2D([], [], color="black", marker="o", linestyle="none", markerfacecolor="none", label="ResNet-9 (empty)"),
               Line2D([], [], color="black", marker="o", linestyle="none", label="ResNet-12 (filled)"),
               Line2D([], [], color=_shade("tab:blue", True), marker="o", linestyle="none", label="strided (dark)"),
               Line2D([], [], color=_shade("tab:blue", False), marker="o", linestyle="none", label="max-pool (light)"),
               Line2D([], [], color="black", linestyle="--", label="Pareto front"),
               Line2D([], [], color="red", marker="x", linestyle="none", label="does not fit the FPGA")]
    fig.legend(handles=legend, fontsize=7, loc="outside right upper")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def fixed_point_loss(rows: Sequence[dict], shots: Sequence[int], path: Path) -> Path:
    """Float minus fixed-point accuracy (points) per point and shot count."""
    rows = [r for r in rows if r.get(f"fixed_loss_{shots[0]}shot") is not None]
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(rows) + 2), 4.5))
    width = 0.8 / max(1, len(shots))
    for i, s in enumerate(shots):
        ax.bar([k + i * width for k in range(len(rows))], [100 * r[f"fixed_loss_{s}shot"] for r in rows], width,
               label=f"{s}-shot")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks([k + width * (len(shots) - 1) / 2 for k in range(len(rows))])
    ax.set_xticklabels([r["id"].rsplit("_", 1)[0] for r in rows], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("float - fixed point accuracy (points)")
    ax.set_title("accuracy lost to the 16-bit fixed-point program (same images and episodes)")
    ax.legend()
    ax.grid(True, axis="y", alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path
