"""Program validator: rejects every instruction pattern that hangs or corrupts the real TCU.

Rules (spec §2.5/§2.6 as corrected by `tensil_rtl_facts.md`), each with a short name that
appears in the error:

* `encoding`: every field fits its bits (includes the DataMove size bits 53-55 that the RTL's
  DRAM side reads: a size must fit in the operand2 address bits).
* `opcode`: only MatMul, DataMove, LoadWeight, SIMD and NoOp in a compiled program (Configure
  belongs to drivers and would move the DRAM windows mid-program).
* `stride`: stride codes below `stride0_depth` / `stride1_depth`.
* `local-range`, `acc-range`, `dram0-range`, `dram1-range`: the last vector an instruction
  touches lies inside the memory (the RTL silently wraps local and accumulator addresses and
  reads DRAM past its end).
* `driver-probe`: the PYNQ driver's completion probe overwrites local[local_depth-1] and
  DRAM0[dram0_depth-2 .. dram0_depth-1]; programs must leave them alone.
* `load-weight-size`: at most A+1 vectors pushed (more is discarded work; the RTL validator
  flags it).
* `simd-stall`: SIMD that consumes the input without `read`, `read` without consuming it,
  op Zero with `read`, op NoOp with `read`/`write` (permanent stall, hazards 1-3).
* `simd-noop-dest`: op NoOp naming a destination register (never measured on the RTL).
* `simd-dest-write`: `write` with a register `dest` writes both (hazard 4; upstream's emulator
  disagrees with the RTL).
* `simd-register`: register codes up to `simd_registers_depth`.
* `simd-accumulate`: `accumulate` without `write` has no effect (ignored by the RTL).
* `simd-address`: SIMD addresses inside the accumulators (the RTL takes them modulo).
"""

from __future__ import annotations

from typing import Sequence

from tensil.arch import Arch
from tensil.emulator import simd_stall_reason
from tensil.isa import (
    Configure,
    DataFlow,
    DataMove,
    Instruction,
    Layout,
    LoadWeight,
    MatMul,
    NoOp,
    ProgramError,
    Simd,
    SimdOp,
    encode_int,
    mnemonic,
)


class HazardError(ValueError):
    """A program the hardware cannot run safely; names the instruction and the rule."""

    def __init__(self, index: int, rule: str, detail: str, instr: Instruction):
        self.index, self.rule = index, rule
        try:
            text = mnemonic(instr)
        except Exception:  # an unencodable instruction has no mnemonic
            text = repr(instr)
        super().__init__(f"instruction {index} ({text}) breaks rule {rule}: {detail}")


def _last(addr: int, stride: int, size: int) -> int:
    return addr + size * (1 << stride)


def check_program(instrs: Sequence[Instruction], arch: Arch, reserve_driver_probe: bool = True) -> None:
    """Raise HazardError for the first instruction that breaks a rule; return None if all pass."""
    layout = Layout.from_arch(arch)
    local_end = arch.local_depth - (1 if reserve_driver_probe else 0)
    dram0_end = arch.dram0_depth - (2 if reserve_driver_probe else 0)
    limits = {"local": local_end, "acc": arch.accumulator_depth, "dram0": dram0_end, "dram1": arch.dram1_depth}
    full = {"local": arch.local_depth, "acc": arch.accumulator_depth, "dram0": arch.dram0_depth,
            "dram1": arch.dram1_depth}  # fmt: skip
    A = arch.array_size

    for index, ins in enumerate(instrs):

        def fail(rule: str, detail: str) -> None:
            raise HazardError(index, rule, detail, ins)

        def span(memory: str, addr: int, stride: int, size: int) -> None:
            last = _last(addr, stride, size)
            if last >= full[memory]:
                fail(f"{memory}-range", f"touches {memory} vector {last}, the memory has {full[memory]}")
            if last >= limits[memory] or addr >= limits[memory]:
                fail("driver-probe", f"touches {memory} vector {last}, reserved for the PYNQ driver's completion probe")

        def strides(s0: int, s1: int | None = None) -> None:
            if s0 >= arch.stride0_depth or (s1 is not None and s1 >= arch.stride1_depth):
                fail("stride", f"stride codes ({s0}, {s1}) exceed stride depths ({arch.stride0_depth}, {arch.stride1_depth})")

        if isinstance(ins, Configure):
            fail("opcode", "Configure is for drivers; a compiled program must not move the DRAM windows")
        if not isinstance(ins, (MatMul, DataMove, LoadWeight, Simd, NoOp)):
            fail("opcode", "not a TCU instruction")
        try:
            encode_int(ins, layout)
        except ProgramError as e:
            fail("encoding", str(e))

        if isinstance(ins, MatMul):
            strides(ins.local_stride, ins.acc_stride)
            if not ins.zeroes:
                span("local", ins.local_addr, ins.local_stride, ins.size)
            span("acc", ins.acc_addr, ins.acc_stride, ins.size)
        elif isinstance(ins, LoadWeight):
            strides(ins.local_stride)
            if ins.size > A:
                fail("load-weight-size", f"pushes {ins.size + 1} vectors, the array holds {A + 1}")
            if not ins.zeroes:
                span("local", ins.local_addr, ins.local_stride, ins.size)
        elif isinstance(ins, DataMove):
            strides(ins.local_stride, ins.stride)
            flow = DataFlow(ins.flow)
            span("local", ins.local_addr, ins.local_stride, ins.size)
            span(flow.other_memory, ins.addr, ins.stride, ins.size)
        elif isinstance(ins, Simd):
            reason = simd_stall_reason(ins)
            if reason:
                fail("simd-stall", reason)
            if ins.op == SimdOp.NOOP and ins.dest:
                fail("simd-noop-dest", "ALU op NoOp with a register destination has no measured meaning")
            if ins.write and ins.dest:
                fail("simd-dest-write", "write with a register destination writes both register and accumulator")
            if max(ins.left, ins.right, ins.dest) > arch.simd_registers_depth:
                fail("simd-register", f"register code above simd_registers_depth {arch.simd_registers_depth}")
            if ins.accumulate and not ins.write:
                fail("simd-accumulate", "accumulate without write has no effect")
            for what, addr, used in (("read", ins.read_addr, ins.read), ("write", ins.write_addr, ins.write)):
                if addr >= arch.accumulator_depth and used:
                    fail("simd-address", f"{what} address {addr} is past the {arch.accumulator_depth} accumulators")
