"""Bit-exact, vectorised emulator of the Tensil TCU.

"Bit-exact" means: equal, bit for bit, to the scalar reference `tensil.emulator_ref` (tests
compare them on random programs) and to every arithmetic and data-movement behaviour measured
by simulating Tensil's generated RTL cycle by cycle (tests/tensil/test_rtl_facts.py replays
those measurements). It was never compared with a physical board. What it reproduces:

* MatMul: `y = bias; for k in 0..A-1: y = mac(x[k], W[k], y)` (per-step RNE of the exact sum,
  saturation at every step, lanes in order 0..A-1), then `acc = y` or `acc = add(acc, y)`.
  `zeroes` feeds zero vectors (result = bias).
* LoadWeight: a shift register of A+1 vectors (row 0 = bias, row k+1 = weights of input lane k);
  pushes `local[addr + size*step] ... local[addr]`, so afterwards row j = `local[addr + j*step]`.
* DataMove: the seven directions, raw copies, local->acc accumulate is a saturating add.
* SIMD: `res = op(L, R)` with sources 0 = the vector read from the accumulator, k = register k;
  `dest` k stores the result in register k (accumulate is ignored for registers); `write` stores
  it in the accumulator (with accumulate: saturating add). `write` with a register `dest` writes
  both, as the RTL does.
* Local and accumulator addresses wrap modulo their depth like the RTL's; DRAM addresses beyond
  the memory raise `EmulatorError`. Configure is recorded, NoOp does nothing.

What it refuses instead of computing (`EmulatorError` naming the instruction and the rule):
* SIMD instructions that hang the RTL (stall hazards 1-3 of `tensil.hazards`);
* the two timing hazards of `tensil.hazards.check_sequence`: an accumulating MatMul right after
  a MatMul wrote the same accumulator (the RTL loses the earlier update: back-to-back chains of
  4/8/16 give 3/5/9 instead of 4/8/16), and local->DRAM of rows written by an acc->local move
  of more than 272 vectors (the RTL sends stale data). Their outcome depends on timing that
  was measured for a few patterns only, so reproducing it would claim knowledge we do not
  have; refusing keeps every accepted program's result exact.
Not modelled: time (see `tensil.estimator`), and AXI bursts that cross 4 KiB (the data were
correct in simulation; `tensil.axi` counts them and the compiler avoids them).

Speed comes from a *plan*: the program is cut once into steps that numpy executes in bulk
(runs of LoadWeights and MatMuls, whose weight states are gathers from local memory, go through
the array chain at once; runs of same-direction DataMoves; periodic
SIMD blocks executed slot by slot across periods when their registers and accumulator addresses
do not interact across periods). Every grouping is checked at plan time to give exactly the
sequential result; `tensil.emulator_ref` is the slow scalar reference the tests compare with.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from tensil import fixed
from tensil import layout as host_layout
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
    Simd,
    SimdOp,
    decode,
)
from tensil.hazards import HazardError, check_program, check_sequence, simd_stall_reason
from tensil.tmodel import LoadedModel, ModelError

MAX_SIMD_PERIOD = 256  # e.g. upstream's global average pooling: H*W + 1 SIMD per vector


class EmulatorError(RuntimeError):
    """A program the hardware cannot run (stalling instruction, DRAM access out of range, ...)."""


@dataclass
class Counters:
    """What happened during execution: instructions per kind and saturation events."""

    instructions: Dict[str, int] = field(default_factory=dict)
    mac_saturations: int = 0  # array MAC steps whose result was clipped
    accumulate_saturations: int = 0  # accumulator adds (MatMul/DataMove/SIMD accumulate) clipped
    simd_saturations: int = 0  # ALU results clipped (Add, Subtract, Multiply, Increment, Decrement)

    def count(self, kind: str, n: int = 1) -> None:
        self.instructions[kind] = self.instructions.get(kind, 0) + n

    @property
    def saturations(self) -> int:
        return self.mac_saturations + self.accumulate_saturations + self.simd_saturations

    def to_json_dict(self) -> dict:
        return {
            "instructions": dict(self.instructions),
            "mac_saturations": self.mac_saturations,
            "accumulate_saturations": self.accumulate_saturations,
            "simd_saturations": self.simd_saturations,
        }


@dataclass
class StepTimings:
    """Emulator wall time per step kind: {kind: [instructions, seconds]}."""

    kinds: Dict[str, List[float]] = field(default_factory=dict)

    def add(self, kind: str, n: int, seconds: float) -> None:
        entry = self.kinds.setdefault(kind, [0, 0.0])
        entry[0] += n
        entry[1] += seconds

    def table(self) -> str:
        rows = [f"{'step kind':<28} {'instructions':>12} {'ms':>9} {'us/instr':>9}"]
        for kind, (n, sec) in sorted(self.kinds.items()):
            rows.append(f"{kind:<28} {int(n):>12} {sec * 1e3:>9.2f} {sec * 1e6 / max(n, 1):>9.3f}")
        return "\n".join(rows)


def _storage_dtype(arch: Arch) -> np.dtype:
    dt = arch.dtype
    if dt.bits == 8 * dt.bytes_per_scalar:
        return np.dtype(f"<i{dt.bytes_per_scalar}")
    return np.dtype(f"<u{dt.bytes_per_scalar}")  # FP18BP10: 18 bits in a 32-bit slot


class Dram:
    """A DRAM as vectors of raw scalars stored in their file/bus encoding.

    Wraps a caller-provided writable buffer (bytearray, numpy array, memoryview) so that an
    emulated board can share it with its driver, or allocates `depth` zero vectors.
    """

    def __init__(self, arch: Arch, depth: int, buffer=None):
        self.dtype = arch.dtype
        self.array_size = arch.array_size
        storage = _storage_dtype(arch)
        if buffer is None:
            flat = np.zeros(depth * arch.array_size, dtype=storage)
        else:
            mv = memoryview(buffer).cast("B")
            if mv.readonly:
                raise EmulatorError("DRAM buffer must be writable")
            n = mv.nbytes // arch.vector_bytes
            flat = np.frombuffer(mv, dtype=storage, count=n * arch.array_size)
        self.vectors = flat.reshape(-1, arch.array_size)
        self._sign_extend = self.dtype.bits != 8 * self.dtype.bytes_per_scalar
        self._mask = (1 << self.dtype.bits) - 1

    @property
    def depth(self) -> int:
        return self.vectors.shape[0]

    def check(self, max_index: int, what: str) -> None:
        if max_index >= self.depth:
            raise EmulatorError(f"{what}: DRAM vector {max_index} is past the end of the memory ({self.depth} vectors)")

    def read(self, idx) -> np.ndarray:
        v = self.vectors[idx].astype(np.int64)
        if self._sign_extend:
            v = np.where(v > self.dtype.max_raw, v - (1 << self.dtype.bits), v)
        return v

    def write(self, idx, raw: np.ndarray) -> None:
        raw = np.asarray(raw, dtype=np.int64)
        self.vectors[idx] = (raw & self._mask) if self._sign_extend else raw

    def write_bytes(self, base: int, data: bytes) -> None:
        """Copy file bytes (e.g. a .tdata) to vectors starting at `base`."""
        n = len(data) // (self.array_size * self.vectors.itemsize)
        if n:
            self.check(base + n - 1, "load")
            self.vectors[base : base + n] = np.frombuffer(data, dtype=self.vectors.dtype, count=n * self.array_size).reshape(n, -1)


class Machine:
    """The TCU state: local memory, accumulators, array weights, SIMD registers, DRAM0/DRAM1."""

    def __init__(self, arch: Arch, dram0=None, dram1=None):
        self.arch = arch
        self.dtype = arch.dtype
        A = arch.array_size
        self.local = np.zeros((arch.local_depth, A), dtype=np.int64)
        self.acc = np.zeros((arch.accumulator_depth, A), dtype=np.int64)
        self.weights = np.zeros((A + 1, A), dtype=np.int64)  # row 0 bias, row k+1 input lane k
        self.registers = np.zeros((max(arch.simd_registers_depth, 1), A), dtype=np.int64)  # row r-1 = R<r>
        self.dram0 = Dram(arch, arch.dram0_depth, dram0)
        self.dram1 = Dram(arch, arch.dram1_depth, dram1)
        self.config: Dict[int, int] = {}
        self.counters = Counters()

    def execute(self, program: Union[bytes, Sequence[Instruction], "Plan"], timings: Optional["StepTimings"] = None,
                refuse_timing_hazards: bool = True) -> None:
        """Run a program (`.tprog` bytes, decoded instructions or a prepared `Plan`); with
        `timings`, add the wall time and instruction count of every step kind to it.
        `refuse_timing_hazards=False` computes even what the RTL would get wrong (for tests that
        compare arithmetic with the scalar reference on arbitrary programs)."""
        plan = program if isinstance(program, Plan) else build_plan(program, self.arch, refuse_timing_hazards)
        if not plan.arch.same_hardware(self.arch):
            raise EmulatorError("plan was built for another architecture")
        if timings is None:
            for step in plan.steps:
                step.run(self)
            return
        for step in plan.steps:
            start = time.perf_counter()
            step.run(self)
            timings.add(step.kind, step.n, time.perf_counter() - start)

    # saturation helper shared by the steps (and by tensil.batch's machine)
    def sat(self, wide: np.ndarray, counter: str) -> np.ndarray:
        """`wide` clipped to the data type's range, the clipped values counted in `counter`
        (`wide` itself, not a copy, when nothing needs clipping: the usual case)."""
        lo, hi = self.dtype.min_raw, self.dtype.max_raw
        if wide.size == 0 or (wide.min() >= lo and wide.max() <= hi):
            return wide
        out = np.clip(wide, lo, hi)
        n = int(np.count_nonzero(out != wide))
        setattr(self.counters, counter, getattr(self.counters, counter) + n)
        return out


# ------------------------------------------------------------------------------ plan steps


def _generations(targets: np.ndarray) -> Optional[List[np.ndarray]]:
    """None when all targets are distinct; otherwise index groups such that applying them in
    order, each group at once, equals applying the targets one by one in order."""
    if targets.size == np.unique(targets).size:
        return None
    order = np.argsort(targets, kind="stable")
    sorted_t = targets[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_t)) + 1]
    first = np.repeat(starts, np.diff(np.r_[starts, sorted_t.size]))
    rank = np.empty_like(order)
    rank[order] = np.arange(sorted_t.size) - first
    return [np.flatnonzero(rank == r) for r in range(int(rank.max()) + 1)]


def _expand(addrs: Sequence[int], strides: Sequence[int], sizes: Sequence[int]) -> np.ndarray:
    """Concatenated vector addresses `addr + i*2^stride`, i = 0..size, of many instructions."""
    counts = np.asarray(sizes, dtype=np.int64) + 1
    starts = np.repeat(np.asarray(addrs, dtype=np.int64), counts)
    steps = np.repeat(np.left_shift(1, np.asarray(strides, dtype=np.int64)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    return starts + (np.arange(int(counts.sum()), dtype=np.int64) - first) * steps


def _as_slice(idx: np.ndarray) -> Union[slice, np.ndarray]:
    """`idx` as a slice when it is a run of consecutive addresses (numpy then copies blocks
    instead of gathering or scattering vector by vector), else `idx` itself."""
    n = idx.size
    if n and int(idx[-1]) - int(idx[0]) == n - 1 and (n == 1 or bool(np.all(np.diff(idx) == 1))):
        return slice(int(idx[0]), int(idx[0]) + n)
    return idx


def _per_vector(values: Sequence, sizes: Sequence[int], dtype) -> np.ndarray:
    """One value per instruction repeated for each of its size+1 vectors."""
    return np.repeat(np.asarray(values, dtype=dtype), np.asarray(sizes, dtype=np.int64) + 1)


def _fixed_work_dtype(arch: Arch) -> np.dtype:
    """int32 when every MAC intermediate fits (FP8BP4, FP16BP8), else int64."""
    w, bp = arch.dtype.bits, arch.dtype.frac_bits
    # |x*y| <= 2^(2(w-1)), |y << bp| <= 2^(w-1+bp), the rounding adds less than 2^bp
    widest = (1 << (2 * (w - 1))) + (1 << (w - 1 + bp)) + (1 << bp)
    return np.dtype(np.int32) if widest < 2**31 else np.dtype(np.int64)


class _ArrayRun:
    """A maximal run of LoadWeights and MatMuls. Neither writes local memory, so every weight
    state the MatMuls use is a gather from local memory (or zeros, or the weights before the
    run), and all MatMul vectors of the run go through the array chain at once, each with its
    own weight state; accumulator writes are then applied in program order."""

    kind = "MatMul+LoadWeight"

    def __init__(self, instrs: Sequence[Union[MatMul, LoadWeight]], arch: Arch):
        rows = arch.array_size + 1
        self.n_matmul = sum(isinstance(i, MatMul) for i in instrs)
        self.n_load = len(instrs) - self.n_matmul
        # row sources relative to the start of the run: 0 = old row `index`, 1 = zero, 2 = local[index]
        source = [0] * rows
        index = list(range(rows))
        group_source, group_index = [], []
        fresh = True
        matmuls: List[MatMul] = []
        group: List[int] = []
        for ins in instrs:
            if isinstance(ins, LoadWeight):
                count = min(ins.size + 1, rows)
                step = 1 << ins.local_stride
                pushed = [(ins.local_addr + j * step) % arch.local_depth for j in range(count)]
                source = [1 if ins.zeroes else 2] * count + source[: rows - count]
                index = pushed + index[: rows - count]
                fresh = True
                continue
            if fresh:
                group_source.append(source)
                group_index.append(index)
                fresh = False
            matmuls.append(ins)
            group.append(len(group_source) - 1)
        self.final_source, self.final_index = np.array(source, dtype=np.int8), np.array(index, dtype=np.int64)
        if not self.n_matmul:
            return
        self.group_source = np.array(group_source, dtype=np.int8)
        self.group_index = np.array(group_index, dtype=np.int64)
        sizes = [mm.size for mm in matmuls]
        self.x_idx = _expand([mm.local_addr for mm in matmuls], [mm.local_stride for mm in matmuls], sizes)
        self.x_idx %= arch.local_depth
        self.zero = _per_vector([mm.zeroes for mm in matmuls], sizes, bool)
        self.any_zero = bool(self.zero.any())
        self.t_idx = _expand([mm.acc_addr for mm in matmuls], [mm.acc_stride for mm in matmuls], sizes)
        self.t_idx %= arch.accumulator_depth
        self.accum = _per_vector([mm.accumulate for mm in matmuls], sizes, bool)
        self.all_accum = bool(self.accum.all())
        self.none_accum = not self.accum.any()
        # vectors are in program order, so each weight state's vectors are one contiguous block
        self.group_counts = np.bincount(_per_vector(group, sizes, np.int64), minlength=len(group_source))
        self.single_group = len(group_source) == 1
        self.generations = _generations(self.t_idx)
        self.work = _fixed_work_dtype(arch)

    @property
    def n(self) -> int:
        return self.n_matmul + self.n_load

    @staticmethod
    def _states(m: Machine, source: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Weight states (..., A+1, A) from row sources and the weights before the run."""
        out = np.zeros(source.shape + (m.arch.array_size,), dtype=np.int64)
        old, local = source == 0, source == 2
        out[old] = m.weights[index[old]]
        out[local] = m.local[index[local]]
        return out

    def run(self, m: Machine) -> None:
        if self.n_load:
            m.counters.count("LoadWeight", self.n_load)
        if self.n_matmul:
            self._matmul(m)
        m.weights = self._states(m, self.final_source, self.final_index)

    def _matmul(self, m: Machine) -> None:
        bp = m.dtype.frac_bits
        lo, hi = m.dtype.min_raw, m.dtype.max_raw
        states = self._states(m, self.group_source, self.group_index).astype(self.work)  # (G, A+1, A)
        xt = m.local[self.x_idx].T.astype(self.work)  # (A, N): lane k of every vector, contiguous
        if self.any_zero:
            xt[:, self.zero] = 0

        def per_vector(rows: np.ndarray) -> np.ndarray:
            return rows[0] if self.single_group else np.repeat(rows, self.group_counts, axis=0)

        y = np.empty((xt.shape[1], m.arch.array_size), dtype=self.work)
        y[...] = per_vector(states[:, 0])  # the bias row
        wide = np.empty_like(y)
        tmp = np.empty_like(y)
        n_sat = 0
        for k in range(m.arch.array_size):
            wk = states[:, k + 1]
            if not wk.any():
                continue  # mac(x, 0, y) = y exactly
            np.multiply(xt[k][:, None], per_vector(wk), out=wide)
            np.left_shift(y, bp, out=tmp)
            wide += tmp
            if bp:  # round half to even at bit bp (see tensil.fixed.round_shift_even)
                np.right_shift(wide, bp, out=tmp)
                tmp &= 1
                tmp += (1 << (bp - 1)) - 1
                wide += tmp
                wide >>= bp
            np.clip(wide, lo, hi, out=y)
            n_sat += int(np.count_nonzero(y != wide))
        m.counters.mac_saturations += n_sat
        m.counters.count("MatMul", self.n_matmul)
        y = y.astype(np.int64)
        if self.generations is None:
            self._write(m, slice(None), y)
        else:
            for g in self.generations:
                self._write(m, g, y[g])

    def _write(self, m: Machine, sel, y: np.ndarray) -> None:
        t = self.t_idx[sel]
        if self.none_accum:
            m.acc[t] = y
            return
        if self.all_accum:
            m.acc[t] = m.sat(m.acc[t] + y, "accumulate_saturations")
            return
        add = self.accum[sel]  # only accumulating vectors add (and count their saturations)
        y = y.copy()
        y[add] = m.sat(m.acc[t[add]] + y[add], "accumulate_saturations")
        m.acc[t] = y


