"""Batch emulation: one program run on many images at once, bit-identical to one at a time.

`BatchRunner.run` gives, for every image, exactly what `tensil.emulator.ModelRunner.run` gives
on a freshly loaded model (and so what a reused runner gives for any program that reads only
memory it wrote, as the compiled backbones in the tests do), and the same counters summed over
the images. It executes the same `Plan` (`tensil.emulator.build_plan`, hazards checked once
per load) on a machine whose memories carry a batch axis: local memory, accumulators, array
weights and SIMD registers are `(depth, A, B)`, the images last, so every step moves B times
more data per numpy call and every inner loop of the kernel below runs over the images with
unit stride. DataMoves and SIMD blocks are the emulator's own steps. DRAM1 stays one shared
copy when the program never writes it (the constants); a runner reuses its machine from batch
to batch, cleared.

The arithmetic of MatMul goes through `_array_chain`, a numba kernel. The array computes, per
output lane, `y = bias; y = sat(RNE(y + x[k]*w[k] / 2^bp))` for k = 0..A-1 (rounding and
saturation at every step, ties to even of the sum; `tensil.fixed.mac`). With the partial sum
held as `M + y` where M = 1.5 * 2^52, float64 addition rounds to an integer with ties to even
of the whole sum, i.e. it performs that RNE itself, and `x*w/2^bp` is exact in float64 for
data types up to 26 bits: one fused multiply-add per MAC (fusing changes nothing: the product
is exact). This holds only while no step saturates, so the kernel bounds every partial sum of
a row first (|bias| + sum |x[k]| max|w[k]| + A/2); rows that could reach the range, and data
types over 26 bits, take the exact integer chain (the emulator's formula, step by step,
counting saturations). Lanes whose weights are all zero are skipped (they add exactly 0). The
order of the additions of each lane stays k = 0..A-1, so the rounding is the same; the
accumulator writes keep program order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

import numba
import numpy as np

from tensil import fixed
from tensil import layout as host_layout
from tensil.arch import Arch
from tensil.emulator import (
    Counters,
    EmulatorError,
    Machine,
    Plan,
    _ArrayRun,
    _DataMoves,
    _as_slice,
    _SimdBlock,
    _Single,
    build_plan,
)
from tensil.hazards import check_program
from tensil.isa import DataFlow
from tensil.tmodel import LoadedModel, ModelError

DEFAULT_BATCH = 64  # images per machine: 25 MB of local memory on custom_perf, about 200 MB of DRAM0 for ResNet-9 16 fm at 84x84
FAST_MAX_BITS = 26  # float64 holds x*w/2^bp and the magic-offset sums exactly up to this width
_MAGIC = 1.5 * 2.0**52  # float64 spacing is exactly 1 in [2^52, 2^53)
_MAGIC_BITS = 0x4338000000000000  # the bits of _MAGIC as an int64: those of M + y are _MAGIC_BITS + y
_BLOCK = 256  # values per inner loop of the array kernel (vectors of one weight state side by side)


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _array_chain(local, x_idx, zero, acc, t_idx, accum, group, states, wf, bias, rowmax, biasmax,
                 in_lanes, n_in, out_lanes, n_out, bits, bp, fast):  # pragma: no cover (compiled; tests compare it with the emulator)
    """The MatMuls of one `_ArrayRun` on every image: vector n reads `local[x_idx[n]]` (zeros
    when `zero[n]`), goes through weight state `group[n]` and writes or accumulates into
    `acc[t_idx[n]]`. Memories are `(depth, A, B)`, the images last. Up to `_BLOCK // B`
    consecutive vectors of one weight state go through the array side by side (a block of
    `(A, W)` floats), so that every inner loop runs over W values with unit stride; their
    results are then written to the accumulators one vector at a time in program order.
    states (G, A+1, A, Bw) int64 (row 0 the bias; Bw = 1 when every image has the same
    weights, else B) and their float forms: wf (G, A, A, Bw) = w[k, o] / 2^bp, bias (G, A, Bw)
    = bias + M, rowmax (G, A, Bw) = max_o |w[k, o]| / 2^bp, biasmax (G, Bw). in_lanes[g, :n_in[g]]
    are the input lanes with a nonzero weight, out_lanes[g, :n_out[g]] the output lanes with one
    (the others add exactly 0, or hold the bias). Returns (saturated MAC steps, saturated accumulations)."""
    N = x_idx.shape[0]
    A, B = local.shape[1], local.shape[2]
    per_image = states.shape[3] > 1
    lo = -(1 << (bits - 1))
    hi = (1 << (bits - 1)) - 1
    flo, fhi = float(lo), float(hi)
    half = (1 << (bp - 1)) - 1 if bp > 0 else 0
    limit = fhi - 1.0  # margin for the bound's own float rounding
    P = max(1, _BLOCK // B)
    xt = np.zeros((A, P * B), dtype=np.float64)  # the input vectors of a block, lane by lane
    ys = np.zeros((A, P * B), dtype=np.float64)  # their magic-offset partial sums
    yi = ys.view(np.int64)  # the bits of the partial sums
    bound = np.zeros(P * B, dtype=np.float64)
    mac_sat = 0
    acc_sat = 0
    n0 = 0
    while n0 < N:
        g = group[n0]
        n1 = n0 + 1
        while n1 < N and n1 - n0 < P and group[n1] == g:
            n1 += 1
        W = (n1 - n0) * B
        if fast:  # (data types up to FAST_MAX_BITS; wider ones take the exact chain only)
            for j in range(n1 - n0):  # gather the block's inputs as floats
                xs = local[x_idx[n0 + j]]
                for k in range(A):
                    xk = xt[k, j * B:(j + 1) * B]
                    if zero[n0 + j]:
                        xk[:] = 0.0
                    else:
                        for b in range(B):
                            xk[b] = xs[k, b]
            # bound every partial sum of every row: |bias| + A/2 + sum_k |x[k]| max_o |w[k, o]|
            if per_image:
                for e in range(W):
                    bound[e] = biasmax[g, e % B] + 0.5 * A
                for k in range(A):
                    for e in range(W):
                        bound[e] += abs(xt[k, e]) * rowmax[g, k, e % B]
            else:
                bound[:W] = biasmax[g, 0] + 0.5 * A
                for k in range(A):
                    r = rowmax[g, k, 0]
                    if r != 0.0:
                        xk = xt[k]
                        for e in range(W):
                            bound[e] += abs(xk[e]) * r
            # every output lane, step by step in k: ys[o] = M + y, rounded at each add
            for o in range(A):
                yo = ys[o]
                if per_image:
                    for e in range(W):
                        yo[e] = bias[g, o, e % B]
                else:
                    yo[:W] = bias[g, o, 0]
            ks, nk, os, no = in_lanes[g], n_in[g], out_lanes[g], n_out[g]
            i = 0
            while not per_image and i + 4 <= nk:  # four steps per pass over the partial sums, added in order
                x0, x1, x2, x3 = xt[ks[i]], xt[ks[i + 1]], xt[ks[i + 2]], xt[ks[i + 3]]
                k0, k1, k2, k3 = ks[i], ks[i + 1], ks[i + 2], ks[i + 3]
                jo = 0
                while jo + 2 <= no:
                    oa, ob = os[jo], os[jo + 1]
                    ya, yb = ys[oa], ys[ob]
                    a0, a1, a2, a3 = wf[g, k0, oa, 0], wf[g, k1, oa, 0], wf[g, k2, oa, 0], wf[g, k3, oa, 0]
                    b0, b1, b2, b3 = wf[g, k0, ob, 0], wf[g, k1, ob, 0], wf[g, k2, ob, 0], wf[g, k3, ob, 0]
                    for e in range(W):
                        u0, u1, u2, u3 = x0[e], x1[e], x2[e], x3[e]
                        ya[e] = (((ya[e] + u0 * a0) + u1 * a1) + u2 * a2) + u3 * a3
                        yb[e] = (((yb[e] + u0 * b0) + u1 * b1) + u2 * b2) + u3 * b3
                    jo += 2
                while jo < no:
                    o = os[jo]
                    yo = ys[o]
                    c0, c1, c2, c3 = wf[g, k0, o, 0], wf[g, k1, o, 0], wf[g, k2, o, 0], wf[g, k3, o, 0]
                    for e in range(W):
                        yo[e] = (((yo[e] + x0[e] * c0) + x1[e] * c1) + x2[e] * c2) + x3[e] * c3
                    jo += 1
                i += 4
            while i < nk:
                k = ks[i]
                xk = xt[k]
                for jo in range(no):
                    o = os[jo]
                    yo = ys[o]
                    if per_image:
                        for e in range(W):
                            yo[e] += xk[e] * wf[g, k, o, e % B]
                    else:
                        c = wf[g, k, o, 0]
                        for e in range(W):
                            yo[e] += xk[e] * c
                i += 1
        if not fast or bound[:W].max() >= limit:
            for e in range(W):  # rows that could saturate: the exact integer chain (tensil.fixed.mac step by step)
                if fast and bound[e] < limit:
                    continue
                n, b = n0 + e // B, e % B
                bw = b if per_image else 0
                for o in range(A):
                    v = states[g, 0, o, bw]
                    for k in range(A):
                        xin = 0 if zero[n] else local[x_idx[n], k, b]
                        m = xin * states[g, k + 1, o, bw] + (v << bp)
                        if bp > 0:
                            m = (m + half + ((m >> bp) & 1)) >> bp
                        if m > hi:
                            m = hi
                            mac_sat += 1
                        elif m < lo:
                            m = lo
                            mac_sat += 1
                        v = m
                    yi[o, e] = v + _MAGIC_BITS
        for j in range(n1 - n0):  # the accumulators, vector by vector in program order (exact in float64)
            out = acc[t_idx[n0 + j]]
            for o in range(A):
                oo = out[o]
                yo = ys[o, j * B:(j + 1) * B]
                if accum[n0 + j]:
                    for b in range(B):
                        s = float(oo[b]) + (yo[b] - _MAGIC)
                        acc_sat += (s > fhi) | (s < flo)
                        oo[b] = min(max(s, flo), fhi)
                else:
                    for b in range(B):
                        oo[b] = yo[b] - _MAGIC
        n0 = n1
    return mac_sat, acc_sat


def storage_dtype(arch: Arch) -> np.dtype:
    """int32 for data types up to 16 bits (every sum and SIMD product of two values fits), else
    int64: half the memory traffic of the batch machine's DRAMs, local memory and accumulators."""
    return np.dtype(np.int32) if arch.dtype.bits <= 16 else np.dtype(np.int64)


