"""Fixed-point honesty: how much of the emulator's error is the data type, and why.

Tensil's array rounds every product to the data type's step (1/256 in FP16BP8) before adding
it, and saturates every partial sum. A layer with fan-in K therefore adds about
`sqrt(K / 12) * step` of rounding noise per output, however small its activations are. To tell
that apart from a compiler bug, the report compares the emulator with a float computation that
rounds only once per layer (weights, input and each layer's output quantized, products exact):

    emulator vs onnxruntime          the cosine the user sees
    one rounding vs onnxruntime      what the data type alone allows

A low emulator cosine next to a high one-rounding cosine is the per-product rounding; both
low means the value range itself is the problem (activations of a few steps, or saturation).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tensil.arch import DataType
from tensil.compiler.graph import Constant, GlobalPool, Network, Product, Upsample
from tensil.compiler.passes import apply_act, apply_pool, conv2d
from tensil.fixed import dequantize, quantize

MIN_COSINE = 0.99  # below this the compile report and CLI warn


def rounded(x: np.ndarray, dtype: DataType) -> np.ndarray:
    """x rounded to the data type's grid and saturated (one rounding)."""
    return dequantize(quantize(x, dtype)[0], dtype)


def one_rounding_forward(net: Network, inputs: dict[str, np.ndarray], dtype: DataType) -> dict[str, np.ndarray]:
    """The fused network in float64 with quantized weights, inputs and layer outputs, exact products."""
    env = {k: rounded(np.asarray(v, dtype=np.float64).reshape(net.shapes[k]), dtype) for k, v in inputs.items()}
    for step in net.steps:
        if isinstance(step, GlobalPool):
            env[step.output] = rounded(env[step.input].mean(axis=(1, 2), keepdims=True), dtype)
            continue
        if isinstance(step, Upsample):
            env[step.output] = rounded(step.forward(env[step.input]), dtype)
            continue
        if isinstance(step, Product):
            env[step.output] = rounded(step.forward(env[step.a], env[step.b]), dtype)
            continue
        if isinstance(step, Constant):
            env[step.output] = rounded(step.values, dtype)
            continue
        total = rounded(step.bias, dtype)[:, None, None]
        for t in step.terms:
            total = total + conv2d(env[t.input], rounded(t.weight, dtype), t.strides, t.pads)
        env[step.output] = rounded(apply_pool(apply_act(total, step.act), step.pool), dtype)
    return {o: env[o] for o in net.outputs}


@dataclass
class LayerNoise:
    """Per layer: expected per-product rounding noise against the size of its float outputs."""

    layer: str
    fan_in: int  # products summed per output value
    rounding_noise_rms: float  # sqrt(fan_in / 12) * step
    output_rms: float  # of the float outputs on the samples
    weights_rounding_to_zero: float  # fraction of non-zero weights below half a step

    @property
    def noise_to_signal(self) -> float:
        return self.rounding_noise_rms / self.output_rms if self.output_rms > 0 else float("inf")


def layer_noise(net: Network, samples: list[dict[str, np.ndarray]], dtype: DataType) -> list[LayerNoise]:
    """The per-product rounding budget of every layer, from float runs of the samples."""
    from tensil.compiler.passes import reference_forward

    step_size = 1.0 / dtype.scale
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    probe = Network(net.steps, net.shapes, net.inputs, [s.output for s in net.steps], net.io_shapes)
    for feeds in samples:
        outs = reference_forward(probe, feeds)
        for s in net.steps:
            y = outs[s.output]
            sums[s.name] = sums.get(s.name, 0.0) + float(np.sum(y * y))
            counts[s.name] = counts.get(s.name, 0) + y.size
    rows = []
    for s in net.steps:
        if isinstance(s, (GlobalPool, Upsample, Product, Constant)) or s.copy:
            continue
        fan_in = int(sum(np.count_nonzero(t.weight.reshape(t.weight.shape[0], -1), axis=1) for t in s.terms).max())
        w = np.concatenate([t.weight[t.weight != 0].ravel() for t in s.terms]) if s.terms else np.zeros(0)
        tiny = float(np.mean(np.abs(w) < step_size / 2)) if w.size else 0.0
        rms = float(np.sqrt(sums[s.name] / max(counts[s.name], 1)))
        rows.append(LayerNoise(s.name, fan_in, float(np.sqrt(fan_in / 12.0)) * step_size, rms, tiny))
    return rows


def explain(emulator_cos: float, one_rounding_cos: float, noise: list[LayerNoise], dtype: DataType,
            threshold: float = MIN_COSINE) -> dict:
    """The report's `precision` section, with a warning when the emulator's cosine is below `threshold`."""
    worst = sorted(noise, key=lambda n: n.noise_to_signal, reverse=True)[:3]
    section = {
        "threshold": threshold,
        "emulator_vs_onnxruntime_cosine": emulator_cos,
        "one_rounding_vs_onnxruntime_cosine": one_rounding_cos,
        "step": 1.0 / dtype.scale,
        "noisiest_layers": [{**asdict(n), "noise_to_signal": n.noise_to_signal} for n in worst],
        "warning": None,
    }
    if emulator_cos >= threshold:
        return section
    if one_rounding_cos >= threshold:
        cause = (f"Tensil rounds every product to {dtype.name}'s step 1/{dtype.scale} before adding it (a float "
                 f"computation rounding once per layer reaches {one_rounding_cos:.4f})")
    else:
        cause = (f"the values are small against {dtype.name}'s step 1/{dtype.scale} (even one rounding per layer "
                 f"gives only {one_rounding_cos:.4f})")
    where = "; ".join(f"{n.layer}: fan-in {n.fan_in}, rounding noise ~{n.rounding_noise_rms:.3g} vs outputs "
                      f"rms {n.output_rms:.3g}" for n in worst)
    section["warning"] = (
        f"emulator vs onnxruntime cosine {emulator_cos:.4f} is below {threshold}: {cause}. Noisiest layers: {where}. "
        "What helps: activations of several units rather than a few steps (normalise inputs to unit std, keep "
        "BatchNorm, avoid tiny weight scales, e.g. trained rather than random weights), smaller fan-in per layer; "
        "check the result on the task (e.g. few-shot accuracy), which often tolerates it"
    )
    return section
