"""The batch emulator (`tensil.batch`) equals the one-image emulator bit for bit: on random
programs with different data per image (saturation, ties, per-image weights, wrap-around, five
data types, one of them too wide for the float path) and
on compiled ResNet-9/12 backbones with random and saturating inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_core_emulator_prop import EXAMPLES, instructions, random_raw, small_arch
from export.onnx_build import to_tensil_onnx
from tensil.arch import load_arch
from tensil.batch import BatchMachine, BatchRunner, DramNeeds
from tensil.compiler.frontend import graph_from_model
from tensil.compiler.pipeline import compile_network
from tensil.emulator import Counters, Machine, ModelRunner, build_plan
from tensil.isa import LoadWeight, MatMul
from tensil.tmodel import ModelError
from train.backbones import BackboneSpec, build_backbone

BATCH = 3
DRAM_INIT = 24


@pytest.mark.parametrize("data_type,regs,same_local", [("FP16BP8", 1, False), ("FP16BP8", 2, True),
                                                       ("FP8BP4", 1, False), ("FP18BP10", 1, True),
                                                       ("FP32BP16", 1, True)])  # past FAST_MAX_BITS: exact chain only
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_batch_equals_one_image_at_a_time_on_random_programs(data_type, regs, same_local, data):
    """Each image starts from its own random memories (or the same local memory, so that the
    weights loaded from it are shared and the row-vectorised kernel runs)."""
    arch = small_arch(data_type, regs)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    A = arch.array_size
    program = data.draw(instructions(regs))
    plan = build_plan(program, arch, refuse_timing_hazards=False)
    shared_local = random_raw(rng, arch.dtype.bits, (arch.local_depth, A))
    batch = BatchMachine(arch, BATCH, DramNeeds(arch.dram0_depth, arch.dram1_depth, writes_dram1=True))
    singles = []
    for b in range(BATCH):
        m = Machine(arch)
        m.local[:] = shared_local if same_local else random_raw(rng, arch.dtype.bits, (arch.local_depth, A))
        m.acc[:] = random_raw(rng, arch.dtype.bits, (arch.accumulator_depth, A))
        for dram in (m.dram0, m.dram1):
            dram.write(np.arange(DRAM_INIT), random_raw(rng, arch.dtype.bits, (DRAM_INIT, A)))
        batch.local[..., b], batch.acc[..., b] = m.local, m.acc
        batch.dram0.data[..., b] = m.dram0.read(np.arange(arch.dram0_depth))
        batch.dram1.data[..., b] = m.dram1.read(np.arange(arch.dram1_depth))
        m.execute(plan)
        singles.append(m)
    batch.execute(plan)
    for b, m in enumerate(singles):
        assert np.array_equal(batch.local[..., b], m.local)
        assert np.array_equal(batch.acc[..., b], m.acc)
        assert np.array_equal(batch.weights[..., b], m.weights)
        assert np.array_equal(batch.registers[..., b], m.registers)
        assert np.array_equal(batch.dram0.data[..., b], m.dram0.read(np.arange(arch.dram0_depth)))
        assert np.array_equal(batch.dram1.data[..., b], m.dram1.read(np.arange(arch.dram1_depth)))
    for name in ("mac_saturations", "accumulate_saturations", "simd_saturations"):
        assert getattr(batch.counters, name) == sum(getattr(m.counters, name) for m in singles)


def test_saturating_matmul_takes_the_exact_path():
    """A MatMul chain that saturates mid-way and comes back: the float shortcut would be wrong."""
    arch = small_arch("FP16BP8", 1)
    program = [LoadWeight(0, 0, arch.array_size, False), MatMul(10, 0, 0, 0, 0, False, False)]
    plan = build_plan(program, arch)
    batch = BatchMachine(arch, 2, DramNeeds.of(plan))
    singles = []
    for b, (big, back) in enumerate([(32000, -32000), (3, -3)]):
        m = Machine(arch)
        m.local[0] = [256, 0, 0, 0]  # bias row: 1.0 on lane 0
        m.local[1] = [256 * 127, 0, 0, 0]  # weights of input lane 0
        m.local[2] = [256 * 127, 0, 0, 0]  # and lane 1
        m.local[10] = [big, back, 0, 0]
        batch.local[..., b] = m.local
        m.execute(plan)
        singles.append(m)
    batch.execute(plan)
    assert singles[0].counters.mac_saturations > 0
    for b, m in enumerate(singles):
        assert np.array_equal(batch.acc[..., b], m.acc)
    assert batch.counters.mac_saturations == sum(m.counters.mac_saturations for m in singles)


@pytest.mark.parametrize("shared_weights", [True, False])
def test_lanes_with_zero_weights_are_skipped_exactly(shared_weights):
    """Input lane 1 and output lane 2 have no nonzero weight (the kernel skips them: they add
    exactly 0, or hold the bias); the other lanes must still match, with accumulation over
    several vectors, zero vectors, and per-image or shared weights."""
    arch = small_arch("FP16BP8", 1)
    A = arch.array_size
    program = [LoadWeight(0, 0, A, False), MatMul(10, 0, 0, 0, 5, False, False), MatMul(16, 0, 0, 0, 5, True, False),
               MatMul(16, 0, 0, 0, 1, True, True)]
    plan = build_plan(program, arch)
    rng = np.random.default_rng(3)
    batch = BatchMachine(arch, 3, DramNeeds.of(plan))
    weights = rng.integers(-300, 300, (A + 1, A))
    singles = []
    for b in range(3):
        m = Machine(arch)
        w = weights if shared_weights else rng.integers(-300, 300, (A + 1, A))
        w[2] = 0  # input lane 1 (row k+1 = 2)
        w[1:, 2] = 0  # output lane 2 (its bias stays)
        m.local[: A + 1] = w
        m.local[10:22] = rng.integers(-2000, 2000, (12, A))
        batch.local[..., b] = m.local
        m.execute(plan)
        singles.append(m)
    batch.execute(plan)
    for b, m in enumerate(singles):
        assert np.array_equal(batch.acc[..., b], m.acc)
    assert np.any(batch.acc[:6, 2] != 0)  # the bias-only lane was written


def test_machine_reset_clears_every_memory():
    """A reused batch machine starts each batch like a new one (BatchRunner relies on it)."""
    arch = small_arch("FP16BP8", 2)
    m = BatchMachine(arch, 2, DramNeeds(8, 8, writes_dram1=True))
    for memory in (m.local, m.acc, m.weights, m.registers, m.dram0.data, m.dram1.data):
        memory[...] = 7
    m.config[1] = 3
    m.counters.count("MatMul")
    m.reset()
    for memory in (m.local, m.acc, m.weights, m.registers, m.dram0.data, m.dram1.data):
        assert not memory.any()
    assert m.config == {} and m.counters.to_json_dict() == Counters().to_json_dict()


def compiled(spec: BackboneSpec):
    torch.manual_seed(0)
    model = build_backbone(spec).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    onnx_model = to_tensil_onnx(model, (1, 3, spec.image_size, spec.image_size), 10, "input", "Output")
    graph = graph_from_model(onnx_model)
    return compile_network(graph, load_arch("custom_perf"), "backbone").loaded(), graph.io_shapes["Output"]


@pytest.mark.parametrize("spec", [BackboneSpec("resnet9", 8, True, 3, 16), BackboneSpec("resnet12", 8, False, 3, 16)])
def test_batch_runner_equals_model_runner_on_backbones(spec):
    loaded, out_shape = compiled(spec)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 1, 3, spec.image_size, spec.image_size)).astype(np.float32)
    x[3:] *= 60.0  # inputs past the fixed-point range (clipped on input) and saturating MACs
    single = ModelRunner(loaded)
    ref = np.stack([single.run({"input": xi}, {"Output": out_shape})["Output"] for xi in x])
    flat = np.stack([single.run({"input": xi})["Output"] for xi in x[:2]])
    batch = BatchRunner(loaded, batch_size=2)  # batches of 2, 2 and 1
    got = batch.run({"input": x}, {"Output": out_shape})["Output"]
    assert got.shape == ref.shape and np.array_equal(got, ref)
    assert np.array_equal(BatchRunner(loaded).run({"input": x[:2]})["Output"], flat)
    singles, overflows = Counters(), 0
    for xi in x:
        fresh = ModelRunner(loaded)
        fresh.run({"input": xi})
        overflows += fresh.input_overflows
        for name in ("mac_saturations", "accumulate_saturations", "simd_saturations"):
            setattr(singles, name, getattr(singles, name) + getattr(fresh.machine.counters, name))
        for kind, n in fresh.machine.counters.instructions.items():
            singles.count(kind, n)
    assert batch.counters.to_json_dict() == singles.to_json_dict()
    assert batch.counters.saturations > 0  # the exact path ran
    assert batch.input_overflows == overflows > 0


def test_batch_runner_checks_its_inputs():
    loaded, _ = compiled(BackboneSpec("resnet9", 8, True, 3, 16))
    runner = BatchRunner(loaded)
    with pytest.raises(ModelError, match="missing input"):
        runner.run({})
    with pytest.raises(ModelError, match="packs into"):
        runner.run({"input": np.zeros((2, 1, 3, 8, 8), np.float32)})
