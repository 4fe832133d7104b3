"""The hardware facts measured by running whole compiled networks on Tensil's generated RTL
(cycle-accurate co-simulation of `custom_perf`), replayed on the emulator, the hazard checker,
the burst model and the cycle model. Each test runs the measured program and asserts what the
hardware did: where the RTL computes something the emulator does not model (a lost update,
stale data), the program must be refused, naming the instruction and the rule.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from export.onnx_build import to_tensil_onnx
from tensil import estimator, fixed
from tensil.arch import load_arch
from tensil.axi import BurstGeometry, count_4k_crossings
from tensil.compiler.frontend import graph_from_model
from tensil.compiler.pipeline import CompileOptions, compile_network
from tensil.emulator import EmulatorError, Machine
from tensil.hazards import LONG_ACC_TO_LOCAL, HazardError, check_program
from tensil.isa import DataFlow, DataMove, Instruction, LoadWeight, MatMul, NoOp
from tensil.report import estimates
from train.backbones import BackboneSpec, build_backbone

import hazard_programs
from hazard_programs import LOST_UPDATE_INDEX, unit_weights

ARCH = load_arch("custom_perf")
A = ARCH.array_size
ONE = ARCH.dtype.scale  # raw 1.0


# ----------------------------------------------------------------- lost accumulator updates
def unit_inputs_and_weights() -> Machine:
    """DRAM0 0..15: vectors of 1.0 in lane 0; DRAM1 0..12: bias 0, W[0][0] = 1.0."""
    m = Machine(ARCH)
    x = np.zeros((16, A), dtype=np.int64)
    x[:, 0] = ONE
    m.dram0.write(np.arange(16), x)
    m.dram1.write(np.arange(A + 1), unit_weights(ARCH))
    return m


def accumulate_chain(between: list[Instruction], length: int = 3, acc_addrs=None) -> list[Instruction]:
    return hazard_programs.accumulate_chain(ARCH, between, length, acc_addrs)


def lane0_result(program: list[Instruction]) -> float:
    m = unit_inputs_and_weights()
    m.execute(program)
    return float(fixed.dequantize(m.dram0.read(np.array([100])), ARCH.dtype)[0, 0])


@pytest.mark.parametrize("length", [3, 4, 8, 16])  # hardware: 2, 3, 5, 9 instead of 3, 4, 8, 16
def test_back_to_back_accumulation_is_refused(length):
    program = accumulate_chain([], length)
    with pytest.raises(HazardError, match=rf"instruction {LOST_UPDATE_INDEX} \(.*\) breaks rule acc-read-after-write"):
        check_program(program, ARCH)
    with pytest.raises(EmulatorError, match=f"instruction {LOST_UPDATE_INDEX} .*acc-read-after-write"):
        lane0_result(program)


@pytest.mark.parametrize("between", [
    [NoOp()], [NoOp()] * 8,                                  # measured: NoOps do not help
    [DataMove(DataFlow.DRAM0_TO_LOCAL, 300, 0, 0, 0, 3)],    # a 4-vector DRAM0 read does not either
    [LoadWeight(100, 0, A)],                                 # never measured: refused, conservatively
    [DataMove(DataFlow.DRAM1_TO_LOCAL, 300, 0, 0, 0, 15)],   # never measured (DRAM1): refused
], ids=["1 NoOp", "8 NoOps", "DRAM0 read of 4", "LoadWeight", "DRAM1 read of 16"])
def test_what_does_not_clear_the_hazard(between):
    with pytest.raises(HazardError, match="acc-read-after-write"):
        check_program(accumulate_chain(between), ARCH)


@pytest.mark.parametrize("between", [
    [DataMove(DataFlow.DRAM0_TO_LOCAL, 300, 0, 0, 0, 15)],  # a 16-vector DRAM0 read
    [MatMul(5, 0, 7, 0, 0)],                                 # a MatMul to another address
    [DataMove(DataFlow.LOCAL_TO_ACC, 0, 0, 9, 0, 0)],         # a local -> accumulator move
], ids=["DRAM0 read of 16", "MatMul elsewhere", "local->acc"])
def test_what_clears_the_hazard_gives_the_full_sum(between):
    program = accumulate_chain(between)
    check_program(program, ARCH)
    assert lane0_result(program) == 3.0  # what the hardware computed with these in between


def test_reuse_distance_two_is_fine():
    alternating = accumulate_chain([], 4, acc_addrs=[0, 1, 0, 1])  # acc 0 gets inputs 0 and 2
    check_program(alternating, ARCH)
    assert lane0_result(alternating) == 2.0
    two_wide = [DataMove(DataFlow.DRAM0_TO_LOCAL, 0, 0, 0, 0, 15), DataMove(DataFlow.DRAM1_TO_LOCAL, 100, 0, 0, 0, A),
                LoadWeight(100, 0, A), MatMul(0, 0, 0, 0, 1), MatMul(2, 0, 0, 0, 1, accumulate=True),
                DataMove(DataFlow.ACC_TO_LOCAL, 200, 0, 0, 0, 1), DataMove(DataFlow.LOCAL_TO_DRAM0, 200, 0, 100, 0, 1)]
    check_program(two_wide, ARCH)  # n = 2 over the same two addresses
    assert lane0_result(two_wide) == 2.0


# ----------------------------------------------------------------- long acc -> local, then DRAM
def readback(n: int, between: list[Instruction]) -> list[Instruction]:
    return ([DataMove(DataFlow.ACC_TO_LOCAL, 1000, 0, 0, 0, n - 1)] + between
            + [DataMove(DataFlow.LOCAL_TO_DRAM0, 1000, 0, 5000, 0, 63)])


@pytest.mark.parametrize("n", [280, 400])
def test_long_acc_to_local_then_dram_is_refused(n):
    with pytest.raises(HazardError, match=r"instruction 1 \(.*\) breaks rule acc-to-local-readback"):
        check_program(readback(n, []), ARCH)
    with pytest.raises(HazardError, match="acc-to-local-readback"):
        check_program(readback(n, [NoOp()] * 8), ARCH)  # NoOps did not clear it
    with pytest.raises(EmulatorError, match="acc-to-local-readback"):
        Machine(ARCH).execute(readback(n, []))


def test_rows_rewritten_since_the_long_move_are_fine_the_others_are_not():
    rewrite_some = [DataMove(DataFlow.ACC_TO_LOCAL, 1000, 0, 500, 0, 31)]  # a short move over 1000..1031
    with pytest.raises(HazardError, match="sends local vector 1032 "):
        check_program(readback(300, rewrite_some), ARCH)
    rewrite_all = [DataMove(DataFlow.DRAM1_TO_LOCAL, 1000, 0, 0, 0, 63)]
    check_program(readback(300, rewrite_all), ARCH)


def test_short_acc_to_local_or_a_dram0_read_in_between_is_fine():
    assert LONG_ACC_TO_LOCAL == 272
    check_program(readback(272, []), ARCH)
    check_program(readback(280, [DataMove(DataFlow.DRAM0_TO_LOCAL, 3000, 0, 0, 0, 63)]), ARCH)
    m = Machine(ARCH)
    m.acc[:280] = np.arange(280 * A).reshape(280, A) % 1000
    m.execute(readback(272, []))
    assert np.array_equal(m.dram0.read(np.arange(5000, 5064)), m.acc[:64])


# ----------------------------------------------------------------- AXI bursts across 4 KiB
def test_burst_splitting_matches_the_traces():
    g = BurstGeometry.of(ARCH)
    assert g.piece_vectors == 85 and g.beats_per_vector == 3
    assert g.crossings(170, 1) == 1  # 3 beats from 0xFF0, the last at 0x1000
    assert g.crossings(86, 85) == 1  # 255 beats from 0x810, the last at 0x1000
    assert g.crossings(341, 1) == 0  # straddles, but its middle beat is the one on the boundary
    assert g.crossings(1000, 100) == 0 and g.crossings(200000, 100) == 0  # split 72+183+45 / 64+191+45
    assert g.crossings(160, 16, step=2) == 1  # strided: a burst per vector, 170 among them
    assert [v for v in range(2048) if g.crossings(v, 1)] == [170, 682, 1194, 1706]  # every 12 KiB
    assert BurstGeometry.of(load_arch("pynqz1")).crossings(0, 4096) == 0  # 16-byte vectors never cross


def test_moves_are_cut_so_that_no_burst_crosses():
    g = BurstGeometry.of(ARCH)
    for addr in range(0, 1100, 7):
        for n in (1, 2, 85, 86, 170, 300):
            chunks = g.safe_chunks(addr, n, 4096)
            assert sum(k for _, k in chunks) == n and chunks[0][0] == 0
            assert all(o2 == o1 + k1 for (o1, k1), (o2, _) in zip(chunks, chunks[1:]))
            ends_on_crossing = g.crossings(addr + n - 1, 1) == 1
            assert sum(g.crossings(addr + o, k) for o, k in chunks) == int(ends_on_crossing)


# ----------------------------------------------------------------- whole networks
def backbone_graph(spec: BackboneSpec = BackboneSpec("resnet9", 16, True, 3, 32)):
    torch.manual_seed(0)
    model = build_backbone(spec).eval()
    size = spec.image_size
    return graph_from_model(to_tensil_onnx(model, (1, 3, size, size), 10, "input", "Output"))


@pytest.fixture(scope="module")
def default_compiled():
    return compile_network(backbone_graph(), ARCH, "backbone")


def test_default_network_has_no_back_to_back_accumulation(default_compiled):
    last = None
    for ins in default_compiled.lowered.instrs:
        if isinstance(ins, MatMul):
            assert not (ins.accumulate and ins.acc_addr == last)
            last = ins.acc_addr + (ins.size << ins.acc_stride)
    assert count_4k_crossings(default_compiled.lowered.instrs, ARCH) == 0


def test_default_network_cycles_match_the_rtl(default_compiled):
    """Co-simulated RTL: 361,903 cycles at r = b = 1 and 364,542 at r = b = 30 (41,837
    instructions); the pooling's reordering changed no cost, so the model must stay within 0.05%."""
    low = default_compiled.lowered
    assert len(low.instrs) == 41_837
    for latency, rtl in ((1, 361_903), (30, 364_542)):
        params = estimator.HardwareParams(dram_read_latency_ns=latency * 10.0, dram_write_latency_ns=latency * 10.0)
        est = estimator.estimate(low.instrs, ARCH, clocks_mhz=[100.0], params=params)
        assert abs(est.hardware_cycles[100.0] / rtl - 1) < 5e-4
    summary, _ = estimates(default_compiled)
    assert summary["tensil_cycles"] <= 265_805 and summary["mac_efficiency"] >= 0.4188


def test_avoiding_4k_crossings_is_a_flag_and_costs_under_one_percent():
    graph = backbone_graph(BackboneSpec("resnet12", 16, False, 3, 32))  # its weights cross twice
    on = compile_network(graph, ARCH, "b")
    off = compile_network(graph, ARCH, "b", CompileOptions(avoid_4k=False))
    assert count_4k_crossings(on.lowered.instrs, ARCH) == 0 < count_4k_crossings(off.lowered.instrs, ARCH)
    cycles = [estimator.estimate(c.lowered.instrs, ARCH, clocks_mhz=[125.0]).hardware_cycles[125.0] for c in (on, off)]
    assert cycles[0] <= 1.01 * cycles[1]
