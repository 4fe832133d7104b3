"""Instruction builder: typed helpers over `tensil.isa` records, chunking and per-layer groups.

Sizes given to these helpers are vector *counts*; the builder writes the hardware's n - 1.
Moves and MatMuls longer than one instruction can express are split, advancing both sides.
Moves are also split where the hardware needs it: accumulator->local moves into pieces the RTL
reads back correctly (`tensil.hazards.LONG_ACC_TO_LOCAL`), and DRAM moves so that no AXI burst
crosses a 4 KiB boundary (`tensil.axi`), unless `avoid_4k` is off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tensil import estimator
from tensil.arch import Arch
from tensil.axi import BurstGeometry
from tensil.compiler.errors import CompileError
from tensil.hazards import LONG_ACC_TO_LOCAL
from tensil.isa import DataFlow, DataMove, Instruction, Layout, LoadWeight, MatMul, Simd, SimdOp


@dataclass
class Group:
    """A contiguous run of instructions belonging to one layer (for per-layer accounting)."""

    name: str
    kind: str
    start: int
    end: int = -1
    info: dict = field(default_factory=dict)

    def span(self) -> estimator.Group:
        """The estimator's view: the instruction range and the useful MACs."""
        return estimator.Group(self.name, self.start, self.end, int(self.info.get("macs", 0)))


def stride_code(step: int, depth: int) -> int | None:
    """Stride code for a step of `step` vectors, or None if the hardware cannot express it."""
    if step < 1 or step & (step - 1):
        return None
    code = step.bit_length() - 1
    return code if code < depth else None


class ProgramBuilder:
    def __init__(self, arch: Arch, dry: bool = False, avoid_4k: bool = True):
        self.arch = arch
        self.dry = dry  # planning pass: decide memory, emit nothing
        self.bursts = BurstGeometry.of(arch) if avoid_4k else None
        self.layout = Layout.from_arch(arch)
        self.instrs: list[Instruction] = []
        self.groups: list[Group] = []
        self.last_matmul_write: int | None = None  # accumulator the latest MatMul wrote last
        # the size field holds n - 1 in operand2_addr_bits bits; local addresses wrap, so never
        # let one instruction cover more than the local memory either
        self.max_n = min(1 << self.layout.operand2_addr_bits, arch.local_depth, arch.accumulator_depth)
        self.max_lw = 1 << min(self.layout.operand1_addr_bits, self.layout.local_bits)

    # ---------------------------------------------------------------- groups
    def begin(self, name: str, kind: str, **info) -> Group:
        g = Group(name, kind, len(self.instrs), info=dict(info))
        self.groups.append(g)
        return g

    def end(self, group: Group) -> None:
        group.end = len(self.instrs)

    # ---------------------------------------------------------------- instructions
    def _chunks(self, n: int, max_n: int | None = None):
        max_n = max_n or self.max_n
        done = 0
        while done < n:
            k = min(max_n, n - done)
            yield done, k
            done += k

    def move(self, flow: DataFlow, local: int, addr: int, n: int, local_step: int = 1, step: int = 1,
             read_back_to_dram: bool = True) -> None:
        """Move n vectors; steps are in vectors (powers of two), or one move per vector.

        `read_back_to_dram=False` promises that the local vectors an accumulator->local move
        writes are never sent to DRAM, so the move need not be cut for the RTL's read-back hazard."""
        if n <= 0 or self.dry:
            return
        d0, d1 = self.arch.stride0_depth, self.arch.stride1_depth
        c0, c1 = stride_code(local_step, d0), stride_code(step, d1)
        if c0 is None or c1 is None:
            for i in range(n):
                self.instrs.append(DataMove(flow, local + i * local_step, 0, addr + i * step, 0, 0))
            return
        if flow == DataFlow.ACC_TO_LOCAL and read_back_to_dram:
            chunks = list(self._chunks(n, min(self.max_n, LONG_ACC_TO_LOCAL)))
        elif flow.is_dram and step == 1 and self.bursts is not None:
            chunks = self.bursts.safe_chunks(addr, n, self.max_n)
        else:
            chunks = list(self._chunks(n))
        for off, k in chunks:
            self.instrs.append(DataMove(flow, local + off * local_step, c0, addr + off * step, c1, k - 1))

    def matmul(self, local: int, acc: int, n: int, *, accumulate: bool, local_step: int = 1,
               acc_step: int = 1, zeroes: bool = False) -> None:
        if n <= 0 or self.dry:
            return
        c0 = stride_code(local_step, self.arch.stride0_depth)
        c1 = stride_code(acc_step, self.arch.stride1_depth)
        if c0 is None or c1 is None:
            for i in range(n):
                self.instrs.append(MatMul(0 if zeroes else local + i * local_step, 0, acc + i * acc_step, 0, 0,
                                          accumulate, zeroes))
            self.last_matmul_write = acc + (n - 1) * acc_step
            return
        for off, k in self._chunks(n):
            self.instrs.append(MatMul(0 if zeroes else local + off * local_step, 0 if zeroes else c0,
                                      acc + off * acc_step, c1, k - 1, accumulate, zeroes))
        self.last_matmul_write = acc + (n - 1) * acc_step

    def load_weights(self, local: int, n: int) -> None:
        """Push n vectors local[local+n-1] ... local[local] (the last one becomes the bias)."""
        if n > self.max_lw:
            raise CompileError(f"a weight tile of {n} vectors exceeds one LoadWeight")
        if self.dry:
            return
        self.instrs.append(LoadWeight(local, 0, n - 1))

    def zero_bias(self) -> None:
        if self.dry:
            return
        self.instrs.append(LoadWeight(0, 0, 0, zeroes=True))

    def simd(self, op: SimdOp, **kw) -> None:
        if self.dry:
            return
        self.instrs.append(Simd(op, **kw))
