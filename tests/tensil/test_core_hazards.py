"""Every hazard rule of tensil.hazards rejects its pattern; a clean program passes."""

from __future__ import annotations

import pytest

from tensil.arch import load_arch
from tensil.hazards import HazardError, check_program
from tensil.isa import Configure, DataFlow, DataMove, LoadWeight, MatMul, NoOp, Simd, SimdOp

ARCH = load_arch("custom_perf")  # local 8192, acc 2048, DRAM 2^20, A=12, 1 SIMD register

CLEAN = [
    DataMove(DataFlow.DRAM1_TO_LOCAL, 0, 0, 0, 0, 12),
    DataMove(DataFlow.DRAM0_TO_LOCAL, 100, 0, 0, 0, 63),
    LoadWeight(1, 0, 11),
    LoadWeight(0, 0, 0),
    MatMul(100, 0, 0, 0, 63),
    MatMul(0, 0, 64, 0, 7, zeroes=True, accumulate=True),
    Simd(SimdOp.ZERO, dest=1),
    Simd(SimdOp.MAX, left=0, right=1, read=True, write=True, read_addr=5, write_addr=5),
    Simd(SimdOp.MOVE, left=0, right=0, dest=1, read=True, read_addr=3),
    Simd(SimdOp.MULTIPLY, left=0, right=1, dest=1, read=True, read_addr=4),
    Simd(SimdOp.ADD, left=0, right=1, read=True, write=True, accumulate=True, read_addr=4, write_addr=9),
    Simd(SimdOp.MOVE, left=1, right=1, write=True, write_addr=2),  # unary on a register: both sources R1
    DataMove(DataFlow.ACC_TO_LOCAL, 200, 0, 0, 0, 63),
    DataMove(DataFlow.LOCAL_TO_ACC_ACCUMULATE, 200, 0, 100, 1, 10),
    DataMove(DataFlow.LOCAL_TO_DRAM0, 200, 0, 1000, 0, 63),
    NoOp(),
]


def test_clean_program_passes():
    check_program(CLEAN, ARCH)


@pytest.mark.parametrize(
    "instr,rule",
    [
        (Configure(0, 0x100), "opcode"),
        (MatMul(0, 0, 0, 0, 1 << 13), "encoding"),  # size bits 53-55 (RTL facts new hazard)
        (DataMove(DataFlow.DRAM0_TO_LOCAL, 0, 0, 1 << 20, 0, 0), "encoding"),
        (DataMove(0x5, 0, 0, 0, 0, 0), "encoding"),  # invalid kinds are silently skipped by the RTL (hazard 5)
        (MatMul(8190, 1, 0, 0, 3), "local-range"),
        (MatMul(0, 0, 2040, 0, 8), "acc-range"),
        (DataMove(DataFlow.LOCAL_TO_ACC, 0, 0, 2047, 1, 1), "acc-range"),
        (DataMove(DataFlow.DRAM1_TO_LOCAL, 0, 0, (1 << 20) - 4, 1, 2), "dram1-range"),
        (DataMove(DataFlow.DRAM0_TO_LOCAL, 8000, 0, 0, 0, 191), "driver-probe"),  # ends at local 8191
        (DataMove(DataFlow.LOCAL_TO_DRAM0, 0, 0, (1 << 20) - 3, 0, 1), "driver-probe"),
        (LoadWeight(0, 0, 13), "load-weight-size"),
        (LoadWeight(8191 - 12, 0, 12), "driver-probe"),
        (Simd(SimdOp.MAX, left=0, right=1, write=True, write_addr=1), "simd-stall"),  # hazard 1
        (Simd(SimdOp.MOVE, left=1, right=0, write=True), "simd-stall"),  # isUnary bug (H1b)
        (Simd(SimdOp.ADD, left=0, right=1, dest=1), "simd-stall"),  # H1f
        (Simd(SimdOp.MOVE, left=1, right=1, dest=1, read=True), "simd-stall"),  # hazard 2
        (Simd(SimdOp.ZERO, dest=1, read=True), "simd-stall"),
        (Simd(SimdOp.NOOP, read=True), "simd-stall"),  # hazard 3
        (Simd(SimdOp.NOOP, write=True), "simd-stall"),
        (Simd(SimdOp.MAX, left=0, right=1, dest=1, read=True, write=True), "simd-dest-write"),  # hazard 4
        (Simd(SimdOp.NOOP, dest=1), "simd-noop-dest"),
        (Simd(SimdOp.ZERO, dest=1, accumulate=True), "simd-accumulate"),
        (Simd(SimdOp.MOVE, left=0, right=0, read=True, write=True, write_addr=2048), "simd-address"),
        (Simd(SimdOp.MOVE, left=0, right=0, read=True, write=True, read_addr=5000), "simd-address"),
    ],
)
def test_each_rule_rejects_its_pattern(instr, rule):
    program = CLEAN[:3] + [instr] + CLEAN[3:]
    with pytest.raises(HazardError, match=rf"instruction 3 \(.*\) breaks rule {rule}") as e:
        check_program(program, ARCH)
    assert e.value.index == 3 and e.value.rule == rule


def test_register_and_stride_depths_come_from_the_arch():
    narrow = load_arch("custom_perf").__class__(**{**ARCH.to_json_dict(), "stride0_depth": 5})
    with pytest.raises(HazardError, match="rule stride"):
        check_program([MatMul(0, 5, 0, 0, 0)], narrow)
    with pytest.raises(HazardError, match="rule simd-register|rule encoding"):
        check_program([Simd(SimdOp.MOVE, left=2, right=2, dest=1)], ARCH)


def test_probe_reservation_can_be_disabled():
    check_program([DataMove(DataFlow.DRAM0_TO_LOCAL, 8191, 0, 0, 0, 0)], ARCH, reserve_driver_probe=False)
