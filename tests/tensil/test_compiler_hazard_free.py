"""Property test: random small networks (convolutions of 1 to 40 channels, 1x1 to 8x8 outputs,
strides, pooling, residual adds, global pooling, Gemm heads) compile to programs that

* pass every hardware rule of `tensil.hazards`, and, checked independently of it, never
  accumulate into the accumulator the previous MatMul wrote last (the RTL loses such updates);
* emulate equal, bit for bit, to the fixed-point reference (`fixed_reference.py`);
* emulate equal to onnxruntime's float result within a fixed-point error bound propagated
  through the network (input and weight quantization, one rounding per product, pooling).
"""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx import helper

from compiler_helpers import make_model
from fixed_reference import DT, q, reference, run_steps
from tensil.arch import from_dict, load_arch
from tensil.compiler.errors import CompileError
from tensil.compiler.frontend import graph_from_model
from tensil.compiler.graph import GlobalPool
from tensil.compiler.pipeline import compile_network
from tensil.emulator import ModelRunner
from tensil.hazards import check_program
from tensil.isa import MatMul

ARCH = load_arch("custom_perf")
TINY = from_dict({**ARCH.to_json_dict(), "local_depth": 320, "accumulator_depth": 64, "dram0_depth": 1 << 16,
                  "dram1_depth": 1 << 16}, name="tiny")  # spills, bands of one row, weight groups
LSB = 1.0 / DT.scale


@st.composite
def networks(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    shape = in_shape = (draw(st.integers(1, 40)), draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    nodes, inits = [], {}
    cur = "x"

    def conv(inp: str, c_in: int, c_out: int, k: int, stride: int, pad: int, tag: str) -> str:
        inits[f"W{tag}"] = (rng.standard_normal((c_out, c_in, k, k)) * 0.8 / math.sqrt(c_in * k * k)).astype(np.float32)
        inits[f"B{tag}"] = (rng.standard_normal(c_out) * 0.2).astype(np.float32)
        nodes.append(helper.make_node("Conv", [inp, f"W{tag}", f"B{tag}"], [f"c{tag}"], kernel_shape=[k, k],
                                      strides=[stride, stride], pads=[pad] * 4))
        return f"c{tag}"

    for li in range(draw(st.integers(1, 3))):
        c, h, w = shape
        k = draw(st.sampled_from([1, 3]))
        pad = 1 if k == 3 and (min(h, w) < 3 or draw(st.booleans())) else 0
        stride = draw(st.sampled_from([1, 2]))
        co = draw(st.integers(1, 40))
        cur = conv(cur, c, co, k, stride, pad, str(li))
        shape = (co, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1)
        if draw(st.booleans()):  # residual block: x + conv3x3(x), then ReLU
            branch = conv(cur, co, co, 3, 1, 1, f"{li}r")
            nodes.append(helper.make_node("Add", [cur, branch], [f"s{li}"]))
            cur = f"s{li}"
        if draw(st.booleans()):
            nodes.append(helper.make_node("Relu", [cur], [f"a{li}"]))
            cur = f"a{li}"
        if min(shape[1:]) >= 2 and draw(st.booleans()):
            nodes.append(helper.make_node("MaxPool", [cur], [f"p{li}"], kernel_shape=[2, 2], strides=[2, 2]))
            cur = f"p{li}"
            shape = (shape[0], shape[1] // 2, shape[2] // 2)
    head = draw(st.sampled_from(["none", "gap", "gemm"]))
    if head != "none":
        nodes.append(helper.make_node("GlobalAveragePool", [cur], ["g"]))
        cur = "g"
    if head == "gemm":
        nodes.append(helper.make_node("Flatten", [cur], ["f"]))
        f_out = draw(st.integers(1, 40))
        inits["Wg"] = (rng.standard_normal((f_out, shape[0])) * 0.8 / math.sqrt(shape[0])).astype(np.float32)
        inits["Bg"] = (rng.standard_normal(f_out) * 0.2).astype(np.float32)
        nodes.append(helper.make_node("Gemm", ["f", "Wg", "Bg"], ["h"], transB=1))
        cur = "h"
    nodes[-1].output[0] = "y"
    model = make_model(nodes, [("x", [1, *in_shape])], [("y", None)], inits)
    return model, rng.uniform(-2, 2, (1, *in_shape)).astype(np.float32)


def no_back_to_back_accumulation(instrs) -> bool:
    """Independent of tensil.hazards: no accumulating MatMul starts at the accumulator the
    previous MatMul wrote last (the compiler never relies on what clears the hazard)."""
    last = None
    for ins in instrs:
        if isinstance(ins, MatMul):
            if ins.accumulate and ins.acc_addr == last:
                return False
            last = ins.acc_addr + (ins.size << ins.acc_stride)
    return True


def error_bound(compiled, env: dict) -> float:
    """Worst-case |fixed - float| at the output, propagated step by step: 0.5 LSB per input
    value, per weight and per rounded product, weight errors times the largest input, and
    errors through weights by the weights' absolute row sums (ReLU and max pooling do not grow
    them). `env` holds the raw fixed-point activations (for magnitudes)."""
    net = compiled.network
    err = {net.inputs[0]: 0.5 * LSB}
    for step in net.steps:
        if isinstance(step, GlobalPool):
            hw = int(np.prod(env[step.input].shape[1:]))
            m = min(max(math.ceil(math.log2(hw)), 0), DT.frac_bits)
            corr = 2.0 ** m / hw
            corr_q = float(q(corr)) * LSB
            total = hw * (2.0 ** -m * err[step.input] + 0.5 * LSB)
            biggest = np.abs(env[step.input]).max() * LSB * hw * 2.0 ** -m
            err[step.output] = corr_q * total + biggest * abs(corr - corr_q) + 0.5 * LSB
            continue
        per_channel = 0.5 * LSB + np.zeros(step.out_channels)
        for term in step.terms:
            w = term.weight.astype(np.float64)
            wq = q(w) * LSB
            x_max = np.abs(env[term.input]).max() * LSB + err[term.input]
            per_channel += (np.abs(wq).reshape(len(w), -1).sum(1) * err[term.input]
                            + np.abs(w - wq).reshape(len(w), -1).sum(1) * x_max
                            + np.count_nonzero(wq.reshape(len(w), -1), axis=1) * 0.5 * LSB)
        err[step.output] = float(per_channel.max())
    return err[net.outputs[0]]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(networks(), st.sampled_from([ARCH, TINY]))
def test_random_networks_are_hazard_free_and_exact(case, arch):
    model, x = case
    graph = graph_from_model(model)
    try:
        compiled = compile_network(graph, arch, "m")  # runs the hazard check itself
    except CompileError as e:  # the tiny arch cannot hold every random layer
        assert arch is TINY and "does not fit" in str(e)
        return
    instrs = compiled.lowered.instrs
    check_program(instrs, arch)
    assert no_back_to_back_accumulation(instrs)

    runner = ModelRunner(compiled.loaded())
    ours = runner.run({"x": x}, {"y": graph.io_shapes["y"]})["y"]
    env = run_steps(compiled, x)
    assert np.array_equal(ours, reference(compiled, x).reshape(ours.shape).astype(np.float32))

    assume(runner.machine.counters.saturations == 0)  # the bound holds without saturation
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"x": x})[0].reshape(ours.shape)
    assert np.abs(ours.astype(np.float64) - ref).max() <= error_bound(compiled, env) + 1e-6
