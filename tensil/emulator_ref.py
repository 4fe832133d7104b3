"""A slow, obviously-correct scalar reference of the TCU: one instruction, one vector, one lane
at a time, on Python integers, written straight from the semantics of docs/tensil.md as fixed by the
RTL measurements. It shares no arithmetic code with `tensil.emulator` (tests compare the two
bit for bit on random programs); only for small memories and short programs.
"""

from __future__ import annotations

from typing import List, Sequence

from tensil.arch import Arch
from tensil.isa import Configure, DataFlow, DataMove, Instruction, LoadWeight, MatMul, NoOp, Simd, SimdOp


class RefStall(RuntimeError):
    """The instruction would hang the hardware."""


class RefMachine:
    def __init__(self, arch: Arch, dram0_vectors: int = 64, dram1_vectors: int = 64):
        self.arch = arch
        self.A = arch.array_size
        self.bits = arch.dtype.bits
        self.bp = arch.dtype.frac_bits
        zero = lambda n: [[0] * self.A for _ in range(n)]  # noqa: E731
        self.local = zero(arch.local_depth)
        self.acc = zero(arch.accumulator_depth)
        self.dram0 = zero(dram0_vectors)
        self.dram1 = zero(dram1_vectors)
        self.array = zero(self.A + 1)  # [0] bias, [k + 1] weights of input lane k
        self.regs = zero(arch.simd_registers_depth + 1)  # index = register code (0 unused)

    # -- scalar arithmetic
    def sat(self, v: int) -> int:
        lo, hi = -(2 ** (self.bits - 1)), 2 ** (self.bits - 1) - 1
        return lo if v < lo else hi if v > hi else v

    def rne(self, m: int) -> int:
        """Round m / 2^bp to nearest, ties to even (divmod floors for negatives too)."""
        if self.bp == 0:
            return m
        q, r = divmod(m, 2**self.bp)
        half = 2 ** (self.bp - 1)
        if r > half or (r == half and q % 2 == 1):
            q += 1
        return q

    def mac(self, x: int, y: int, z: int) -> int:
        return self.sat(self.rne(x * y + z * 2**self.bp))

    def add(self, a: int, b: int) -> int:
        return self.sat(a + b)

    # -- instructions
    def step(self, ins: Instruction) -> None:
        A = self.A
        if isinstance(ins, MatMul):
            for i in range(ins.size + 1):
                la = (ins.local_addr + i * 2**ins.local_stride) % len(self.local)
                ta = (ins.acc_addr + i * 2**ins.acc_stride) % len(self.acc)
                x = [0] * A if ins.zeroes else list(self.local[la])
                y = list(self.array[0])
                for k in range(A):
                    for o in range(A):
                        y[o] = self.mac(x[k], self.array[k + 1][o], y[o])
                self.acc[ta] = [self.add(a, b) for a, b in zip(self.acc[ta], y)] if ins.accumulate else y
        elif isinstance(ins, LoadWeight):
            for i in range(ins.size, -1, -1):
                la = (ins.local_addr + i * 2**ins.local_stride) % len(self.local)
                self.array = [[0] * A if ins.zeroes else list(self.local[la])] + self.array[:-1]
        elif isinstance(ins, DataMove):
            f = DataFlow(ins.flow)
            for i in range(ins.size + 1):
                la = (ins.local_addr + i * 2**ins.local_stride) % len(self.local)
                xa = ins.addr + i * 2**ins.stride
                if f == DataFlow.DRAM0_TO_LOCAL:
                    self.local[la] = list(self.dram0[xa])
                elif f == DataFlow.LOCAL_TO_DRAM0:
                    self.dram0[xa] = list(self.local[la])
                elif f == DataFlow.DRAM1_TO_LOCAL:
                    self.local[la] = list(self.dram1[xa])
                elif f == DataFlow.LOCAL_TO_DRAM1:
                    self.dram1[xa] = list(self.local[la])
                elif f == DataFlow.ACC_TO_LOCAL:
                    self.local[la] = list(self.acc[xa % len(self.acc)])
                elif f == DataFlow.LOCAL_TO_ACC:
                    self.acc[xa % len(self.acc)] = list(self.local[la])
                else:
                    t = xa % len(self.acc)
                    self.acc[t] = [self.add(a, b) for a, b in zip(self.acc[t], self.local[la])]
        elif isinstance(ins, Simd):
            self.simd(ins)
        elif not isinstance(ins, (Configure, NoOp)):
            raise TypeError(ins)

    def simd(self, s: Simd) -> None:
        op = SimdOp(s.op)
        needs_input = s.left == 0 or s.right == 0
        if op == SimdOp.NOOP:
            if s.read or s.write:
                raise RefStall("NoOp with flags")
            return
        if op == SimdOp.ZERO and s.read:
            raise RefStall("Zero with read")
        if op != SimdOp.ZERO and needs_input != bool(s.read):
            raise RefStall("input/read mismatch")
        inp = list(self.acc[s.read_addr % len(self.acc)]) if s.read else [0] * self.A
        one = 2**self.bp
        lo = -(2 ** (self.bits - 1))
        res = []
        for lane in range(self.A):
            a = inp[lane] if s.left == 0 else self.regs[s.left][lane]
            b = inp[lane] if s.right == 0 else self.regs[s.right][lane]
            res.append(
                {
                    SimdOp.ZERO: lambda: 0,
                    SimdOp.MOVE: lambda: a,
                    SimdOp.NOT: lambda: one if a == 0 else 0,
                    SimdOp.AND: lambda: one if a != 0 and b != 0 else 0,
                    SimdOp.OR: lambda: one if a != 0 or b != 0 else 0,
                    SimdOp.INCREMENT: lambda: self.sat(a + one),
                    SimdOp.DECREMENT: lambda: self.sat(a - one),
                    SimdOp.ADD: lambda: self.sat(a + b),
                    SimdOp.SUBTRACT: lambda: self.sat(a - b),
                    SimdOp.MULTIPLY: lambda: self.sat(self.rne(a * b)),
                    SimdOp.ABS: lambda: a if a == lo else abs(a),
                    SimdOp.GREATER: lambda: one if a > b else 0,
                    SimdOp.GREATER_EQUAL: lambda: one if a >= b else 0,
                    SimdOp.MIN: lambda: min(a, b),
                    SimdOp.MAX: lambda: max(a, b),
                }[op]()
            )
        if s.dest:
            self.regs[s.dest] = list(res)
        if s.write:
            t = s.write_addr % len(self.acc)
            self.acc[t] = [self.add(x, y) for x, y in zip(self.acc[t], res)] if s.accumulate else list(res)

    def run(self, program: Sequence[Instruction]) -> None:
        for ins in program:
            self.step(ins)


def run_reference(arch: Arch, program: Sequence[Instruction], local: List[List[int]] | None = None) -> RefMachine:
    """Convenience: a fresh reference machine, optional initial local memory, run the program."""
    m = RefMachine(arch)
    if local is not None:
        for i, v in enumerate(local):
            m.local[i] = list(v)
    m.run(program)
    return m
