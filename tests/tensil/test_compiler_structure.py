"""The compiler's passes as a reader relies on them: passes return new networks and leave their
input alone, the IR and the memory plan are checked between passes, and a broken one is caught."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
from onnx import helper

from compiler_helpers import make_model, weights
from tensil.arch import load_arch
from tensil.compiler.errors import CompileError
from tensil.compiler.frontend import graph_from_model
from tensil.compiler.graph import Layer
from tensil.compiler.passes import fuse, pack_taps_into_lanes, split_depthwise
from tensil.compiler.plan import LayerPlan, WeightMode, plan_memory, verify_plan

ARCH = load_arch("custom_perf")


def network():
    """RGB input (tap packing applies), a pointwise conv, a depthwise conv, a pointwise conv."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "W0", "B0"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["a", "W1", "B1"], ["b"], kernel_shape=[1, 1]),
             helper.make_node("Relu", ["b"], ["br"]),
             helper.make_node("Conv", ["br", "W2", "B2"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=24),
             helper.make_node("Conv", ["c", "W3", "B3"], ["y"], kernel_shape=[1, 1])]
    inits = {"W0": weights(rng, 8, 3, 3, 3), "B0": weights(rng, 8, scale=0.1),
             "W1": weights(rng, 24, 8, 1, 1), "B1": weights(rng, 24, scale=0.1),
             "W2": weights(rng, 24, 1, 3, 3), "B2": weights(rng, 24, scale=0.1),
             "W3": weights(rng, 10, 24, 1, 1), "B3": weights(rng, 10, scale=0.1)}
    return fuse(graph_from_model(make_model(nodes, [("x", [1, 3, 8, 8])], [("y", None)], inits)))


def snapshot(net) -> list:
    return [(s.name, s.output, [(t.input, t.weight.tobytes(), t.strides, t.pads) for t in s.terms])
            for s in net.steps if isinstance(s, Layer)]


def test_passes_return_new_networks_and_leave_their_input_alone():
    net = network()
    before = snapshot(net)
    split = split_depthwise(net, ARCH.array_size)
    assert snapshot(net) == before and len(split.steps) > len(net.steps)  # the depthwise layer was cut
    split_before = snapshot(split)
    packed = pack_taps_into_lanes(split, ARCH.array_size)
    assert snapshot(split) == split_before and any(s.copy for s in packed.steps if isinstance(s, Layer))
    packed.verify("test")


def test_network_verifier_catches_inconsistent_steps():
    net = network()
    broken = copy.copy(net)
    layer = broken.steps[1]
    bad_term = dataclasses.replace(layer.terms[0], weight=layer.terms[0].weight[:, :3])
    broken.steps = [broken.steps[0], dataclasses.replace(layer, terms=[bad_term]), *broken.steps[2:]]
    with pytest.raises(CompileError, match="internal error after test: .* do not fit input"):
        broken.verify("test")
    twice = copy.copy(net)
    twice.steps = [net.steps[0], *net.steps]
    with pytest.raises(CompileError, match="already computed"):
        twice.verify("test")
    reordered = copy.copy(net)
    reordered.steps = list(reversed(net.steps))
    with pytest.raises(CompileError, match="reads .* before it is computed"):
        reordered.verify("test")


def test_the_plan_is_typed_and_its_verifier_catches_overlaps():
    net = network()
    plan = plan_memory(net, ARCH)
    verify_plan(plan, net, ARCH)
    assert len(plan.steps) == len(net.steps)
    assert all(isinstance(s, LayerPlan) and isinstance(s.mode, WeightMode) for s in plan.steps)
    first, second = (plan.buffers[s.output] for s in net.steps[:2])  # live together at step 1
    second.base = first.base
    with pytest.raises(CompileError, match="share local memory while both live"):
        verify_plan(plan, net, ARCH)
    plan = plan_memory(net, ARCH)
    plan.acc_peak = ARCH.accumulator_depth + 1
    with pytest.raises(CompileError, match="accumulators"):
        verify_plan(plan, net, ARCH)
    plan = plan_memory(net, ARCH)
    plan.steps[1] = dataclasses.replace(plan.steps[1], w_base=plan.buffers[net.steps[1].terms[0].input].base)
    with pytest.raises(CompileError, match="scratch of .* overlaps"):
        verify_plan(plan, net, ARCH)