class _DataMoves:
    """Consecutive DataMoves of one direction."""

    def __init__(self, instrs: Sequence[DataMove], arch: Arch):
        self.n = len(instrs)
        self.flow = DataFlow(instrs[0].flow)
        sizes = [d.size for d in instrs]
        self.local_idx = _expand([d.local_addr for d in instrs], [d.local_stride for d in instrs], sizes)
        self.local_idx %= arch.local_depth
        other = _expand([d.addr for d in instrs], [d.stride for d in instrs], sizes)
        if not self.flow.is_dram:
            other = other % arch.accumulator_depth
        self.other_idx = other
        self.max_other = int(other.max())
        self.generations = _generations(self.local_idx if self.flow.to_local else self.other_idx)
        # (local, other) addresses of each generation, runs of consecutive addresses as slices
        self.moves = [(_as_slice(self.local_idx[sel]), _as_slice(self.other_idx[sel]))
                      for sel in ([slice(None)] if self.generations is None else self.generations)]

    @property
    def kind(self) -> str:
        return f"DataMove({self.flow.name})"

    def run(self, m: Machine) -> None:
        f = self.flow
        m.counters.count(f"DataMove({f.name})", self.n)
        dram = m.dram0 if f in (DataFlow.DRAM0_TO_LOCAL, DataFlow.LOCAL_TO_DRAM0) else m.dram1
        if f.is_dram:
            dram.check(self.max_other, f"DataMove {f.name}")
        for li, oi in self.moves:
            if f in (DataFlow.DRAM0_TO_LOCAL, DataFlow.DRAM1_TO_LOCAL):
                m.local[li] = dram.read(oi)
            elif f in (DataFlow.LOCAL_TO_DRAM0, DataFlow.LOCAL_TO_DRAM1):
                dram.write(oi, m.local[li])
            elif f == DataFlow.ACC_TO_LOCAL:
                m.local[li] = m.acc[oi]
            elif f == DataFlow.LOCAL_TO_ACC:
                m.acc[oi] = m.local[li]
            else:  # LOCAL_TO_ACC_ACCUMULATE
                m.acc[oi] = m.sat(m.acc[oi] + m.local[li], "accumulate_saturations")


