"""Program validator: rejects every instruction pattern that hangs or corrupts the real TCU.

Rules (tensil/README.md, "Hardware rules"; measured on the simulated RTL), each with a short name that
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

Two read-after-write rules follow the *sequence* of instructions (measured when whole compiled
networks ran on the RTL). They are stated conservatively: only what was measured to clear a
hazard clears it, nothing else does.

* `acc-read-after-write`: a MatMul with `accumulate` whose first accumulator address is the
  last one the previous MatMul wrote reads the old value, and the earlier update is lost
  (back-to-back chains lose every second update). Cleared, as measured, by a MatMul to another
  address in between (reuse distance 2 is fine), a local->accumulator DataMove, or a
  DRAM0->local DataMove of at least 16 vectors. NoOps, a 4-vector DRAM0 move and everything
  never measured (LoadWeight, SIMD, DRAM1 reads, ...) do not clear it.
* `acc-to-local-readback`: a local->DRAM DataMove reading local vectors whose latest writer
  is an accumulator->local move of more than 272 vectors sent stale data (280 vectors failed,
  272 were fine). Cleared only by a DRAM0->local DataMove of at least 64 vectors; NoOps did
  not. Vectors rewritten since by another move no longer hold that move's data, so reading
  them is not the measured pattern.

Not a refusal but counted (`tensil.axi`): AXI bursts that cross a 4 KiB boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from tensil.arch import Arch
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


def simd_stall_reason(s: Simd) -> Optional[str]:
    """Why this SIMD instruction stalls the RTL forever (the three stalling SIMD forms), or None."""
    op = SimdOp(s.op)
    uses_input = s.left == 0 or s.right == 0  # the RTL's isUnary is always false
    if op == SimdOp.NOOP:
        return "ALU op NoOp with read or write flags is routed as a data transfer nobody serves" if (
            s.read or s.write
        ) else None
    if op == SimdOp.ZERO:
        return "read of a vector that op Zero never consumes" if s.read else None
    if uses_input and not s.read:
        return "a source is the input (0) but the read flag is not set: the ALU waits forever"
    if s.read and not uses_input:
        return "read flag set but no source is the input (0): the read vector is never consumed"
    return None


@dataclass(frozen=True)
class DriverProbe:
    """The completion probe of the PYNQ drivers (Tensil's and ours, `board/tcu.py`): after the
    program, DRAM0's last vector is copied through local memory's last vector to DRAM0's
    second-to-last, which the driver polls. Programs must leave these three vectors alone."""

    arch: Arch

    @property
    def local(self) -> int:
        return self.arch.local_depth - 1

    @property
    def source(self) -> int:
        return self.arch.dram0_depth - 1

    @property
    def target(self) -> int:
        return self.arch.dram0_depth - 2

    @property
    def usable(self) -> dict[str, int]:
        """Vectors a program may use from the bottom of each memory."""
        return {"local": self.local, "dram0": self.target}


class HazardError(ValueError):
    """A program the hardware cannot run safely; names the instruction and the rule."""

    def __init__(self, index: int, rule: str, detail: str, instr: Instruction):
        self.index, self.rule = index, rule
        try:
            text = mnemonic(instr)
        except Exception:  # an unencodable instruction has no mnemonic
            text = repr(instr)
        super().__init__(f"instruction {index} ({text}) breaks rule {rule}: {detail}")


Problem = Optional[Tuple[str, str]]  # (rule, detail)


class _Rules:
    """The rules for one architecture; `check` returns the first broken rule of an instruction."""

    def __init__(self, arch: Arch, reserve_driver_probe: bool):
        self.arch = arch
        self.layout = Layout.from_arch(arch)
        self.depth = {"local": arch.local_depth, "acc": arch.accumulator_depth, "dram0": arch.dram0_depth,
                      "dram1": arch.dram1_depth}  # fmt: skip
        reserved = DriverProbe(arch).usable if reserve_driver_probe else {}
        self.usable = {mem: reserved.get(mem, d) for mem, d in self.depth.items()}

    def span(self, memory: str, addr: int, stride: int, size: int) -> Problem:
        last = addr + size * (1 << stride)
        if last >= self.depth[memory]:
            return f"{memory}-range", f"touches {memory} vector {last}, the memory has {self.depth[memory]}"
        if last >= self.usable[memory]:
            return "driver-probe", f"touches {memory} vector {last}, reserved for the PYNQ driver's completion probe"
        return None

    def strides(self, local_stride: int, other_stride: Optional[int] = None) -> Problem:
        a = self.arch
        if local_stride >= a.stride0_depth or (other_stride is not None and other_stride >= a.stride1_depth):
            return "stride", (f"stride codes ({local_stride}, {other_stride}) exceed stride depths "
                              f"({a.stride0_depth}, {a.stride1_depth})")  # fmt: skip
        return None

    def check(self, ins: Instruction) -> Problem:
        if isinstance(ins, Configure):
            return "opcode", "Configure is for drivers; a compiled program must not move the DRAM windows"
        if not isinstance(ins, (MatMul, DataMove, LoadWeight, Simd, NoOp)):
            return "opcode", "not a TCU instruction"
        try:
            encode_int(ins, self.layout)
        except ProgramError as e:
            return "encoding", str(e)
        if isinstance(ins, MatMul):
            return (
                self.strides(ins.local_stride, ins.acc_stride)
                or (None if ins.zeroes else self.span("local", ins.local_addr, ins.local_stride, ins.size))
                or self.span("acc", ins.acc_addr, ins.acc_stride, ins.size)
            )
        if isinstance(ins, LoadWeight):
            if ins.size > self.arch.array_size:
                return "load-weight-size", f"pushes {ins.size + 1} vectors, the array holds {self.arch.array_size + 1}"
            return self.strides(ins.local_stride) or (
                None if ins.zeroes else self.span("local", ins.local_addr, ins.local_stride, ins.size)
            )
        if isinstance(ins, DataMove):
            return (
                self.strides(ins.local_stride, ins.stride)
                or self.span("local", ins.local_addr, ins.local_stride, ins.size)
                or self.span(DataFlow(ins.flow).other_memory, ins.addr, ins.stride, ins.size)
            )
        if isinstance(ins, Simd):
            return self.simd(ins)
        return None  # NoOp

    def simd(self, ins: Simd) -> Problem:
        reason = simd_stall_reason(ins)
        if reason:
            return "simd-stall", reason
        if ins.op == SimdOp.NOOP and ins.dest:
            return "simd-noop-dest", "ALU op NoOp with a register destination has no measured meaning"
        if ins.write and ins.dest:
            return "simd-dest-write", "write with a register destination writes both register and accumulator"
        if max(ins.left, ins.right, ins.dest) > self.arch.simd_registers_depth:
            return "simd-register", f"register code above simd_registers_depth {self.arch.simd_registers_depth}"
        if ins.accumulate and not ins.write:
            return "simd-accumulate", "accumulate without write has no effect"
        for what, addr, used in (("read", ins.read_addr, ins.read), ("write", ins.write_addr, ins.write)):
            if used and addr >= self.arch.accumulator_depth:
                return "simd-address", f"{what} address {addr} is past the {self.arch.accumulator_depth} accumulators"
        return None


# Measured limits of the two read-after-write hazards (RTL facts, whole-network co-simulation).
ACC_RAW_CLEARING_DRAM0_READ = 16  # a DRAM0->local move of >= 16 vectors cleared it; 4 did not
LONG_ACC_TO_LOCAL = 272  # accumulator->local moves of at most 272 vectors are read back correctly
READBACK_CLEARING_DRAM0_READ = 64  # a DRAM0->local move of 64 vectors cleared the stale rows


def _vectors(addr: int, stride: int, size: int) -> range:
    return range(addr, addr + ((size + 1) << stride), 1 << stride)


class _AccumulatorReadAfterWrite:
    """`acc-read-after-write`: remembers the last accumulator address a MatMul wrote."""

    def __init__(self, arch: Arch) -> None:
        self.depth = arch.accumulator_depth  # the RTL takes accumulator addresses modulo
        self.last_write: Optional[int] = None

    def step(self, ins: Instruction) -> Problem:
        if isinstance(ins, MatMul):
            first = ins.acc_addr % self.depth
            if ins.accumulate and first == self.last_write:
                return ("acc-read-after-write",
                        f"accumulates into accumulator {first} right after the previous MatMul wrote it "
                        "(the hardware reads the old value and loses that update)")
            self.last_write = (ins.acc_addr + (ins.size << ins.acc_stride)) % self.depth
        elif isinstance(ins, DataMove):
            flow, n = DataFlow(ins.flow), ins.size + 1
            if flow in (DataFlow.LOCAL_TO_ACC, DataFlow.LOCAL_TO_ACC_ACCUMULATE) or (
                    flow == DataFlow.DRAM0_TO_LOCAL and n >= ACC_RAW_CLEARING_DRAM0_READ):
                self.last_write = None
        return None


class _LongAccToLocalReadback:
    """`acc-to-local-readback`: local vectors last written by long accumulator->local moves."""

    def __init__(self, arch: Arch) -> None:
        self.depth = arch.local_depth  # the RTL takes local addresses modulo
        self.stale: set[int] = set()

    def step(self, ins: Instruction) -> Problem:
        if not isinstance(ins, DataMove):
            return None
        flow, n = DataFlow(ins.flow), ins.size + 1
        local = [v % self.depth for v in _vectors(ins.local_addr, ins.local_stride, ins.size)]
        if flow == DataFlow.ACC_TO_LOCAL and n > LONG_ACC_TO_LOCAL:
            self.stale.update(local)
        elif flow == DataFlow.DRAM0_TO_LOCAL and n >= READBACK_CLEARING_DRAM0_READ:
            self.stale.clear()
        elif flow.to_local:
            self.stale.difference_update(local)  # a newer writer
        elif flow in (DataFlow.LOCAL_TO_DRAM0, DataFlow.LOCAL_TO_DRAM1) and self.stale:
            hit = next((v for v in local if v in self.stale), None)
            if hit is not None:
                return ("acc-to-local-readback",
                        f"sends local vector {hit} to DRAM, written by an accumulator->local move of more than "
                        f"{LONG_ACC_TO_LOCAL} vectors (the hardware sends stale data)")
        return None


def _sequence_rules(arch: Arch) -> tuple:
    return _AccumulatorReadAfterWrite(arch), _LongAccToLocalReadback(arch)


def check_sequence(instrs: Sequence[Instruction], arch: Arch) -> None:
    """Only the read-after-write rules (any stream, Configure and probes included): the
    emulator's core refuses what the RTL would compute differently from it."""
    rules = _sequence_rules(arch)
    for index, ins in enumerate(instrs):
        for rule in rules:
            problem = rule.step(ins)
            if problem:
                raise HazardError(index, problem[0], problem[1], ins)


def check_program(instrs: Sequence[Instruction], arch: Arch, reserve_driver_probe: bool = True) -> None:
    """Raise HazardError for the first instruction that breaks a rule; return None if all pass."""
    rules = _Rules(arch, reserve_driver_probe)
    sequence_rules = _sequence_rules(arch)
    known_good: set[Instruction] = set()  # programs repeat instructions: check each distinct one once
    for index, ins in enumerate(instrs):
        problem = None if ins in known_good else rules.check(ins)
        if problem is None:
            known_good.add(ins)
        for rule in sequence_rules:
            problem = problem or rule.step(ins)
        if problem:
            raise HazardError(index, problem[0], problem[1], ins)
