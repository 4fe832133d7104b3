"""PNG of a compile report's per-layer cycles: `<name>.cycles.png` next to `<name>.report.json`.

One horizontal bar per layer (program order, top to bottom): the hardware-aware cycles at the
report's highest clock and Tensil's own model side by side, each bar labelled with the layer's
MAC efficiency. matplotlib is imported here only, so the numpy-only modules of `tensil/` stay
importable on the board; callers import this module lazily.
"""

from __future__ import annotations

from pathlib import Path

from safeio import save_figure


def cycles_png_path(report_path: str | Path) -> Path:
    """`X.report.json` -> `X.cycles.png`."""
    path = Path(report_path)
    return path.with_name(path.name.removesuffix(".report.json") + ".cycles.png")


def plot_layer_cycles(report: dict, out: str | Path) -> Path:
    """Draw the per-layer cycle bars of a compile `report` (the dict of `.report.json`) to `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = report["layers"]
    clock = max(report["estimate"]["hardware_cycles"], key=lambda k: float(k.removesuffix("MHz")))
    names = [f"{layer['name']} ({layer['kind']})" for layer in layers]
    hardware = [layer["hardware_cycles"][clock] / 1e3 for layer in layers]
    tensil = [layer["tensil_cycles"] / 1e3 for layer in layers]
    y = range(len(layers))

    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.32 * len(layers)), dpi=100)
    ax.barh([i - 0.2 for i in y], hardware, height=0.4, color="tab:blue", label=f"hardware-aware at {clock}")
    ax.barh([i + 0.2 for i in y], tensil, height=0.4, color="tab:gray", label="Tensil's model")
    for i, layer in enumerate(layers):
        if layer.get("macs"):
            ax.text(hardware[i], i - 0.2, f" {100 * layer['mac_efficiency']:.0f}% MAC", va="center", fontsize=7)
    ax.set_yticks(list(y), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("KCycles")
    est = report["estimate"]
    ax.set_title(f"{report['name']}\n{est['tensil_cycles'] / 1e3:.1f} KCycles in Tensil's model, "
                 f"{est['latency_ms'][clock]:.2f} ms at {clock} hardware-aware", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    out = save_figure(fig, out)
    plt.close(fig)
    return out