class BatchDram:
    """A DRAM of B images as raw values (`storage_dtype`): `(vectors, A, B)`, or one shared `(vectors, A)`
    copy for a DRAM the program only reads. Only the vectors the program and the model's
    spans can touch are allocated; addresses past the architecture's depth raise like `Dram`."""

    def __init__(self, arch: Arch, depth: int, vectors: int, batch: int, shared: bool):
        self.depth = depth
        self.batch = batch
        self.shared = shared
        shape = (vectors, arch.array_size) if shared else (vectors, arch.array_size, batch)
        self.data = np.zeros(shape, dtype=storage_dtype(arch))

    def check(self, max_index: int, what: str) -> None:
        if max_index >= self.depth:
            raise EmulatorError(f"{what}: DRAM vector {max_index} is past the end of the memory ({self.depth} vectors)")

    def read(self, idx: np.ndarray) -> np.ndarray:
        v = self.data[idx]
        return np.broadcast_to(v[:, :, None], v.shape + (self.batch,)) if self.shared else v

    def write(self, idx: np.ndarray, raw: np.ndarray) -> None:
        if self.shared:
            raise EmulatorError("internal: write to a DRAM planned as read-only")
        self.data[idx] = raw


@dataclass
class DramNeeds:
    """How many vectors of each DRAM a plan (and a model's spans) can touch, and whether it writes DRAM1."""

    dram0: int = 0
    dram1: int = 0
    writes_dram1: bool = False

    @classmethod
    def of(cls, plan: Plan) -> "DramNeeds":
        needs = cls()
        for step in plan.steps:
            if isinstance(step, _DataMoves) and step.flow.is_dram:
                top = step.max_other + 1
                if step.flow in (DataFlow.DRAM0_TO_LOCAL, DataFlow.LOCAL_TO_DRAM0):
                    needs.dram0 = max(needs.dram0, top)
                else:
                    needs.dram1 = max(needs.dram1, top)
                    needs.writes_dram1 |= step.flow == DataFlow.LOCAL_TO_DRAM1
        return needs