def _alu(op: SimdOp, L, R, m: Machine) -> np.ndarray:
    dt = m.dtype
    one = dt.scale
    if op == SimdOp.ZERO:
        return np.zeros((), dtype=np.int64)
    if op == SimdOp.MOVE:
        return L
    if op == SimdOp.NOT:
        return np.where(L == 0, one, 0)
    if op == SimdOp.AND:
        return np.where((L != 0) & (R != 0), one, 0)
    if op == SimdOp.OR:
        return np.where((L != 0) | (R != 0), one, 0)
    if op == SimdOp.INCREMENT:
        return m.sat(L + one, "simd_saturations")
    if op == SimdOp.DECREMENT:
        return m.sat(L - one, "simd_saturations")
    if op == SimdOp.ADD:
        return m.sat(L + R, "simd_saturations")
    if op == SimdOp.SUBTRACT:
        return m.sat(L - R, "simd_saturations")
    if op == SimdOp.MULTIPLY:
        bp = dt.frac_bits
        wide = L * R  # a new array (int32 in tensil.batch for data types up to 16 bits, where it fits)
        if bp:  # round half to even at bit bp, in place: (wide + half + ((wide >> bp) & 1)) >> bp
            odd = wide >> bp
            odd &= 1
            odd += (1 << (bp - 1)) - 1
            wide += odd
            wide >>= bp
        return m.sat(wide, "simd_saturations")
    if op == SimdOp.ABS:
        return np.where(L == dt.min_raw, dt.min_raw, np.abs(L))  # -min wraps to min on the RTL
    if op == SimdOp.GREATER:
        return np.where(L > R, one, 0)
    if op == SimdOp.GREATER_EQUAL:
        return np.where(L >= R, one, 0)
    if op == SimdOp.MIN:
        return np.minimum(L, R)
    if op == SimdOp.MAX:
        return np.maximum(L, R)
    raise EmulatorError(f"ALU op {op!r} has no defined result")  # NoOp never reaches here


