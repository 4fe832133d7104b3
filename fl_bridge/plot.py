"""Line plots of a federated sweep with matplotlib: panels side by side, one line with markers
per series (error bars where a point carries a third value), a legend."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from safeio import save_figure


@dataclass(frozen=True)
class Panel:
    title: str
    xlabel: str
    series: dict[str, list[tuple[float, ...]]]  # (x, y) or (x, y, +- error) points
    log_y: bool = False
    log_x: bool = False  # base 2, ticks at the points' x values


def line_plot(panels: list[Panel], colours: dict[str, str], path: Path) -> Path:
    """One PNG with `panels` side by side; `colours` maps series names to matplotlib colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for name, points in panel.series.items():
            if points:
                columns = list(zip(*sorted(points)))
                errors = columns[2] if len(columns) > 2 else None
                ax.errorbar(columns[0], columns[1], yerr=errors, marker="o", capsize=3 if errors else 0,
                            color=colours.get(name), label=name)
        if panel.log_y:
            ax.set_yscale("log")
        if panel.log_x:
            ax.set_xscale("log", base=2)
            ticks = sorted({p[0] for points in panel.series.values() for p in points})
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_title(panel.title, fontsize=8)
        ax.set_xlabel(panel.xlabel, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    path = save_figure(fig, path)
    plt.close(fig)
    return path