class BatchMachine:
    """The TCU state of B images: the memories of `tensil.emulator.Machine` with a batch axis."""

    def __init__(self, arch: Arch, batch: int, needs: DramNeeds):
        self.arch = arch
        self.dtype = arch.dtype
        self.batch = batch
        A = arch.array_size
        self.local = np.zeros((arch.local_depth, A, batch), dtype=storage_dtype(arch))
        self.acc = np.zeros((arch.accumulator_depth, A, batch), dtype=storage_dtype(arch))
        self.weights = np.zeros((A + 1, A, batch), dtype=storage_dtype(arch))  # row 0 bias, row k+1 input lane k
        self.registers = np.zeros((max(arch.simd_registers_depth, 1), A, batch), dtype=np.int64)
        self.dram0 = BatchDram(arch, arch.dram0_depth, min(needs.dram0, arch.dram0_depth), batch, shared=False)
        self.dram1 = BatchDram(arch, arch.dram1_depth, min(needs.dram1, arch.dram1_depth), batch,
                               shared=not needs.writes_dram1)
        self.config: Dict[int, int] = {}
        self.counters = Counters()

    def reset(self) -> None:
        """Back to the state of a new machine (all memories zero) without new allocations: the
        pages of a fresh DRAM0 of hundreds of MB cost more to fault in than to clear."""
        for memory in (self.local, self.acc, self.weights, self.registers, self.dram0.data, self.dram1.data):
            memory.fill(0)
        self.config = {}
        self.counters = Counters()

    sat = Machine.sat  # clip and count, for the SIMD and accumulate paths shared with the emulator

    def execute(self, plan: Plan) -> None:
        if not plan.arch.same_hardware(self.arch):
            raise EmulatorError("plan was built for another architecture")
        for step in plan.steps:
            if isinstance(step, _ArrayRun):
                _run_array(step, self)
            elif isinstance(step, (_DataMoves, _SimdBlock, _Single)):
                step.run(self)  # the emulator's own steps: this machine has Machine's memories, sat, config and counters
            else:
                raise EmulatorError(f"internal: no batch form of plan step {step.kind}")