def _sources(s: Simd) -> tuple:
    """Register codes (>= 1) the instruction reads."""
    arity = SimdOp(s.op).arity
    used = (s.left,) if arity == 1 else (s.left, s.right) if arity == 2 else ()
    return tuple(r for r in used if r)


class _SimdBlock:
    """q periods of the same p SIMD instructions, executed slot by slot, each slot vectorised
    over the periods. Valid when (checked by `_simd_block_ok`) no register value flows from one
    period to the next and no accumulator address written in one period is touched in another."""

    kind = "SIMD"

    def __init__(self, instrs: Sequence[Simd], period: int, arch: Arch):
        self.n = len(instrs)
        self.period = period
        q = len(instrs) // period
        self.q = q
        depth = arch.accumulator_depth
        self.slots = []
        for s in range(period):
            group = instrs[s::period]
            first = group[0]
            if first.op == SimdOp.NOOP:  # no flags (else it would have raised): no effect
                continue
            self.slots.append(
                (
                    SimdOp(first.op),
                    first.left,
                    first.right,
                    first.dest,
                    first.read,
                    first.write,
                    first.accumulate,
                    _read_index(np.array([g.read_addr % depth for g in group], dtype=np.int64)),
                    _as_slice(np.array([g.write_addr % depth for g in group], dtype=np.int64)),
                )
            )

    def run(self, m: Machine) -> None:
        shape = (self.q,) + m.acc.shape[1:]  # one accumulator vector per slot (per image in tensil.batch)
        regs: Dict[int, np.ndarray] = {}

        def reg(r: int) -> np.ndarray:
            if r not in regs:
                regs[r] = np.broadcast_to(m.registers[r - 1], shape)
            return regs[r]

        for op, left, right, dest, read, write, accumulate, ridx, widx in self.slots:
            inp = _read(m.acc, ridx, shape) if read else None
            L = inp if left == 0 else reg(left)
            R = inp if right == 0 else reg(right)
            res = np.broadcast_to(_alu(op, L, R, m), shape)
            if dest:
                regs[dest] = res
            if write:
                m.acc[widx] = m.sat(m.acc[widx] + res, "accumulate_saturations") if accumulate else res
        for r, v in regs.items():
            m.registers[r - 1] = v[-1]
        m.counters.count("SIMD", self.n)


