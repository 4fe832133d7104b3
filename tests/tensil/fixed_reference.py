"""A numpy reference of the fixed-point semantics the compiler promises (shared by the
compiler's property tests):

* input quantized like the host packing (round half even, saturate); constants round half up;
* per weight tile in the compiler's order (term, kernel tap, input tile): y = bias (first
  tile only) then y = mac(x[k], W[k], y) for lanes k = 0..A-1, each step rounded (RNE) and
  saturated; tiles after the first add into the accumulator with a saturating add -- except
  where a band of the output is a single vector: the RTL loses back-to-back accumulations into
  one address, so even and odd tiles go to two accumulators that are added at the end;
* max pooling on raw values, then the activation (relu = max(x, 0), leaky = max(x, mul(x, a)));
* global average pooling = saturating sum of mul(x, 2^-m) in pixel order (a single channel
  tile: even and odd pixels summed apart, then added, for the same reason), then mul by the
  quantized correction 2^m / (H*W).
"""

from __future__ import annotations

import math

import numpy as np

from tensil import fixed
from tensil.arch import load_arch
from tensil.compiler.graph import GlobalPool

DT = load_arch("custom_perf").dtype
A = load_arch("custom_perf").array_size


def q(x) -> np.ndarray:
    return fixed.quantize(x, DT, rounding="half_up")[0]


def saturating_sum(ys: list, alternate: bool) -> np.ndarray:
    """Accumulate in order; `alternate`: even and odd terms in two accumulators, then added."""
    if alternate and len(ys) > 1:
        return fixed.add(saturating_sum(ys[0::2], False), saturating_sum(ys[1::2], False), DT)
    acc = ys[0]
    for y in ys[1:]:
        acc = fixed.add(acc, y, DT)
    return acc


def ref_layer(layer, env: dict, band_rows: int) -> np.ndarray:
    co = layer.out_channels
    ys = []
    first = True
    for term in layer.terms:
        x = env[term.input]  # (C, H, W) raw
        c, h, w = x.shape
        _, ci, kh, kw = term.weight.shape
        (sh, sw), (pt, pl, pb, pr) = term.strides, term.pads
        xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr)))
        ho, wo = (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1
        wq = q(term.weight)  # (Co, Ci, kh, kw)
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw].reshape(ci, -1).T  # (P, Ci)
                for c0 in range(0, ci, A):
                    y = np.broadcast_to(q(layer.bias) if first else np.zeros(co, np.int64), (patch.shape[0], co))
                    y = np.array(y)
                    for k in range(c0, min(ci, c0 + A)):
                        y = fixed.mac(patch[:, k:k + 1], wq[:, k, i, j][None, :], y, DT)
                    ys.append(y)
                    first = False
    one_vector_bands = not layer.pool and wo == 1 and min(ho, band_rows) == 1
    out = saturating_sum(ys, one_vector_bands).T.reshape(co, ho, wo)
    if layer.pool:
        _, (ph, pw), (psh, psw) = layer.pool
        h2, w2 = (ho - ph) // psh + 1, (wo - pw) // psw + 1
        pooled = None
        for i in range(ph):
            for j in range(pw):
                v = out[:, i:i + psh * (h2 - 1) + 1:psh, j:j + psw * (w2 - 1) + 1:psw]
                pooled = v if pooled is None else np.maximum(pooled, v)
        out = pooled
    if layer.act:
        if layer.act[0] == "relu":
            out = np.maximum(out, 0)
        elif layer.act[0] == "leaky":
            out = np.maximum(out, fixed.mul(out, q(layer.act[1]), DT))
    return out


def ref_gap(x: np.ndarray) -> np.ndarray:
    c, h, w = x.shape
    m = min(max(math.ceil(math.log2(h * w)), 0), DT.frac_bits)
    wq, corr = q(2.0 ** -m), q((2.0 ** m) / (h * w))
    acc = saturating_sum([fixed.mul(x[:, y, xx], wq, DT) for y in range(h) for xx in range(w)], c <= A)
    if corr != DT.scale:
        acc = fixed.mul(acc, corr, DT)
    return acc.reshape(c, 1, 1)


def run_steps(compiled, x_float: np.ndarray) -> dict:
    """Raw fixed-point values of every tensor of the compiled network for one input."""
    network = compiled.network
    band_rows = {g.name: g.info.get("band_rows", 1) for g in compiled.lowered.groups}
    name = network.inputs[0]
    env = {name: fixed.quantize(x_float.reshape(network.shapes[name]), DT, rounding="half_even")[0]}
    for step in network.steps:
        if isinstance(step, GlobalPool):
            env[step.output] = ref_gap(env[step.input])
        else:
            env[step.output] = ref_layer(step, env, band_rows[step.name])
    return env


def reference(compiled, x_float: np.ndarray) -> np.ndarray:
    """The compiled network's float output under the promised fixed-point semantics."""
    return fixed.dequantize(run_steps(compiled, x_float)[compiled.network.outputs[0]], DT)