# ------------------------------------------------------------------------------ steps


def _states(m: BatchMachine, source: np.ndarray, index: np.ndarray, images=slice(None)) -> np.ndarray:
    """Weight states (..., A+1, A, B) from row sources (0 old row, 1 zero, 2 local row), of the
    given images only (e.g. `slice(0, 1)`)."""
    old, local = source == 0, source == 2
    out = np.zeros(source.shape + m.weights[:1, :, images].shape[1:], dtype=m.local.dtype)
    out[old] = m.weights[index[old], :, images]
    out[local] = m.local[index[local], :, images]
    return out


@numba.njit(cache=True, nogil=True)
def _same_for_every_image(memory, rows):  # pragma: no cover (compiled; the batch tests cover both outcomes)
    """Whether rows `memory[r]` (A, B) hold the same values for every image b."""
    for r in rows:
        row = memory[r]
        for k in range(row.shape[0]):
            first = row[k, 0]
            for b in range(1, row.shape[1]):
                if row[k, b] != first:
                    return False
    return True


def _shared_states(m: BatchMachine, source: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Weight states (G, A+1, A, Bw): Bw = 1 when every row they take is the same for every
    image (weights loaded from the constants), else B. Checked row by row without gathering."""
    rows = np.unique(index[source == 2])
    old = np.unique(index[source == 0])
    if _same_for_every_image(m.local, rows) and _same_for_every_image(m.weights, old):
        return _states(m, source, index, slice(0, 1))
    return _states(m, source, index)


def _run_array(step: _ArrayRun, m: BatchMachine) -> None:
    if step.n_load:
        m.counters.count("LoadWeight", step.n_load)
    if step.n_matmul:
        _matmul(step, m)
    m.weights = _states(m, step.final_source, step.final_index)


def _lanes(used: np.ndarray) -> tuple:
    """(G, A) flags -> each row's flagged lanes in order (padded) and their count."""
    order = np.argsort(~used, axis=1, kind="stable")
    return np.ascontiguousarray(order), used.sum(axis=1)


def _matmul(step: _ArrayRun, m: BatchMachine) -> None:
    dt, A = m.dtype, m.arch.array_size
    states = _shared_states(m, step.group_source, step.group_index).astype(np.int64)  # the exact chain's products fit
    group = np.repeat(np.arange(len(step.group_counts), dtype=np.int64), step.group_counts)
    scale = float(1 << dt.frac_bits)
    wf = states[:, 1:] / scale
    bias = states[:, 0] + _MAGIC
    rowmax = np.abs(states[:, 1:]).max(axis=2) / scale
    biasmax = np.abs(states[:, 0]).max(axis=1).astype(np.float64)
    nonzero = (states[:, 1:] != 0).any(axis=3)  # (G, k, o)
    in_lanes, n_in = _lanes(nonzero.any(axis=2))
    out_lanes, n_out = _lanes(nonzero.any(axis=1))
    mac_sat, acc_sat = _array_chain(m.local, step.x_idx, step.zero, m.acc, step.t_idx, step.accum, group, states,
                                    wf, bias, rowmax, biasmax, in_lanes, n_in, out_lanes, n_out,
                                    dt.bits, dt.frac_bits, dt.bits <= FAST_MAX_BITS)
    m.counters.mac_saturations += int(mac_sat)
    m.counters.accumulate_saturations += int(acc_sat)
    m.counters.count("MatMul", step.n_matmul)


# ------------------------------------------------------------------------------ whole models


def add_counters(total: Counters, part: Counters, images: int) -> None:
    """Add a batch machine's counters (instructions counted once per batch) for `images` images."""
    for kind, n in part.instructions.items():
        total.count(kind, n * images)
    total.mac_saturations += part.mac_saturations
    total.accumulate_saturations += part.accumulate_saturations
    total.simd_saturations += part.simd_saturations


@dataclass
class BatchRunner:
    """`ModelRunner` for many images: `run({name: x})` where `x[i]` is image i's input, exactly
    as `ModelRunner.run` takes it; returns `{name: y}` with `y[i]` image i's output. Each batch
    of `batch_size` images runs on a freshly loaded machine. `counters` and `input_overflows`
    add up over every image run."""

    loaded: LoadedModel
    check_hazards: bool = True
    batch_size: int = DEFAULT_BATCH
    counters: Counters = field(default_factory=Counters)
    input_overflows: int = 0
    _machines: Dict[int, BatchMachine] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        self.arch = self.loaded.arch
        instrs = self.loaded.instructions()
        if self.check_hazards:  # once per load, as ModelRunner does
            check_program(instrs, self.arch)
        self.plan = build_plan(instrs, self.arch, refuse_timing_hazards=False)
        man = self.loaded.manifest
        self.needs = DramNeeds.of(self.plan)
        ends = [s.base + s.size for s in (*man.inputs, *man.outputs)]
        self.needs.dram0 = max([self.needs.dram0, *ends])
        if man.consts:
            self.needs.dram1 = max(self.needs.dram1, man.consts[0].base + man.consts[0].size)
        self._consts = None
        if man.consts:
            raw = fixed.from_bytes(self.loaded.consts, self.arch.dtype).reshape(-1, self.arch.array_size)
            self._consts = (man.consts[0].base, raw)
            if man.load_consts_to_local and man.consts[0].base + raw.shape[0] > self.arch.local_depth:
                raise ModelError(f"{man.name}: {raw.shape[0]} constant vectors do not fit in local memory")

    def _machine(self, batch: int) -> BatchMachine:
        """A machine of `batch` images in the state of a freshly loaded model (reused across batches)."""
        m = self._machines.get(batch)
        if m is None:
            m = self._machines[batch] = BatchMachine(self.arch, batch, self.needs)
        else:
            m.reset()
        if self._consts is not None:
            base, raw = self._consts
            n = raw.shape[0]
            m.dram1.check(base + n - 1, "load")
            if m.dram1.shared:
                m.dram1.data[base:base + n] = raw
            else:
                m.dram1.data[base:base + n] = raw[:, :, None]
            if self.loaded.manifest.load_consts_to_local:
                m.local[base:base + n] = raw[:, :, None]
        return m

    def _vector_index(self, name: str, outputs: bool) -> np.ndarray:
        spans = self.loaded.manifest.spans(name, outputs=outputs)
        return np.concatenate([np.arange(s.base, s.base + s.size) for s in spans])

    def run(self, inputs: Mapping[str, np.ndarray],
            output_shapes: Optional[Mapping[str, Sequence[int]]] = None) -> Dict[str, np.ndarray]:
        man = self.loaded.manifest
        missing = [n for n in man.input_names if n not in inputs]
        if missing:
            raise ModelError(f"missing input(s) {', '.join(missing)}")
        counts = {len(inputs[n]) for n in man.input_names}
        if len(counts) != 1:
            raise ModelError(f"inputs hold different numbers of images: {sorted(counts)}")
        total = counts.pop()
        parts: Dict[str, List[np.ndarray]] = {n: [] for n in man.output_names}
        for start in range(0, total, self.batch_size):
            chunk = {n: inputs[n][start:start + self.batch_size] for n in man.input_names}
            for name, out in self._run_batch(chunk, output_shapes or {}).items():
                parts[name].append(out)
        return {n: np.concatenate(p) if p else np.zeros((0,)) for n, p in parts.items()}

    def _run_batch(self, inputs: Mapping[str, np.ndarray], shapes: Mapping[str, Sequence[int]]) -> Dict[str, np.ndarray]:
        batch = len(next(iter(inputs.values())))
        m = self._machine(batch)
        for name, xs in inputs.items():
            idx = self._vector_index(name, outputs=False)
            packed = np.empty((idx.size, self.arch.array_size, batch), dtype=m.dram0.data.dtype)
            for b, x in enumerate(xs):
                raw, n_over = host_layout.pack_input(x, self.arch)
                if raw.shape[0] != idx.size:
                    raise ModelError(f"input {name!r} of shape {tuple(np.shape(x))} packs into {raw.shape[0]} vectors, "
                                     f"the model expects {idx.size}")
                self.input_overflows += n_over
                packed[..., b] = raw
            m.dram0.data[_as_slice(idx)] = packed
        m.execute(self.plan)
        add_counters(self.counters, m.counters, batch)
        out = {}
        for name in self.loaded.manifest.output_names:
            raw = m.dram0.data[self._vector_index(name, outputs=True)].transpose(2, 0, 1)  # (B, vectors, A)
            shape = shapes.get(name)
            if shape is None:
                out[name] = fixed.dequantize(raw, self.arch.dtype).astype(np.float32).reshape(batch, -1)
            else:
                out[name] = np.stack([host_layout.unpack_output(r, shape, self.arch) for r in raw])
        return out