def _read_index(idx: np.ndarray) -> Union[int, slice, np.ndarray]:
    """How a SIMD slot reads its accumulator addresses: one address for every period (a
    constant such as an activation's slope), a run of consecutive ones, or a gather."""
    return int(idx[0]) if bool(np.all(idx == idx[0])) else _as_slice(idx)


def _read(acc: np.ndarray, idx: Union[int, slice, np.ndarray], shape: tuple) -> np.ndarray:
    """The vectors a SIMD slot reads, as a copy (a register may keep them while later slots
    write the accumulators)."""
    if isinstance(idx, int):
        return np.broadcast_to(acc[idx].copy(), shape)
    return acc[idx].copy() if isinstance(idx, slice) else acc[idx]


def _simd_block_ok(instrs: Sequence[Simd], period: int, depth: int) -> bool:
    """Whether executing `instrs` (whole periods of `period`) slot-wise equals sequential order."""
    p = period
    q = len(instrs) // p
    if q == 1:
        return True
    slot = [s for s in instrs[:p] if s.op != SimdOp.NOOP]  # NoOp (no flags) has no effect
    written_before: set = set()
    all_written = {s.dest for s in slot if s.dest}
    for s in slot:
        for r in _sources(s):
            if r in all_written and r not in written_before:
                return False  # a register value carried from the previous period
        if s.dest:
            written_before.add(s.dest)
    addrs, periods, is_write = [], [], []
    for i, s in enumerate(instrs):
        if s.read:
            addrs.append(s.read_addr % depth), periods.append(i // p), is_write.append(False)
        if s.write:
            addrs.append(s.write_addr % depth), periods.append(i // p), is_write.append(True)
    if not any(is_write):
        return True
    a, per, w = np.array(addrs), np.array(periods), np.array(is_write)
    touched = np.isin(a, a[w])
    a, per = a[touched], per[touched]
    order = np.lexsort((per, a))
    a, per = a[order], per[order]
    same_addr = a[1:] == a[:-1]
    return not np.any(same_addr & (per[1:] != per[:-1]))


def _simd_key(s: Simd) -> tuple:
    return (s.op, s.left, s.right, s.dest, s.read, s.write, s.accumulate)


def _plan_simd_run(run: Sequence[Simd], arch: Arch, steps: list) -> None:
    """Cut a run of SIMD instructions into the largest valid periodic blocks (else singles)."""
    keys = [_simd_key(s) for s in run]
    i, n = 0, len(run)
    depth = arch.accumulator_depth
    while i < n:
        best_p, best_q = 1, 1
        for p in range(1, min(MAX_SIMD_PERIOD, (n - i) // 2) + 1):
            if keys[i + p] != keys[i]:
                continue  # not a period
            q = 1
            while i + (q + 1) * p <= n and keys[i + q * p : i + (q + 1) * p] == keys[i : i + p]:
                q += 1
            if q >= 2 and q * p > best_p * best_q:
                best_p, best_q = p, q
                if 2 * q * p >= n - i:
                    break  # covers at least half of what is left: good enough, keep planning linear
        block = run[i : i + best_p * best_q]
        while best_q > 1 and not _simd_block_ok(block, best_p, depth):
            best_q //= 2
            block = run[i : i + best_p * best_q]
        if best_q == 1:
            best_p = 1
            block = run[i : i + 1]
        steps.append(_SimdBlock(block, best_p, arch))
        i += len(block)


class _Single:
    """Configure and NoOp."""

    n = 1

    def __init__(self, instr: Instruction):
        self.instr = instr
        self.kind = type(instr).__name__

    def run(self, m: Machine) -> None:
        if isinstance(self.instr, Configure):
            m.config[self.instr.register] = self.instr.value
            m.counters.count("Configure")
        else:
            m.counters.count("NoOp")


@dataclass
class Plan:
    """A program cut into bulk steps for one architecture (reusable across runs)."""

    arch: Arch
    steps: list
    n_instructions: int


def build_plan(program: Union[bytes, Sequence[Instruction]], arch: Arch, refuse_timing_hazards: bool = True) -> Plan:
    """Decode (if bytes), refuse stalling instructions and the RTL's read-after-write hazards
    (`tensil.hazards.check_sequence`), and group into bulk steps."""
    instrs = decode(program, Layout.from_arch(arch)) if isinstance(program, (bytes, bytearray, memoryview)) else list(program)
    try:
        if refuse_timing_hazards:
            check_sequence(instrs, arch)
    except HazardError as e:  # the RTL computes these differently (lost updates, stale data)
        raise EmulatorError(str(e)) from None
    steps: list = []
    i, n = 0, len(instrs)
    while i < n:
        kind = type(instrs[i])
        j = i + 1
        if kind is DataMove:
            flow = DataFlow(instrs[i].flow)
            while j < n and type(instrs[j]) is DataMove and DataFlow(instrs[j].flow) == flow:
                j += 1
        elif kind in (MatMul, LoadWeight):
            while j < n and type(instrs[j]) in (MatMul, LoadWeight):
                j += 1
        elif kind is Simd:
            while j < n and type(instrs[j]) is Simd:
                j += 1
        run = instrs[i:j]
        if kind in (MatMul, LoadWeight):
            steps.append(_ArrayRun(run, arch))
        elif kind is DataMove:
            steps.append(_DataMoves(run, arch))
        elif kind is Simd:
            for k, s in enumerate(run):
                reason = simd_stall_reason(s)
                if reason:
                    raise EmulatorError(f"instruction {i + k} would stall the hardware: {reason}")
                if max(s.left, s.right, s.dest) > arch.simd_registers_depth:
                    raise EmulatorError(f"instruction {i + k}: SIMD register beyond simd_registers_depth")
            _plan_simd_run(run, arch, steps)
        elif kind in (Configure, NoOp):
            steps.append(_Single(instrs[i]))
        else:
            raise EmulatorError(f"instruction {i} is not an instruction: {instrs[i]!r}")
        i = j
    return Plan(arch=arch, steps=steps, n_instructions=n)


# ------------------------------------------------------------------------------ whole models


class ModelRunner:
    """Runs a loaded `.tmodel` like Tensil's driver: constants into DRAM1 (and local memory when
    `load_consts_to_local`) once, then per run: inputs packed into DRAM0, the program (planned
    once), outputs read back. Like the hardware, memories are not cleared between runs."""

    def __init__(self, loaded: LoadedModel, machine: Optional[Machine] = None, check_hazards: bool = True):
        self.loaded = loaded
        self.arch = loaded.arch
        self.machine = machine or Machine(self.arch)
        instrs = loaded.instructions()
        if check_hazards:  # refuse what the hardware would get wrong instead of computing it right
            check_program(instrs, self.arch)  # every rule, the timing ones included
        # `check_hazards=False`: the caller has checked the program (e.g. the compiler's `emit`)
        self.plan = build_plan(instrs, self.arch, refuse_timing_hazards=False)
        self.input_overflows = 0
        self._load_consts()

    def _load_consts(self) -> None:
        man, m = self.loaded.manifest, self.machine
        if not man.consts:
            return
        base = man.consts[0].base
        m.dram1.write_bytes(base, self.loaded.consts)
        if man.load_consts_to_local:
            n = man.consts[0].size
            if base + n > self.arch.local_depth:
                raise ModelError(f"{man.name}: {n} constant vectors do not fit in local memory")
            m.local[base : base + n] = m.dram1.read(np.arange(base, base + n))

    def write_input(self, name: str, x: np.ndarray) -> None:
        spans = self.loaded.manifest.spans(name)
        raw, n_over = host_layout.pack_input(x, self.arch)
        need = sum(s.size for s in spans)
        if raw.shape[0] != need:
            raise ModelError(
                f"input {name!r} of shape {tuple(np.shape(x))} packs into {raw.shape[0]} vectors, the model expects {need}"
            )
        self.input_overflows += n_over
        idx = np.concatenate([np.arange(s.base, s.base + s.size) for s in spans])
        self.machine.dram0.write(idx, raw)

    def read_output(self, name: str, shape: Optional[Sequence[int]] = None) -> np.ndarray:
        """Float output: ONNX-shaped when `shape` is given, else the flat vectors (padding lanes
        included, like the upstream driver)."""
        spans = self.loaded.manifest.spans(name, outputs=True)
        idx = np.concatenate([np.arange(s.base, s.base + s.size) for s in spans])
        raw = self.machine.dram0.read(idx)
        if shape is None:
            return fixed.dequantize(raw, self.arch.dtype).astype(np.float32).ravel()
        return host_layout.unpack_output(raw, shape, self.arch)

    def run(
        self, inputs: Mapping[str, np.ndarray], output_shapes: Optional[Mapping[str, Sequence[int]]] = None
    ) -> Dict[str, np.ndarray]:
        missing = [n for n in self.loaded.manifest.input_names if n not in inputs]
        if missing:
            raise ModelError(f"missing input(s) {', '.join(missing)}")
        for name in self.loaded.manifest.input_names:
            self.write_input(name, inputs[name])
        self.machine.execute(self.plan)
        shapes = output_shapes or {}
        return {n: self.read_output(n, shapes.get(n)) for n in self.loaded.manifest.output_names}


def run_model(
    loaded: LoadedModel,
    inputs: Mapping[str, np.ndarray],
    output_shapes: Optional[Mapping[str, Sequence[int]]] = None,
) -> Dict[str, np.ndarray]:
    """One inference of a loaded model on a fresh machine: float inputs as the ONNX model takes
    them, float outputs (ONNX-shaped where `output_shapes` names them, else flat vectors)."""
    return ModelRunner(loaded).run(inputs, output_shapes)
