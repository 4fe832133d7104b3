"""Cycle estimators: Tensil's table (§6.3) by hand, the hardware model against the RTL
measurements on the simulated RTL (docs/tensil.md), monotonicity, groups and MAC efficiency."""

from __future__ import annotations

import pytest

from tensil.arch import load_arch
from tensil.estimator import EstimateError, Group, HardwareParams, estimate
from tensil.isa import DataFlow, DataMove, LoadWeight, MatMul, NoOp, Simd, SimdOp

ARCH = load_arch("custom_perf")
A = 12


def hw(prog, r_ns=20.0, b_ns=20.0, mhz=50.0):
    """Hardware cycles with r = b = 1 cycle at 50 MHz (20 ns), like the RTL runs."""
    return estimate(prog, ARCH, clocks_mhz=[mhz], params=HardwareParams(r_ns, b_ns)).hardware_cycles[mhz]


def test_tensil_model_by_hand():
    prog = [
        DataMove(DataFlow.DRAM1_TO_LOCAL, 0, 0, 0, 0, 12),  # 13
        MatMul(0, 0, 0, 0, 9),  # 10 + 2A = 34
        LoadWeight(0, 0, 12),  # 13
        MatMul(0, 0, 0, 0, 4),  # 5 + A = 17
        MatMul(0, 0, 0, 0, 4),  # 5
        Simd(SimdOp.ZERO, dest=1),  # 1
        NoOp(),  # 1
    ]
    e = estimate(prog, ARCH, macs=10 * 144)
    assert e.tensil_cycles == 13 + 34 + 13 + 17 + 5 + 1 + 1
    assert e.mac_efficiency == pytest.approx(1440 / (144 * 84))
    assert e.array_vectors == 20 and e.n_instructions == 7 and e.program_bytes == 56
    assert e.by_kind["MatMul"]["count"] == 3 and e.by_kind["MatMul"]["tensil_cycles"] == 56


@pytest.mark.parametrize(
    "prog,measured",
    [
        ([DataMove(DataFlow.DRAM0_TO_LOCAL, 0, 0, 0, 0, n - 1)], 3 * n + 7) for n in (1, 8, 64, 512)
    ] + [
        ([DataMove(DataFlow.LOCAL_TO_DRAM0, 0, 0, 0, 0, n - 1)], 3 * n + 6) for n in (1, 8, 64, 512)
    ] + [
        ([LoadWeight(0, 0, n - 1)], n + 2) for n in (1, 2, 4, 12, 13)
    ] + [
        ([MatMul(0, 0, 0, 0, n - 1)], n + 25) for n in (1, 16, 256)
    ] + [
        ([LoadWeight(0, 0, 12), MatMul(0, 0, 0, 0, n - 1)], n + 38) for n in (1, 16, 256)
    ] + [
        ([LoadWeight(0, 0, 12), MatMul(0, 0, 0, 0, n - 1), MatMul(0, 0, 0, 0, n - 1)], 2 * n + 38) for n in (1, 16)
    ] + [
        ([LoadWeight(0, 0, 11), LoadWeight(0, 0, 0), MatMul(0, 0, 0, 0, n - 1)] * g, g * (n + 37) + 1)
        for n, g in ((64, 8), (1, 8))
    ] + [
        ([Simd(SimdOp.MAX, 0, 1, 0, read=True, write=True)] * k, 4 * k + 2) for k in (1, 10, 100)
    ] + [
        ([Simd(SimdOp.MAX, 0, 1, 1, read=True)] * k, 2 * k + 3) for k in (1, 10, 100)
    ] + [
        ([DataMove(DataFlow.LOCAL_TO_ACC, 0, 0, 0, 0, 9)], 12),
        ([DataMove(DataFlow.ACC_TO_LOCAL, 0, 0, 0, 0, 9)], 13),
        ([DataMove(DataFlow.DRAM0_TO_LOCAL, 0, 0, 0, 1, 15)], 3 * 16 + 7),
        ([NoOp()] * 500, 500),
    ],
)  # fmt: skip
def test_hardware_model_reproduces_rtl_measurements(prog, measured):
    assert hw(prog) == measured


