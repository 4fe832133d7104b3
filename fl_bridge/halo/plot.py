"""Each client's path through the precision tree, in the style of the HaLo-FL paper's Fig. 5:
nodes are precisions bw-ba-be, one column per step from the start; the edges a client took are
drawn in its constraint's colour, thicker the more clients took them; each node's untaken
children are drawn grey for context. Plus one panel of the mean modelled costs per client type
against the round (relative to the start precision). Written as `<run>/halo_paths.png`."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from fl_bridge.halo.costs import METRICS
from fl_bridge.halo.selector import children
from fl_bridge.halo.settings import settings
from safeio import save_figure

PNG_NAME = "halo_paths.png"
COLOURS = {"energy": "tab:red", "latency": "tab:blue", "area": "tab:green", "none": "tab:gray"}


def _label(p) -> str:
    return "-".join(str(b) for b in p)


def walks(rounds: list[dict]) -> list[list[tuple[int, ...]]]:
    """Each client's sequence of distinct precisions over the run's rounds."""
    entries = [r["halo_precisions"] for r in rounds if "halo_precisions" in r]
    out = []
    for c in range(len(entries[0]) if entries else 0):
        seq: list[tuple[int, ...]] = []
        for e in entries:
            p = tuple(e[c])
            if not seq or seq[-1] != p:
                seq.append(p)
        out.append(seq)
    return out


def plot_paths(rounds: list[dict], constraints: list[str], step: int, floors, path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seqs = walks(rounds)
    edges: Counter = Counter()
    for seq, constraint in zip(seqs, constraints):
        for a, b in zip(seq, seq[1:]):
            edges[(a, b, constraint)] += 1
    taken = {a for a, _, _ in edges} | {b for _, b, _ in edges} | {s[0] for s in seqs if s}
    depth = {p: (sum(seqs[0][0]) - sum(p)) // step for p in taken} if seqs else {}
    context = {(a, child) for a in taken for child in children(a, step, floors).values()}
    nodes = sorted(taken | {c for _, c in context}, key=lambda p: (-sum(p), p))
    for p in nodes:
        depth.setdefault(p, (sum(seqs[0][0]) - sum(p)) // step)
    columns: dict[int, list] = {}
    for p in nodes:
        columns.setdefault(depth[p], []).append(p)
    pos = {p: (d, -(i - (len(col) - 1) / 2)) for d, col in columns.items() for i, p in enumerate(col)}

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [1.6, 1]})
    for a, b in context:
        ax.plot(*zip(pos[a], pos[b]), color="0.85", lw=0.8, zorder=1)
    shift = {"energy": -0.06, "latency": 0.0, "area": 0.06, "none": 0.12}
    for (a, b, constraint), n in edges.items():
        (x0, y0), (x1, y1) = pos[a], pos[b]
        ax.plot([x0, x1], [y0 + shift[constraint], y1 + shift[constraint]], color=COLOURS[constraint],
                lw=1 + 1.2 * n ** 0.5, alpha=0.85, zorder=2)
    for p in nodes:
        x, y = pos[p]
        ax.text(x, y, _label(p), ha="center", va="center", fontsize=7, zorder=3,
                bbox={"boxstyle": "round,pad=0.2", "fc": "white" if p in taken else "0.95",
                      "ec": "black" if p in taken else "0.8"})
    for constraint in dict.fromkeys(constraints):
        ax.plot([], [], color=COLOURS[constraint], lw=3, label=f"{constraint} ({constraints.count(constraint)})")
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title("precision paths bw-ba-be (line width ~ clients)", fontsize=9)
    ax.set_xlabel("HaLo-PS steps", fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.5, max(columns) + 0.5 if columns else 0.5)
    ax.set_xticks(sorted(columns))

    entries = [r for r in rounds if "halo_mean_costs_modelled" in r]
    styles = {"energy": "-", "latency": "--", "area": ":"}
    if entries:
        first = entries[0]["halo_mean_costs_modelled"]
        for constraint in first:
            for metric in METRICS:
                if metric != constraint:  # unconstrained clients have no metric to follow
                    continue
                ys = [r["halo_mean_costs_modelled"][constraint][metric] / first[constraint][metric] for r in entries]
                ax2.plot([r["round"] for r in entries], ys, styles[metric], color=COLOURS[constraint],
                         drawstyle="steps-post", label=f"{constraint} clients: {metric}")
    ax2.set_title("modelled cost of the constrained metric (/ round 1)", fontsize=9)
    ax2.set_xlabel("round", fontsize=8)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    path = save_figure(fig, path)
    plt.close(fig)
    return path


def write_path_plot(cfg, rounds: list[dict], run_dir: Path) -> Path | None:
    """`<run>/halo_paths.png`; a plotting failure only warns (the run's results are written)."""
    halo = settings(cfg)
    try:
        return plot_paths(rounds, halo.constraints(), halo.step, halo.floors, Path(run_dir) / PNG_NAME,
                          title=f"{Path(run_dir).name}: cost model {halo.cost_model}, step rule {halo.rule.rule} "
                                f"(K={halo.rule.k}), tie-break {','.join(halo.tie_break)}")
    except (ImportError, OSError, ValueError, KeyError) as e:
        print(f"fl_bridge: warning: no HaLo-FL path plot ({type(e).__name__}: {e})", file=sys.stderr)
        return None
