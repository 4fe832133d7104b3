"""Property tests: the vectorised emulator equals the scalar reference bit for bit on random
short programs (random data, strides, wrap-around, duplicate targets, periodic SIMD blocks)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tensil.arch import Arch
from tensil.emulator import EmulatorError, Machine, build_plan
from tensil.hazards import HazardError, check_sequence, simd_stall_reason
from tensil.emulator_ref import RefMachine, RefStall
from tensil.isa import DataFlow, DataMove, LoadWeight, MatMul, Simd, SimdOp

DRAM_VECTORS = 64
# raise for a long soak run, e.g. TENSIL_PROP_EXAMPLES=2000
EXAMPLES = int(os.environ.get("TENSIL_PROP_EXAMPLES", "80"))


def small_arch(data_type: str, regs: int) -> Arch:
    return Arch(data_type=data_type, array_size=4, dram0_depth=DRAM_VECTORS, dram1_depth=DRAM_VECTORS,
                local_depth=64, accumulator_depth=32, simd_registers_depth=regs, stride0_depth=4,
                stride1_depth=4, number_of_threads=1, thread_queue_depth=8)  # fmt: skip


def random_raw(rng: np.random.Generator, bits: int, shape) -> np.ndarray:
    """Mix of small values on a coarse grid (many rounding ties), extremes (saturation), anything."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    small = np.clip(rng.integers(-64, 65, shape) * 8, lo, hi)
    extreme = rng.choice([lo, hi, lo + 1, hi - 1, 0], shape)
    anything = rng.integers(lo, hi + 1, shape)
    pick = rng.integers(0, 3, shape)
    return np.where(pick == 0, small, np.where(pick == 1, extreme, anything)).astype(np.int64)


def valid_simd(regs: int):
    def build(op, left, right, dest, write, accumulate, ra, wa):
        op = SimdOp(op)
        uses_input = left == 0 or right == 0
        read = op not in (SimdOp.ZERO, SimdOp.NOOP) and uses_input
        if op == SimdOp.NOOP:
            write = accumulate = False
        return Simd(op, left, right, dest, read, write, accumulate, ra, wa)

    reg = st.integers(0, regs)
    return st.builds(build, st.sampled_from(list(SimdOp)), reg, reg, reg, st.booleans(), st.booleans(),
                     st.integers(0, 40), st.integers(0, 40))  # fmt: skip


def instructions(regs: int):
    addr = st.integers(0, 70)  # beyond local (64) and acc (32) depth: exercises wrap-around
    code = st.integers(0, 3)
    size = st.integers(0, 6)
    dram_flow = st.sampled_from([DataFlow.DRAM0_TO_LOCAL, DataFlow.LOCAL_TO_DRAM0, DataFlow.DRAM1_TO_LOCAL,
                                 DataFlow.LOCAL_TO_DRAM1])  # fmt: skip
    acc_flow = st.sampled_from([DataFlow.ACC_TO_LOCAL, DataFlow.LOCAL_TO_ACC, DataFlow.LOCAL_TO_ACC_ACCUMULATE])
    one = st.one_of(
        st.builds(MatMul, addr, code, addr, code, size, st.booleans(), st.booleans()),
        st.builds(LoadWeight, addr, code, st.integers(0, 6), st.booleans()),
        st.builds(DataMove, dram_flow, addr, code, st.integers(0, 20), st.integers(0, 1), st.integers(0, 6)),
        st.builds(DataMove, acc_flow, addr, code, addr, code, size),
        valid_simd(regs),
    )
    # repeated blocks make runs the planner batches (same kind, periodic SIMD)
    periodic = st.tuples(st.lists(valid_simd(regs), min_size=1, max_size=4), st.integers(2, 6),
                         st.lists(st.integers(0, 40), min_size=48, max_size=48)).map(_repeat_simd)  # fmt: skip
    return st.lists(st.one_of(one.map(lambda i: [i]), periodic, st.lists(one, min_size=2, max_size=5)),
                    max_size=10).map(lambda blocks: [i for b in blocks for i in b])  # fmt: skip


def _repeat_simd(args):
    pattern, q, addrs = args
    out = []
    it = iter(addrs * 4)
    for _ in range(q):
        for s in pattern:
            out.append(Simd(s.op, s.left, s.right, s.dest, s.read, s.write, s.accumulate, next(it), next(it)))
    return out


def _state(m) -> dict:
    return {k: np.asarray(getattr(m, k), dtype=np.int64) for k in ("local", "acc")}


@pytest.mark.parametrize("data_type,regs", [("FP16BP8", 1), ("FP8BP4", 2), ("FP16BP8", 3), ("FP18BP10", 1)])
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_vectorised_equals_reference(data_type, regs, data):
    arch = small_arch(data_type, regs)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    A = arch.array_size
    init = {
        name: random_raw(rng, arch.dtype.bits, (n, A))
        for name, n in (("local", 64), ("acc", 32), ("dram0", 24), ("dram1", 24))
    }
    program = data.draw(instructions(regs))

    ref = RefMachine(arch, DRAM_VECTORS, DRAM_VECTORS)
    fast = Machine(arch)
    for name in ("local", "acc"):
        setattr(ref, name, init[name].tolist())
        getattr(fast, name)[:] = init[name]
    for name in ("dram0", "dram1"):
        getattr(ref, name)[:24] = init[name].tolist()
        getattr(fast, name).write(np.arange(24), init[name])

    ref.run(program)
    try:
        check_sequence(program, arch)
    except HazardError:  # refused by default; the arithmetic is still compared below
        with pytest.raises(EmulatorError, match="breaks rule acc-"):
            Machine(arch).execute(program)
    fast.execute(program, refuse_timing_hazards=False)

    assert np.array_equal(np.array(ref.local), fast.local)
    assert np.array_equal(np.array(ref.acc), fast.acc)
    assert np.array_equal(np.array(ref.dram0), fast.dram0.read(np.arange(DRAM_VECTORS)))
    assert np.array_equal(np.array(ref.dram1), fast.dram1.read(np.arange(DRAM_VECTORS)))
    assert np.array_equal(np.array(ref.array), fast.weights)
    assert np.array_equal(np.array(ref.regs[1:]), fast.registers[:regs])


@settings(max_examples=200, deadline=None)
@given(valid_simd(1).flatmap(lambda s: st.just(s)), st.booleans())
def test_stall_rules_agree_with_reference(simd, flip_read):
    s = Simd(simd.op, simd.left, simd.right, simd.dest, simd.read != flip_read, simd.write, simd.accumulate)
    arch = small_arch("FP16BP8", 1)
    ref = RefMachine(arch)
    try:
        ref.simd(s)
        ref_stalls = False
    except RefStall:
        ref_stalls = True
    assert (simd_stall_reason(s) is not None) == ref_stalls
    if ref_stalls:
        with pytest.raises(EmulatorError, match="stall"):
            build_plan([s], arch)