def test_hardware_model_latency_dependent_cases():
    # r = b = 30 cycles (600 ns at 50 MHz): strided read n = 4/16/64/256 -> 72/204/732/2844 (§3.1)
    for n, measured in ((4, 72), (16, 204), (64, 732), (256, 2844)):
        assert hw([DataMove(DataFlow.DRAM0_TO_LOCAL, 0, 0, 0, 1, n - 1)], 600, 600) == measured
    # write 16 then read 16 on DRAM0 = 167; the read on DRAM1 is not delayed
    w = DataMove(DataFlow.LOCAL_TO_DRAM0, 0, 0, 0, 0, 15)
    assert hw([w, DataMove(DataFlow.DRAM0_TO_LOCAL, 0, 0, 0, 0, 15)], 600, 600) == 167
    assert hw([w, DataMove(DataFlow.DRAM1_TO_LOCAL, 0, 0, 0, 0, 15)], 600, 600) < 167
    # DRAM latency in ns: more cycles at a faster clock, but less time
    prog = [DataMove(DataFlow.DRAM0_TO_LOCAL, 0, 0, 0, 0, 0)] * 10
    e = estimate(prog, ARCH, clocks_mhz=[50, 125])
    assert e.hardware_cycles[125] > e.hardware_cycles[50] and e.latency_ms[125] < e.latency_ms[50]


@pytest.mark.parametrize("make", [
    lambda n: [DataMove(DataFlow.DRAM0_TO_LOCAL, 0, 0, 0, 0, n - 1)],
    lambda n: [LoadWeight(0, 0, 12), MatMul(0, 0, 0, 0, n - 1)],
    lambda n: [Simd(SimdOp.MAX, 0, 1, 0, read=True, write=True)] * n,
    lambda n: [DataMove(DataFlow.LOCAL_TO_DRAM0, 0, 0, 0, 1, n - 1)],
])  # fmt: skip
def test_both_models_monotone_in_size(make):
    prev = None
    for n in (1, 2, 5, 17, 100):
        e = estimate(make(n), ARCH)
        cur = (e.tensil_cycles, e.hardware_cycles[50], e.hardware_cycles[125])
        if prev:
            assert all(c > p for c, p in zip(cur, prev))
        prev = cur


def test_groups_sum_to_totals_and_table():
    prog = [DataMove(DataFlow.DRAM0_TO_LOCAL, 0, 0, 0, 0, 63), LoadWeight(0, 0, 12), MatMul(0, 0, 0, 0, 63),
            Simd(SimdOp.ZERO, dest=1)] + [Simd(SimdOp.MAX, 0, 1, 0, read=True, write=True)] * 64 + [
            DataMove(DataFlow.ACC_TO_LOCAL, 0, 0, 0, 0, 63), DataMove(DataFlow.LOCAL_TO_DRAM0, 0, 0, 0, 0, 63)]  # fmt: skip
    groups = [Group("conv", 0, 3, macs=64 * 144), Group("relu", 3, 68), Group("save", 68, len(prog))]
    e = estimate(prog, ARCH, groups=groups)
    assert sum(g.tensil_cycles for g in e.groups) == e.tensil_cycles
    for mhz in (50, 125):
        assert sum(g.hardware_cycles[mhz] for g in e.groups) == pytest.approx(e.hardware_cycles[mhz])
    assert e.useful_macs == 64 * 144 and 0 < e.mac_efficiency < 1
    assert e.groups[0].mac_efficiency == pytest.approx(64 * 144 / (144 * e.groups[0].tensil_cycles))
    table = e.table(125)
    assert "conv" in table and "TOTAL" in table and "ms@125MHz" in table
    d = e.to_json_dict()
    assert set(d["latency_ms"]) == {"50MHz", "125MHz"}
    with pytest.raises(EstimateError, match="outside"):
        estimate(prog, ARCH, groups=[Group("bad", 0, 999)])
    with pytest.raises(EstimateError, match="positive"):
        estimate(prog, ARCH, clocks_mhz=[0])


def test_instruction_fetch_bound_for_nine_byte_instructions():
    arch = ARCH.__class__(**{**ARCH.to_json_dict(), "array_size": 16, "local_depth": 20480, "accumulator_depth": 4096,
                             "dram0_depth": 2**21, "dram1_depth": 2**21})  # fmt: skip
    e = estimate([NoOp()] * 800, arch, clocks_mhz=[50])
    assert e.hardware_cycles[50] == pytest.approx(900)  # 9 bytes on a 64-bit stream


def test_realistic_conv_layer_against_rtl_measurement():
    """§3.4: measured 1959 / 2046 / 2136 cycles at r = b = 1 / 30 / 60; Tensil's model 1167."""
    from core_conv_program import conv3x3_program

    prog = conv3x3_program()
    assert len(prog) == 203
    for r, measured in ((1, 1959), (30, 2046), (60, 2136)):
        e = estimate(prog, ARCH, clocks_mhz=[50], params=HardwareParams(20.0 * r, 20.0 * r))
        assert e.tensil_cycles == 1167
        assert e.hardware_cycles[50] == pytest.approx(measured, rel=0.005)
