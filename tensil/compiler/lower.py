"""Lowering: fused layers -> Tensil instructions, with memory planning.

Plan (see `memory.py` for the activation layout):
* Every activation is a planar padded `Buffer` homed in local memory while everything fits,
  so consecutive layers never round-trip through DRAM. When the live set does not fit
  (large inputs), the largest live buffer is spilled to DRAM0 and the plan restarts (cheap
  planning-only "dry" attempts first, then one emitting run); layers then stream bands of
  rows through local staging.
* A layer is computed per band of output rows and per output-channel tile: its weight tiles
  (bias + the real input rows, see `weight_tiles`) are staged in local memory once per layer
  when they fit, else once per band and output tile, else in groups of tiles (very wide
  layers); for each (term, kernel tap, input tile) one LoadWeight and a MatMul per output
  row -- or, with `merge_rows`, one MatMul for the whole band when input and output rows
  have the same pitch (stride-1 convolutions): the padding columns then receive junk that
  the border pass clears. Every term accumulates into the same accumulators; only the
  first weight tile carries the bias and writes without `accumulate`.
* Borders of the output's padded band are cleared with `zeroes` MatMuls (bias register
  zero), activations run on the SIMD unit over valid vectors only, max pooling reads the
  conv band and writes the pooled band, then one acc->local move (and local->DRAM0 when
  spilled) stores the band.
* Graph inputs are copied from the host layout into their padded buffer by a prologue
  (zero borders come from a zero block in DRAM1); graph outputs are copied back out to
  the host layout as they are produced.
Reserved: local vector `local_depth-1` and DRAM0 vectors `dram0_depth-2..-1` (the PYNQ
driver's completion probe), accumulator vectors `acc_depth-2..-1` (SIMD constants).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tensil.arch import Arch
from tensil.axi import count_4k_crossings
from tensil.compiler.errors import CompileError
from tensil.compiler.graph import GlobalPool, Layer, Network, Term
from tensil.compiler.bands import Band, band_of, runs, split_bands, valid_mask
from tensil.compiler.memory import Allocator, Buffer, ConstPool, HostRegion, tiles
from tensil.compiler.program import Group, ProgramBuilder
from tensil.compiler.simd import emit_activation, emit_max_pool
from tensil.isa import DataFlow, Instruction

CONST_ACC_SLOTS = 2  # accumulator vectors reserved at the top for SIMD constants


@dataclass
class LoweringOptions:
    merge_rows: bool = False  # one MatMul per (tap, tile) over a whole band when pitches agree
    avoid_4k: bool = True  # cut DRAM moves / shift DRAM0 data so no AXI burst crosses 4 KiB


@dataclass
class Lowered:
    """Result of the lowering: everything the emitter and the report need."""

    instrs: list[Instruction]
    consts: ConstPool
    inputs: list[HostRegion]
    outputs: list[HostRegion]
    groups: list[Group]
    buffers: dict[str, Buffer]
    local_peak: int
    acc_peak: int
    dram0_size: int
    spilled: list[str] = field(default_factory=list)


class _Spill(Exception):
    """Raised inside a lowering attempt when a step cannot fit; the planner spills and retries."""

    def __init__(self, step: str, need: str, tensor: str | None = None):
        super().__init__(step)
        self.step = step
        self.need = need
        self.tensor = tensor  # the buffer that could not be placed, if that was the problem


class _Attempt:
    """One lowering attempt with a fixed choice of spilled tensors."""

    def __init__(self, net: Network, arch: Arch, spilled: set[str], options: LoweringOptions, dry: bool = False,
                 dram0_origin: int = 0):
        self.net, self.arch, self.opt = net, arch, options
        self.a = arch.array_size
        self.dry = dry
        self.p = ProgramBuilder(arch, dry=dry, avoid_4k=options.avoid_4k)
        self.consts = ConstPool(arch, dry=dry)
        self.local = Allocator(arch.local_depth - 1, "local memory")
        self.acc_budget = arch.accumulator_depth - CONST_ACC_SLOTS
        self.acc_const = arch.accumulator_depth - CONST_ACC_SLOTS
        self.acc_peak = 0
        self.buffers = self.make_buffers(spilled)
        self.dram0_top = dram0_origin  # first DRAM0 vector the plan may use
        self.hosts_in: list[HostRegion] = []
        self.hosts_out: dict[str, HostRegion] = {}
        self.zero_block: tuple[int, int] | None = None  # (dram1 addr, size)

    # ---------------------------------------------------------------- planning helpers
    def make_buffers(self, spilled: set[str]) -> dict[str, Buffer]:
        pads: dict[str, int] = {}
        for step in self.net.steps:
            for t in getattr(step, "terms", []):
                pads[t.input] = max(pads.get(t.input, 0), *t.pads)
        bufs = {}
        for name, (c, h, w) in self.net.shapes.items():
            bufs[name] = Buffer(name, c, h, w, pads.get(name, 0), tiles(c, self.a),
                                home="dram0" if name in spilled else "local")
        return bufs

    def dram0_alloc(self, size: int, what: str) -> int:
        base = self.dram0_top
        self.dram0_top += size
        if self.dram0_top > self.arch.dram0_depth - 2:
            raise CompileError(f"DRAM0 too small: {what} needs vectors up to {self.dram0_top}, "
                               f"{self.arch.dram0_depth - 2} usable")
        return base

    def place(self, buf: Buffer, step_name: str) -> None:
        if buf.home == "dram0":
            buf.base = self.dram0_alloc(buf.size, buf.tensor)
            return
        base = self.local.alloc(buf.size)
        if base is None:
            raise _Spill(step_name, f"{buf.size} local vectors for {buf.tensor}", buf.tensor)
        buf.base = base

    def scratch(self, size: int, step_name: str) -> int:
        base = self.local.alloc(max(size, 1))
        if base is None:
            raise _Spill(step_name, f"{size} local vectors of scratch")
        return base

    def use_acc(self, n: int) -> None:
        self.acc_peak = max(self.acc_peak, n)

    # ---------------------------------------------------------------- constants
    def zeros_in_dram1(self, n: int) -> int:
        if self.zero_block is None or self.zero_block[1] < n:
            self.zero_block = (self.consts.add_raw(np.zeros((n, self.a), dtype=np.int64)), n)
        return self.zero_block[0]

    def const_to_acc(self, values: list[float], owner: str, local_tmp: int) -> list[int]:
        """Broadcast scalars into the reserved accumulator slots (via one local vector)."""
        addrs = []
        for i, v in enumerate(values):
            d1 = self.consts.add(np.full((1, self.a), v), owner)
            acc = self.acc_const + i
            self.p.move(DataFlow.DRAM1_TO_LOCAL, local_tmp, d1, 1)
            self.p.move(DataFlow.LOCAL_TO_ACC, local_tmp, acc, 1)
            addrs.append(acc)
        return addrs

    def tile_rows(self, layer: Layer) -> list[int]:
        """Real input channels of every weight tile, in the order (term, kernel tap, input tile)."""
        a = self.a
        return [min(a, t.weight.shape[1] - c * a) for t in layer.terms
                for _ in range(t.weight.shape[2] * t.weight.shape[3]) for c in range(tiles(t.weight.shape[1], a))]

    def weight_tiles(self, layer: Layer) -> tuple[np.ndarray | None, list[int], list[int]]:
        """All weight tiles of a layer, output-tile major, as (Cot, V, A) floats, with each tile's
        offset and length inside an output tile's block of V vectors (None in a dry run).

        The first tile is [bias, W[0], ..., W[c-1]], every other one [W[0], ..., W[c-1]] for the
        c real input channels of its input tile. LoadWeight pushes a block highest address first,
        so W[k] ends in column k once a bias is pushed last: the first tile's own, or a `zeroes`
        push for the others (no zero vectors stored). Columns c..A-1 keep older weights, which
        is harmless because lanes >= C of every activation are exactly zero (0 * w adds nothing).
        """
        a = self.a
        co = layer.out_channels
        cot = tiles(co, a)
        rows = self.tile_rows(layer)
        sizes = [r + (1 if k == 0 else 0) for k, r in enumerate(rows)]
        offsets = [int(o) for o in np.cumsum([0] + sizes[:-1])]
        if self.dry:
            return None, offsets, sizes
        tiles_w = []
        for t in layer.terms:
            _, ci, kh, kw = t.weight.shape
            cit = tiles(ci, a)
            w = np.zeros((cot * a, cit * a, kh, kw))
            w[:co, :ci] = t.weight
            # (Cot, A_o, Cit, A_k, kh, kw) -> (kh, kw, Cit, Cot, A_k, A_o)
            w = w.reshape(cot, a, cit, a, kh, kw).transpose(4, 5, 2, 0, 3, 1)
            for i in range(kh):
                for j in range(kw):
                    for c in range(cit):
                        tiles_w.append(w[i, j, c, :, :min(a, ci - c * a), :])
        bias = np.zeros((cot, 1, a))
        bias.reshape(-1)[:co] = layer.bias
        tiles_w[0] = np.concatenate([bias, tiles_w[0]], axis=1)
        return np.concatenate(tiles_w, axis=1), offsets, sizes

    # ---------------------------------------------------------------- host I/O
    def load_input(self, name: str) -> None:
        """Prologue: host NHWC region -> the input's padded buffer (local or DRAM0)."""
        c, h, w = self.net.shapes[name]
        buf = self.buffers[name]
        host = HostRegion(name, c, h, w, buf.tiles, self.dram0_alloc(h * w * buf.tiles, name))
        self.hosts_in.append(host)
        g = self.p.begin(f"input {name}", "input")
        self.place(buf, g.name)
        if buf.home == "local":
            self.fill_from_host(buf, host, band_of(buf, 0, h), lambda t, r: buf.addr(t, r, 0))
        else:
            rows = max(1, min(h, (self.local.largest_free() // (buf.tiles * buf.wp)) - 2 * buf.pad))
            for band in split_bands(buf, rows):
                n_rows = band.pr1 - band.pr0
                base = self.scratch(buf.tiles * n_rows * buf.wp, g.name)

                def staged(t: int, r: int, base=base, first=band.pr0, n_rows=n_rows) -> int:
                    return base + (t * n_rows + r - first) * buf.wp

                self.fill_from_host(buf, host, band, staged)
                for t in range(buf.tiles):
                    self.p.move(DataFlow.LOCAL_TO_DRAM0, base + t * n_rows * buf.wp, buf.addr(t, band.pr0, 0),
                                n_rows * buf.wp)
                self.local.free(base)
        self.p.end(g)

    def fill_from_host(self, buf: Buffer, host: HostRegion, band: Band, row_addr) -> None:
        """Write the band's padded rows at `row_addr(tile, padded_row)`: zero borders, host pixels."""
        border = runs(~valid_mask(buf, band))
        if border:
            zero = self.zeros_in_dram1(max(n for _, n in border))
        for t in range(buf.tiles):
            base = row_addr(t, band.pr0)
            for start, n in border:
                self.p.move(DataFlow.DRAM1_TO_LOCAL, base + start, zero, n)
            self._move_rows(DataFlow.DRAM0_TO_LOCAL, buf, host, band, t, row_addr)

    def store_output(self, buf: Buffer, band: Band, tile: int, row_addr) -> None:
        """Copy the band's valid vectors of one tile to the graph output's host region."""
        host = self.hosts_out.get(buf.tensor)
        if host is None:
            return
        self._move_rows(DataFlow.LOCAL_TO_DRAM0, buf, host, band, tile, row_addr)

    def _move_rows(self, flow: DataFlow, buf: Buffer, host: HostRegion, band: Band, tile: int, row_addr) -> None:
        """Move the band's valid rows of one tile between local memory and the host region: one
        DataMove when neither side has padding or interleaved tiles, else one per row."""
        if buf.pad == 0 and host.tiles == 1:
            self.p.move(flow, row_addr(tile, band.r0), host.addr(tile, band.r0, 0), (band.r1 - band.r0) * buf.width)
            return
        for y in range(band.r0, band.r1):
            self.p.move(flow, row_addr(tile, y + buf.pad) + buf.pad, host.addr(tile, y, 0), buf.width, step=host.tiles)

    # ---------------------------------------------------------------- layers
    def layer_geometry(self, layer: Layer) -> tuple[int, int]:
        """(conv output rows, conv output width) before pooling."""
        t0 = layer.terms[0]
        _, h, w = self.net.shapes[t0.input]
        kh, kw = t0.weight.shape[2:]
        return ((h + t0.pads[0] + t0.pads[2] - kh) // t0.strides[0] + 1,
                (w + t0.pads[1] + t0.pads[3] - kw) // t0.strides[1] + 1)

    def conv_rows(self, layer: Layer, band: Band) -> tuple[int, int]:
        if not layer.pool:
            return band.r0, band.r1
        _, (kh, _), (sh, _) = layer.pool
        return band.r0 * sh, (band.r1 - 1) * sh + kh

    def input_rows(self, term: Term, cr0: int, cr1: int) -> tuple[int, int]:
        """Padded input rows [first, last+1) that conv rows [cr0, cr1) read."""
        buf = self.buffers[term.input]
        kh = term.weight.shape[2]
        sh, pt = term.strides[0], term.pads[0]
        return cr0 * sh - pt + buf.pad, (cr1 - 1) * sh + kh - pt + buf.pad

    def layer_needs(self, layer: Layer, rows: int, out: Buffer) -> tuple[int, int]:
        """(accumulator vectors, local staging vectors) for bands of `rows` output rows."""
        _, wc = self.layer_geometry(layer)
        region = (rows + 2 * out.pad) * out.wp
        acc = region
        if layer.pool:
            _, (kh, _), (sh, _) = layer.pool
            acc += ((rows - 1) * sh + kh) * wc
        stage = 0
        for t in layer.terms:
            ib = self.buffers[t.input]
            if ib.home == "dram0":
                if layer.pool:
                    _, (kh, _), (sh, _) = layer.pool
                    c_rows = (rows - 1) * sh + kh
                else:
                    c_rows = rows
                kh_t = t.weight.shape[2]
                stage += ib.tiles * ((c_rows - 1) * t.strides[0] + kh_t) * ib.wp
        if out.home == "dram0":
            stage += region
        return acc, stage + 1  # + one vector for SIMD constants

    def plan_layer(self, layer: Layer, out: Buffer, tile_vectors: int, sizes: list[int]) -> tuple[str, int, int, int]:
        """(weight mode, rows per band, local vectors for weights, staging vectors).

        Modes: 'layer' = all weight tiles staged once; 'tile' = one output tile's weights at a
        time (reloaded per band); 'group' = runs of weight tiles that fit (very wide layers).
        Fewest bands wins, then the mode that loads weights least often.
        """
        cot = out.tiles
        free = self.local.largest_free()
        best = None
        for mode, w_need in (("layer", tile_vectors * cot), ("tile", tile_vectors)):
            for rows in range(out.height, 0, -1):
                acc, stage = self.layer_needs(layer, rows, out)
                if acc <= self.acc_budget and w_need + stage <= free:
                    if best is None or -(-out.height // rows) < -(-out.height // best[1]):
                        best = (mode, rows, w_need, stage)
                    break
        if best is not None:
            return best
        for rows in range(out.height, 0, -1):
            acc, stage = self.layer_needs(layer, rows, out)
            if acc <= self.acc_budget and free - stage >= max(sizes):
                return "group", rows, free - stage, stage
        staging = self.layer_needs(layer, 1, out)[1]
        raise _Spill(layer.name, f"room for one output row and one weight tile (staging {staging} vectors)")

    def lower_layer(self, layer: Layer) -> None:
        a, p = self.a, self.p
        out = self.buffers[layer.output]
        cot = out.tiles
        blocks, offsets, sizes = self.weight_tiles(layer)
        g = p.begin(layer.name, "layer", macs=self.layer_macs(layer), sources=list(layer.sources))
        self.place(out, layer.name)
        tile_vectors = sum(sizes)
        mode, rows, w_need, stage = self.plan_layer(layer, out, tile_vectors, sizes)
        g.info.update(bands=-(-out.height // rows), band_rows=rows, weights=mode)
        w_base = self.scratch(w_need + stage, layer.name)
        const_tmp = w_base + w_need + stage - 1
        if blocks is None:
            w_dram = self.consts.reserve(cot * tile_vectors)
        else:
            w_dram = self.consts.add(blocks.reshape(-1, a), layer.name)
        groups = self.weight_groups(sizes, w_need) if mode == "group" else [0]
        if mode == "layer":
            p.move(DataFlow.DRAM1_TO_LOCAL, w_base, w_dram, cot * tile_vectors)
        act_slots = self.load_act_consts(layer, const_tmp)
        for band in split_bands(out, rows):
            stage_at = w_base + w_need
            in_addr = self.stage_inputs(layer, band, stage_at)
            out_stage = stage_at + sum(s for s in self.staged_sizes(layer, band))
            for ct in range(cot):
                src = w_dram + ct * tile_vectors
                if mode == "layer":
                    tile_addr = lambda k, base=w_base + ct * tile_vectors: base + offsets[k]  # noqa: E731
                elif mode == "tile":
                    p.move(DataFlow.DRAM1_TO_LOCAL, w_base, src, tile_vectors)
                    tile_addr = lambda k: w_base + offsets[k]  # noqa: E731
                else:
                    tile_addr = self.group_loader(groups, offsets, sizes, w_base, src)
                self.band_tile(layer, out, band, ct, tile_addr, sizes, in_addr, out_stage, act_slots)
        self.local.free(w_base)
        p.end(g)

    @staticmethod
    def weight_groups(sizes: list[int], budget: int) -> list[int]:
        """First tile index of each run of consecutive tiles whose vectors fit `budget`."""
        starts, used = [0], 0
        for k, n in enumerate(sizes):
            if used + n > budget:
                starts.append(k)
                used = 0
            used += n
        return starts

    def group_loader(self, starts: list[int], offsets: list[int], sizes: list[int], w_base: int, src: int):
        """tile index -> local address, staging each group of tiles when its first tile comes."""
        bounds = starts + [len(sizes)]
        group_of = {}
        for gi in range(len(starts)):
            for k in range(bounds[gi], bounds[gi + 1]):
                group_of[k] = gi

        def addr(k: int) -> int:
            gi = group_of[k]
            first = bounds[gi]
            if k == first:
                last = bounds[gi + 1] - 1
                n = offsets[last] + sizes[last] - offsets[first]
                self.p.move(DataFlow.DRAM1_TO_LOCAL, w_base, src + offsets[first], n)
            return w_base + offsets[k] - offsets[first]

        return addr

    def staged_sizes(self, layer: Layer, band: Band) -> list[int]:
        cr0, cr1 = self.conv_rows(layer, band)
        sizes = []
        for t in layer.terms:
            ib = self.buffers[t.input]
            if ib.home == "dram0":
                f, l = self.input_rows(t, cr0, cr1)
                sizes.append(ib.tiles * (l - f) * ib.wp)
        return sizes

    def stage_inputs(self, layer: Layer, band: Band, at: int) -> list:
        """Per term: a function (tile, padded_row) -> local address of that input row."""
        cr0, cr1 = self.conv_rows(layer, band)
        fns = []
        for t in layer.terms:
            ib = self.buffers[t.input]
            if ib.home == "local":
                fns.append(lambda tile, r, b=ib: b.addr(tile, r, 0))
                continue
            f, l = self.input_rows(t, cr0, cr1)
            n = (l - f) * ib.wp
            for tile in range(ib.tiles):
                self.p.move(DataFlow.DRAM0_TO_LOCAL, at + tile * n, ib.addr(tile, f, 0), n)
            fns.append(lambda tile, r, base=at, n=n, f=f, wp=ib.wp: base + tile * n + (r - f) * wp)
            at += ib.tiles * n
        return fns

    def load_act_consts(self, layer: Layer, tmp: int) -> list[int]:
        if not layer.act or layer.act[0] == "relu":
            return []
        if layer.act[0] == "leaky":
            return self.const_to_acc([layer.act[1]], layer.name, tmp)
        dt = self.arch.dtype
        lo = max(layer.act[1], dt.min_value)
        hi = min(layer.act[2], dt.max_value)
        return self.const_to_acc([lo, hi], layer.name, tmp)

    def band_tile(self, layer: Layer, out: Buffer, band: Band, ct: int, tile_addr, sizes: list[int],
                  in_addr: list, out_stage: int, act_slots: list[int]) -> None:
        a, p = self.a, self.p
        _, wc = self.layer_geometry(layer)
        cr0, cr1 = self.conv_rows(layer, band)
        region_rows = band.pr1 - band.pr0
        region = region_rows * out.wp
        if layer.pool:
            conv_base, out_base = 0, (cr1 - cr0) * wc
            conv_pitch = wc
            acc_of = lambda r, c: conv_base + (r - cr0) * wc + c  # noqa: E731
        else:
            out_base = 0
            conv_pitch = out.wp
            acc_of = lambda r, c: (r + out.pad - band.pr0) * out.wp + out.pad + c  # noqa: E731
        # A band of one output vector would accumulate every weight tile into one address,
        # which the RTL gets wrong for back-to-back MatMuls: alternate with a second accumulator.
        n_tiles = sum(t.weight.shape[2] * t.weight.shape[3] * tiles(t.weight.shape[1], a) for t in layer.terms)
        alternate = (cr1 - cr0) * wc == 1 and n_tiles > 1
        spare = out_base + region  # the second accumulator, right after the band
        self.use_acc(out_base + region + (1 if alternate else 0))
        if self.dry:
            return
        k = 0
        for ti, term in enumerate(layer.terms):
            ib = self.buffers[term.input]
            _, ci, kh, kw = term.weight.shape
            sh, sw = term.strides
            for i in range(kh):
                for j in range(kw):
                    for cit in range(tiles(ci, a)):
                        p.load_weights(tile_addr(k), sizes[k])
                        if k:
                            p.zero_bias()
                        first = k == 0 or (alternate and k == 1)
                        col0 = j - term.pads[1] + ib.pad
                        merge = (self.opt.merge_rows and sh == 1 and sw == 1 and conv_pitch == ib.wp)
                        if alternate:
                            r_in = cr0 * sh + i - term.pads[0] + ib.pad
                            p.matmul(in_addr[ti](cit, r_in) + col0, spare if k % 2 else acc_of(cr0, 0), 1,
                                     accumulate=not first)
                        elif merge:
                            r_in = cr0 * sh + i - term.pads[0] + ib.pad
                            n = (cr1 - cr0 - 1) * conv_pitch + wc
                            p.matmul(in_addr[ti](cit, r_in) + col0, acc_of(cr0, 0), n, accumulate=not first)
                        else:
                            for r in range(cr0, cr1):
                                r_in = r * sh + i - term.pads[0] + ib.pad
                                p.matmul(in_addr[ti](cit, r_in) + col0, acc_of(r, 0), wc, accumulate=not first,
                                         local_step=sw)
                        k += 1
        last_has_bias = len(sizes) == 1 and bool(np.any(layer.bias[ct * a:(ct + 1) * a]))
        if out.home == "local":
            dest = out.addr(ct, band.pr0, 0)
            row_addr = lambda t, r: out.addr(t, r, 0)  # noqa: E731
        else:
            dest = out_stage
            row_addr = lambda t, r: out_stage + (r - band.pr0) * out.wp  # noqa: E731
        if alternate:  # add the second accumulator into the first, through the output's first vector
            p.move(DataFlow.ACC_TO_LOCAL, dest, spare, 1)
            p.move(DataFlow.LOCAL_TO_ACC_ACCUMULATE, dest, acc_of(cr0, 0), 1)
        if layer.pool:
            self.max_pool(layer, band, out, acc_of, out_base)
        border = runs(~valid_mask(out, band))
        if border:
            if last_has_bias:
                p.zero_bias()
            for start, n in border:
                p.matmul(0, out_base + start, n, accumulate=False, zeroes=True)
        self.activation(layer, out, band, out_base, act_slots)
        to_dram = out.home == "dram0" or out.tensor in self.hosts_out
        p.move(DataFlow.ACC_TO_LOCAL, dest, out_base, region, read_back_to_dram=to_dram)
        if out.home == "dram0":
            p.move(DataFlow.LOCAL_TO_DRAM0, out_stage, out.addr(ct, band.pr0, 0), region)
        self.store_output(out, band, ct, row_addr)

    def activation(self, layer: Layer, out: Buffer, band: Band, base: int, slots: list[int]) -> None:
        if layer.act:
            addrs = [base + int(i) for i in np.flatnonzero(valid_mask(out, band).ravel())]
            emit_activation(self.p, layer.act[0], addrs, slots)

    def max_pool(self, layer: Layer, band: Band, out: Buffer, acc_of, out_base: int) -> None:
        _, (kh, kw), (sh, sw) = layer.pool
        windows = [([acc_of(r * sh + i, c * sw + j) for i in range(kh) for j in range(kw)],
                    out_base + (r + out.pad - band.pr0) * out.wp + out.pad + c)
                   for r in range(band.r0, band.r1) for c in range(out.width)]
        emit_max_pool(self.p, windows)

    def layer_macs(self, layer: Layer) -> int:
        if layer.copy:
            return 0
        hc, wc = self.layer_geometry(layer)
        return int(sum(np.count_nonzero(t.weight) for t in layer.terms)) * hc * wc

    # ---------------------------------------------------------------- global average pooling
    def gap_weights(self, hw: int) -> tuple[float, float]:
        """(per-pixel weight 2^-m, correction) with weight * correction = 1/hw, both exact or near."""
        m = min(max(math.ceil(math.log2(hw)), 0), self.arch.dtype.frac_bits)
        return 2.0 ** -m, (2.0 ** m) / hw

    def lower_gap(self, step: GlobalPool) -> None:
        a, p = self.a, self.p
        ib, out = self.buffers[step.input], self.buffers[step.output]
        if out.pad:
            raise CompileError(f"{step.name}: a padded consumer of a global pooling output is not supported")
        g = p.begin(step.name, "gap", macs=ib.channels * ib.height * ib.width, sources=list(step.sources))
        self.place(out, step.name)
        hw = ib.height * ib.width
        w, corr = self.gap_weights(hw)
        tiles_n = ib.tiles
        rows = ib.height
        if ib.home == "dram0":
            free = self.local.largest_free() - 3 * (a + 1) - tiles_n
            rows = max(1, min(ib.height, free // (ib.tiles * ib.wp)))
            if free < ib.tiles * ib.wp:
                raise _Spill(step.name, "room for one staged input row")
        n_stage = ib.tiles * rows * ib.wp if ib.home == "dram0" else 0
        scratch = self.scratch(2 * (a + 1) + tiles_n + n_stage, step.name)
        diag = np.zeros((a + 1, a))
        diag[1:] = np.eye(a) * w
        p.move(DataFlow.DRAM1_TO_LOCAL, scratch, self.consts.add(diag, step.name), a + 1)
        p.load_weights(scratch, a + 1)
        # One accumulator per tile, visited round robin so that no MatMul accumulates into the
        # address the previous one wrote (the RTL loses such updates); a single tile alternates
        # between two accumulators that are added together afterwards.
        banks = 1 if tiles_n > 1 else min(2, hw)
        self.use_acc(tiles_n * banks)
        first = [True] * (tiles_n * banks)
        stage = scratch + 2 * (a + 1) + tiles_n
        pixel = 0
        for y0 in range(0, ib.height, rows):
            y1 = min(ib.height, y0 + rows)
            n = (y1 - y0) * ib.wp
            if ib.home == "dram0":
                for t in range(tiles_n):
                    p.move(DataFlow.DRAM0_TO_LOCAL, stage + t * n, ib.addr(t, y0 + ib.pad, 0), n)
            for y in range(y0, y1):
                for x in range(ib.width):
                    for t in range(tiles_n):
                        if ib.home == "dram0":
                            src = stage + t * n + (y - y0) * ib.wp + x + ib.pad
                        else:
                            src = ib.addr(t, y + ib.pad, x + ib.pad)
                        acc = t + tiles_n * (pixel % banks)
                        p.matmul(src, acc, 1, accumulate=not first[acc])
                        first[acc] = False
                    pixel += 1
        if banks == 2:  # fold the second accumulator into the first (a saturating add)
            fold = scratch + 2 * (a + 1)
            p.move(DataFlow.ACC_TO_LOCAL, fold, tiles_n, tiles_n)
            p.move(DataFlow.LOCAL_TO_ACC_ACCUMULATE, fold, 0, tiles_n)
        q = self.arch.dtype.scale
        if round(corr * q) != q:
            corr_block = np.zeros((a + 1, a))
            corr_block[1:] = np.eye(a) * corr
            cw = scratch + a + 1
            p.move(DataFlow.DRAM1_TO_LOCAL, cw, self.consts.add(corr_block, step.name), a + 1)
            tmp = scratch + 2 * (a + 1)
            p.move(DataFlow.ACC_TO_LOCAL, tmp, 0, tiles_n)
            p.load_weights(cw, a + 1)
            p.matmul(tmp, 0, tiles_n, accumulate=False)
        g.info.update(gap_weight=w, gap_correction=corr)
        band = band_of(out, 0, 1)
        if out.home == "local":
            p.move(DataFlow.ACC_TO_LOCAL, out.base, 0, tiles_n)
            row_addr = lambda t, r: out.addr(t, r, 0)  # noqa: E731
        else:
            tmp = scratch + 2 * (a + 1)
            p.move(DataFlow.ACC_TO_LOCAL, tmp, 0, tiles_n)
            p.move(DataFlow.LOCAL_TO_DRAM0, tmp, out.base, tiles_n)
            row_addr = lambda t, r: tmp + t  # noqa: E731
        if out.tensor in self.hosts_out and out.height == out.width == 1:
            host = self.hosts_out[out.tensor]
            p.move(DataFlow.LOCAL_TO_DRAM0, row_addr(0, 0), host.base, tiles_n)
        else:
            for t in range(tiles_n):
                self.store_output(out, band, t, row_addr)
        self.local.free(scratch)
        p.end(g)

    # ---------------------------------------------------------------- driver
    def run(self) -> Lowered:
        net = self.net
        last_use: dict[str, int] = {}
        for i, step in enumerate(net.steps):
            for x in step.inputs:
                last_use[x] = i
        for name in net.inputs:
            self.load_input(name)
        for name in net.outputs:
            c, h, w = net.shapes[name]
            self.hosts_out[name] = HostRegion(name, c, h, w, tiles(c, self.a), 0)
        for name, host in self.hosts_out.items():
            host.base = self.dram0_alloc(host.size, name)
        for i, step in enumerate(net.steps):
            if isinstance(step, GlobalPool):
                self.lower_gap(step)
            else:
                self.lower_layer(step)
            for x in set(step.inputs):
                buf = self.buffers[x]
                if last_use[x] == i and buf.home == "local" and x not in net.outputs and buf.base >= 0:
                    self.local.free(buf.base)
                    buf.base = -2  # freed
        for name in net.inputs:
            if name not in last_use:
                raise CompileError(f"graph input {name!r} is not used")
        return Lowered(self.p.instrs, self.consts, self.hosts_in, [self.hosts_out[o] for o in net.outputs],
                       self.p.groups, self.buffers, self.local.peak, self.acc_peak + CONST_ACC_SLOTS, self.dram0_top)


def lower(net: Network, arch: Arch, options: LoweringOptions | None = None) -> Lowered:
    """Plan memory and generate the program; spill activations to DRAM0 until everything fits."""
    options = options or LoweringOptions()
    spilled: set[str] = set()
    while True:
        attempt = _Attempt(net, arch, spilled, options, dry=True)
        try:
            attempt.run()
            result = _Attempt(net, arch, spilled, options).run()  # same decisions, now emitting
            if options.avoid_4k:
                result = _shift_dram0_off_4k_crossings(result, lambda origin: _Attempt(
                    net, arch, spilled, options, dram0_origin=origin).run(), arch)
            result.spilled = sorted(spilled)
            return result
        except _Spill as s:
            candidates = [b for b in attempt.buffers.values() if b.home == "local" and b.base >= 0]
            if s.tensor is not None:
                candidates.append(attempt.buffers[s.tensor])
            if not candidates:
                raise CompileError(
                    f"{s.step}: the network does not fit the architecture (needs {s.need}; local memory "
                    f"{arch.local_depth}, accumulators {arch.accumulator_depth} vectors)"
                ) from None
            spilled.add(max(candidates, key=lambda b: b.size).tensor)


DRAM0_ORIGINS_TRIED = 8


def _shift_dram0_off_4k_crossings(result: Lowered, emit_at, arch: Arch) -> Lowered:
    """A move that *ends* on a crossing vector cannot be cut around it: try starting DRAM0's data
    a few vectors later and keep the plan with the fewest crossing bursts (cycles unchanged)."""
    best, best_n = result, count_4k_crossings(result.instrs, arch)
    for origin in range(1, DRAM0_ORIGINS_TRIED + 1):
        if best_n == 0:
            break
        candidate = emit_at(origin)
        n = count_4k_crossings(candidate.instrs, arch)
        if n < best_n:
            best, best_n = candidate, n
    return best
