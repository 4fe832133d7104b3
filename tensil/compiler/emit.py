"""Emission: a verified `MemoryPlan` -> Tensil instructions and the DRAM1 constants image.

Reads the plan, decides nothing about memory. Per step:

* graph input: the host region's pixels into the padded buffer (zero borders from a zero block
  in DRAM1), through the plan's staging bands when the buffer is in DRAM0;
* layer, per band of output rows and output-channel tile: for each (term, kernel tap, input
  tile) one LoadWeight and a MatMul per output row -- or, with `merge_rows`, one MatMul for
  the whole band when input and output rows have the same pitch (stride-1 convolutions: the
  padding columns then receive junk that the border pass clears). Only the first weight tile
  carries the bias and writes without `accumulate`. A band whose convolution output is one
  vector alternates two accumulators (the RTL loses back-to-back accumulations into one
  address) and adds them at the end. Then max pooling (SIMD over the conv rows), border
  clearing with `zeroes` MatMuls, the activation over valid vectors, one acc->local move, and
  local->DRAM0 when the output is spilled or a graph output;
* global average pooling: a MatMul per pixel and channel tile with weight 2^-m, tiles visited
  round robin (a single tile alternates two accumulators), then one exact correction MatMul.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tensil.arch import Arch
from tensil.compiler.bands import Band, band_of, runs, split_bands, valid_mask
from tensil.compiler.geometry import conv_geometry, conv_rows, input_rows, layer_macs, one_vector_band
from tensil.compiler.graph import Constant, GlobalPool, Layer, Network, Product, Upsample
from tensil.compiler.memory import Buffer, ConstPool, HostRegion, tiles
from tensil.compiler.plan import (CONST_ACC_SLOTS, ConstantPlan, InputPlan, LayerPlan, MemoryPlan, PoolPlan, ProductPlan,
                                  UpsamplePlan, WeightMode)
from tensil.compiler.program import Group, ProgramBuilder
from tensil.compiler.simd import emit_activation, emit_max_pool, emit_products
from tensil.isa import DataFlow, Instruction


@dataclass
class Lowered:
    """Result of the lowering: everything the encoder and the report need."""

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


@dataclass(frozen=True)
class BandFrame:
    """Where one band of one output tile lives in the accumulators."""

    out: Buffer
    band: Band
    cr0: int  # conv rows [cr0, cr1) computed for the band
    cr1: int
    wc: int  # conv output width
    pooled: bool

    @property
    def out_base(self) -> int:
        """First accumulator of the output region (after the conv rows when pooled)."""
        return (self.cr1 - self.cr0) * self.wc if self.pooled else 0

    @property
    def region(self) -> int:
        return (self.band.pr1 - self.band.pr0) * self.out.wp

    @property
    def conv_pitch(self) -> int:
        return self.wc if self.pooled else self.out.wp

    @property
    def spare(self) -> int:
        """The second accumulator of a one-vector band, right after the band."""
        return self.out_base + self.region

    def acc_of(self, r: int, c: int) -> int:
        """Accumulator of conv output row r, column c."""
        if self.pooled:
            return (r - self.cr0) * self.wc + c
        return (r + self.out.pad - self.band.pr0) * self.out.wp + self.out.pad + c


def gap_weights(hw: int, frac_bits: int) -> tuple[float, float]:
    """(per-pixel weight 2^-m, correction) with weight * correction = 1/hw, both exact or near."""
    m = min(max(math.ceil(math.log2(hw)), 0), frac_bits)
    return 2.0 ** -m, (2.0 ** m) / hw


class _Emitter:
    def __init__(self, net: Network, arch: Arch, plan: MemoryPlan, merge_rows: bool, avoid_4k: bool):
        self.net, self.arch, self.plan, self.merge_rows = net, arch, plan, merge_rows
        self.a = arch.array_size
        self.p = ProgramBuilder(arch, avoid_4k=avoid_4k)
        self.consts = ConstPool(arch)
        self.buffers = plan.buffers
        self.hosts_out = plan.hosts_out
        self.acc_const = arch.accumulator_depth - CONST_ACC_SLOTS  # reserved SIMD constant slots
        self.zero_block: tuple[int, int] | None = None  # (dram1 addr, size)

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
            self.p.move(DataFlow.DRAM1_TO_LOCAL, local_tmp, d1, 1)
            self.p.move(DataFlow.LOCAL_TO_ACC, local_tmp, self.acc_const + i, 1)
            addrs.append(self.acc_const + i)
        return addrs

    def load_act_consts(self, layer: Layer, tmp: int) -> list[int]:
        if not layer.act or layer.act[0] == "relu":
            return []
        if layer.act[0] == "leaky":
            return self.const_to_acc([layer.act[1]], layer.name, tmp)
        dt = self.arch.dtype
        return self.const_to_acc([max(layer.act[1], dt.min_value), min(layer.act[2], dt.max_value)], layer.name, tmp)

    def weight_blocks(self, layer: Layer) -> np.ndarray:
        """All weight tiles of a layer, output-tile major, as (Cot * V, A) floats.

        The first tile is [bias, W[0], ..., W[c-1]], every other one [W[0], ..., W[c-1]] for the
        c real input channels of its input tile. LoadWeight pushes a block highest address first,
        so W[k] ends in column k once a bias is pushed last: the first tile's own, or a `zeroes`
        push for the others (no zero vectors stored). Columns c..A-1 keep older weights, which
        is harmless because lanes >= C of every activation are exactly zero (0 * w adds nothing).
        """
        a, co = self.a, layer.out_channels
        cot = tiles(co, a)
        tiles_w = []
        for t in layer.terms:
            _, ci, kh, kw = t.weight.shape
            cit = tiles(ci, a)
            w = np.zeros((cot * a, cit * a, kh, kw))
            w[:co, :ci] = t.weight
            w = w.reshape(cot, a, cit, a, kh, kw).transpose(4, 5, 2, 0, 3, 1)  # (kh, kw, Cit, Cot, A_k, A_o)
            for i in range(kh):
                for j in range(kw):
                    for c in range(cit):
                        tiles_w.append(w[i, j, c, :, :min(a, ci - c * a), :])
        bias = np.zeros((cot, 1, a))
        bias.reshape(-1)[:co] = layer.bias
        tiles_w[0] = np.concatenate([bias, tiles_w[0]], axis=1)
        return np.concatenate(tiles_w, axis=1).reshape(-1, a)

    # ---------------------------------------------------------------- host I/O
    def emit_input(self, ip: InputPlan) -> None:
        """Prologue: host NHWC region -> the input's padded buffer (local, or DRAM0 via staging)."""
        buf, host = self.buffers[ip.tensor], ip.host
        g = self.p.begin(f"input {ip.tensor}", "input")
        if buf.home == "local":
            self.fill_from_host(buf, host, band_of(buf, 0, buf.height), lambda t, r: buf.addr(t, r, 0))
        for band, base in zip(split_bands(buf, ip.band_rows) if ip.band_rows else [], ip.stages):
            n_rows = band.pr1 - band.pr0

            def staged(t: int, r: int, base=base, first=band.pr0, n_rows=n_rows) -> int:
                return base + (t * n_rows + r - first) * buf.wp

            self.fill_from_host(buf, host, band, staged)
            for t in range(buf.tiles):
                self.p.move(DataFlow.LOCAL_TO_DRAM0, base + t * n_rows * buf.wp, buf.addr(t, band.pr0, 0),
                            n_rows * buf.wp)
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
        if host is not None:
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
    def emit_layer(self, layer: Layer, lp: LayerPlan) -> None:
        p, out = self.p, self.buffers[layer.output]
        tile_vectors = sum(lp.tile_sizes)
        g = p.begin(layer.name, "layer", macs=layer_macs(self.net, layer), sources=list(layer.sources))
        g.info.update(bands=-(-out.height // lp.band_rows), band_rows=lp.band_rows, weights=lp.mode.value)
        w_dram = self.consts.add(self.weight_blocks(layer), layer.name)
        if lp.mode == WeightMode.LAYER:
            p.move(DataFlow.DRAM1_TO_LOCAL, lp.w_base, w_dram, out.tiles * tile_vectors)
        act_slots = self.load_act_consts(layer, lp.const_tmp)
        for band in split_bands(out, lp.band_rows):
            in_addr = self.stage_inputs(layer, band, lp.stage_base)
            out_stage = lp.stage_base + self.staged_vectors(layer, band)
            for ct in range(out.tiles):
                src = w_dram + ct * tile_vectors
                if lp.mode == WeightMode.LAYER:
                    tile_addr = lambda k, base=lp.w_base + ct * tile_vectors: base + lp.tile_offsets[k]  # noqa: E731
                elif lp.mode == WeightMode.TILE:
                    p.move(DataFlow.DRAM1_TO_LOCAL, lp.w_base, src, tile_vectors)
                    tile_addr = lambda k: lp.w_base + lp.tile_offsets[k]  # noqa: E731
                else:
                    tile_addr = self.group_loader(lp, src)
                frame = BandFrame(out, band, *conv_rows(layer, band), conv_geometry(self.net, layer)[1],
                                  bool(layer.pool))
                self.accumulate_band(layer, frame, tile_addr, lp.tile_sizes, in_addr)
                self.finish_band(layer, frame, ct, out_stage, act_slots, len(lp.tile_sizes) == 1)
        p.end(g)

    def group_loader(self, lp: LayerPlan, src: int):
        """tile index -> local address, staging each group of tiles when its first tile comes."""
        offsets, sizes = lp.tile_offsets, lp.tile_sizes
        bounds = list(lp.group_starts) + [len(sizes)]
        group_of = {k: gi for gi in range(len(lp.group_starts)) for k in range(bounds[gi], bounds[gi + 1])}

        def addr(k: int) -> int:
            gi = group_of[k]
            first = bounds[gi]
            if k == first:
                last = bounds[gi + 1] - 1
                n = offsets[last] + sizes[last] - offsets[first]
                self.p.move(DataFlow.DRAM1_TO_LOCAL, lp.w_base, src + offsets[first], n)
            return lp.w_base + offsets[k] - offsets[first]

        return addr

    def staged_vectors(self, layer: Layer, band: Band) -> int:
        cr0, cr1 = conv_rows(layer, band)
        total = 0
        for t in layer.terms:
            ib = self.buffers[t.input]
            if ib.home == "dram0":
                f, last = input_rows(t, ib, cr0, cr1)
                total += ib.tiles * (last - f) * ib.wp
        return total

    def stage_inputs(self, layer: Layer, band: Band, at: int) -> list:
        """Per term: a function (tile, padded_row) -> local address of that input row."""
        cr0, cr1 = conv_rows(layer, band)
        fns = []
        for t in layer.terms:
            ib = self.buffers[t.input]
            if ib.home == "local":
                fns.append(lambda tile, r, b=ib: b.addr(tile, r, 0))
                continue
            f, last = input_rows(t, ib, cr0, cr1)
            n = (last - f) * ib.wp
            for tile in range(ib.tiles):
                self.p.move(DataFlow.DRAM0_TO_LOCAL, at + tile * n, ib.addr(tile, f, 0), n)
            fns.append(lambda tile, r, base=at, n=n, f=f, wp=ib.wp: base + tile * n + (r - f) * wp)
            at += ib.tiles * n
        return fns

    def accumulate_band(self, layer: Layer, fr: BandFrame, tile_addr, sizes, in_addr: list) -> None:
        """LoadWeight + MatMuls of every weight tile into the band's accumulators."""
        p, a = self.p, self.a
        alternate = one_vector_band(self.net, layer, fr.band, a)
        k = 0
        for ti, term in enumerate(layer.terms):
            ib = self.buffers[term.input]
            _, ci, kh, kw = term.weight.shape
            sh, sw = term.strides
            merge = self.merge_rows and sh == 1 and sw == 1 and fr.conv_pitch == ib.wp
            for i in range(kh):
                for j in range(kw):
                    for cit in range(tiles(ci, a)):
                        p.load_weights(tile_addr(k), sizes[k])
                        if k:
                            p.zero_bias()
                        first = k == 0 or (alternate and k == 1)
                        col0 = j - term.pads[1] + ib.pad
                        row = lambda r: in_addr[ti](cit, r * sh + i - term.pads[0] + ib.pad) + col0  # noqa: E731
                        if alternate:
                            p.matmul(row(fr.cr0), fr.spare if k % 2 else fr.acc_of(fr.cr0, 0), 1, accumulate=not first)
                        elif merge:
                            n = (fr.cr1 - fr.cr0 - 1) * fr.conv_pitch + fr.wc
                            p.matmul(row(fr.cr0), fr.acc_of(fr.cr0, 0), n, accumulate=not first)
                        else:
                            for r in range(fr.cr0, fr.cr1):
                                p.matmul(row(r), fr.acc_of(r, 0), fr.wc, accumulate=not first, local_step=sw)
                        k += 1

    def finish_band(self, layer: Layer, fr: BandFrame, ct: int, out_stage: int, act_slots: list[int],
                    one_tile: bool) -> None:
        """Second accumulator folded in, pooling, borders cleared, activation, stores."""
        p, a, out, band = self.p, self.a, fr.out, fr.band
        if out.home == "local":
            dest = out.addr(ct, band.pr0, 0)
            row_addr = lambda t, r: out.addr(t, r, 0)  # noqa: E731
        else:
            dest = out_stage
            row_addr = lambda t, r: out_stage + (r - band.pr0) * out.wp  # noqa: E731
        if one_vector_band(self.net, layer, band, a):  # add the second accumulator into the first
            p.move(DataFlow.ACC_TO_LOCAL, dest, fr.spare, 1)
            p.move(DataFlow.LOCAL_TO_ACC_ACCUMULATE, dest, fr.acc_of(fr.cr0, 0), 1)
        if layer.pool:
            _, (kh, kw), (sh, sw) = layer.pool
            emit_max_pool(p, [([fr.acc_of(r * sh + i, c * sw + j) for i in range(kh) for j in range(kw)],
                               fr.out_base + (r + out.pad - band.pr0) * out.wp + out.pad + c)
                              for r in range(band.r0, band.r1) for c in range(out.width)])
        border = runs(~valid_mask(out, band))
        if border:
            if one_tile and np.any(layer.bias[ct * a:(ct + 1) * a]):
                p.zero_bias()  # the bias register still holds this tile's bias
            for start, n in border:
                p.matmul(0, fr.out_base + start, n, accumulate=False, zeroes=True)
        if layer.act:
            addrs = [fr.out_base + int(i) for i in np.flatnonzero(valid_mask(out, band).ravel())]
            emit_activation(p, layer.act[0], addrs, act_slots)
        to_dram = out.home == "dram0" or out.tensor in self.hosts_out
        p.move(DataFlow.ACC_TO_LOCAL, dest, fr.out_base, fr.region, read_back_to_dram=to_dram)
        if out.home == "dram0":
            p.move(DataFlow.LOCAL_TO_DRAM0, out_stage, out.addr(ct, band.pr0, 0), fr.region)
        self.store_output(out, band, ct, row_addr)

    # ---------------------------------------------------------------- global average pooling
    def emit_pool(self, step: GlobalPool, pp: PoolPlan) -> None:
        a, p = self.a, self.p
        ib, out = self.buffers[step.input], self.buffers[step.output]
        g = p.begin(step.name, "gap", macs=ib.channels * ib.height * ib.width, sources=list(step.sources))
        w, corr = gap_weights(ib.height * ib.width, self.arch.dtype.frac_bits)
        tiles_n, scratch = ib.tiles, pp.scratch
        diag = np.zeros((a + 1, a))
        diag[1:] = np.eye(a) * w
        p.move(DataFlow.DRAM1_TO_LOCAL, scratch, self.consts.add(diag, step.name), a + 1)
        p.load_weights(scratch, a + 1)
        self.pool_matmuls(ib, pp, stage=scratch + 2 * (a + 1) + tiles_n)
        tmp = scratch + 2 * (a + 1)
        if pp.banks == 2:  # fold the second accumulator into the first (a saturating add)
            p.move(DataFlow.ACC_TO_LOCAL, tmp, tiles_n, tiles_n)
            p.move(DataFlow.LOCAL_TO_ACC_ACCUMULATE, tmp, 0, tiles_n)
        q = self.arch.dtype.scale
        if round(corr * q) != q:
            corr_block = np.zeros((a + 1, a))
            corr_block[1:] = np.eye(a) * corr
            cw = scratch + a + 1
            p.move(DataFlow.DRAM1_TO_LOCAL, cw, self.consts.add(corr_block, step.name), a + 1)
            p.move(DataFlow.ACC_TO_LOCAL, tmp, 0, tiles_n)
            p.load_weights(cw, a + 1)
            p.matmul(tmp, 0, tiles_n, accumulate=False)
        g.info.update(gap_weight=w, gap_correction=corr)
        self.store_pooled(out, tiles_n, tmp)
        p.end(g)

    def pool_matmuls(self, ib: Buffer, pp: PoolPlan, stage: int) -> None:
        """A MatMul per pixel and tile; tiles round robin so no MatMul accumulates into the
        address the previous one wrote; one tile alternates two accumulators (`pp.banks`)."""
        tiles_n = ib.tiles
        first = [True] * (tiles_n * pp.banks)
        pixel = 0
        for y0 in range(0, ib.height, pp.band_rows):
            y1 = min(ib.height, y0 + pp.band_rows)
            n = (y1 - y0) * ib.wp
            if ib.home == "dram0":
                for t in range(tiles_n):
                    self.p.move(DataFlow.DRAM0_TO_LOCAL, stage + t * n, ib.addr(t, y0 + ib.pad, 0), n)
            for y in range(y0, y1):
                for x in range(ib.width):
                    for t in range(tiles_n):
                        if ib.home == "dram0":
                            src = stage + t * n + (y - y0) * ib.wp + x + ib.pad
                        else:
                            src = ib.addr(t, y + ib.pad, x + ib.pad)
                        acc = t + tiles_n * (pixel % pp.banks)
                        self.p.matmul(src, acc, 1, accumulate=not first[acc])
                        first[acc] = False
                    pixel += 1

    def store_pooled(self, out: Buffer, tiles_n: int, tmp: int) -> None:
        p = self.p
        if out.home == "local":
            p.move(DataFlow.ACC_TO_LOCAL, out.base, 0, tiles_n)
            row_addr = lambda t, r: out.addr(t, r, 0)  # noqa: E731
        else:
            p.move(DataFlow.ACC_TO_LOCAL, tmp, 0, tiles_n)
            p.move(DataFlow.LOCAL_TO_DRAM0, tmp, out.base, tiles_n)
            row_addr = lambda t, r: tmp + t  # noqa: E731
        if out.tensor in self.hosts_out and out.height == out.width == 1:
            p.move(DataFlow.LOCAL_TO_DRAM0, row_addr(0, 0), self.hosts_out[out.tensor].base, tiles_n)
        else:
            band = band_of(out, 0, 1)
            for t in range(tiles_n):
                self.store_output(out, band, t, row_addr)

    # ---------------------------------------------------------------- bilinear upsampling
    def emit_upsample(self, step: Upsample, up: UpsamplePlan) -> None:
        """Per band and channel tile: clear the output region, then for each interpolation weight
        (row phase, column phase, neighbour) one LoadWeight of a scaled identity and a MatMul per
        output row of that phase, writing every sx-th accumulator; clamped edge columns get
        one-vector MatMuls of their own. Everything accumulates into the cleared region."""
        a, p = self.a, self.p
        ib, out = self.buffers[step.input], self.buffers[step.output]
        (sy, sx), n_in = step.scales, ib.width
        g = p.begin(step.name, "upsample", macs=out.channels * out.height * out.width * len(up.tiles) // (sy * sx),
                    sources=list(step.sources))
        blocks = np.zeros((len(up.tiles), a + 1, a))
        for k, (*_, w) in enumerate(up.tiles):
            blocks[k, 1:] = np.eye(a) * w
        p.move(DataFlow.DRAM1_TO_LOCAL, up.scratch, self.consts.add(blocks.reshape(-1, a), step.name), blocks.shape[0] * (a + 1))
        stage = up.scratch + len(up.tiles) * (a + 1)
        for band in split_bands(out, up.band_rows):
            region = (band.pr1 - band.pr0) * out.wp
            acc_of = lambda y, x: (y + out.pad - band.pr0) * out.wp + out.pad + x  # noqa: E731
            for t in range(out.tiles):
                p.zero_bias()
                p.matmul(0, 0, region, accumulate=False, zeroes=True)
                for k, (dy, dx, oy, ox, _) in enumerate(up.tiles):
                    p.load_weights(up.scratch + k * (a + 1), a + 1)
                    for y in range(band.r0, band.r1):
                        if y % sy != dy:
                            continue
                        r = min(max(y // sy + oy, 0), ib.height - 1) + ib.pad
                        lo, hi = max(0, -ox), min(n_in, n_in - ox)  # columns whose neighbour is inside
                        for j0, j1, src in ((0, lo, 0), (hi, n_in, n_in - 1), (lo, hi, None)):
                            if j1 <= j0:
                                continue
                            first = acc_of(y, dx + sx * j0)
                            if p.last_matmul_write == first:  # never accumulate right after a write there
                                p.matmul(0, region, 1, accumulate=True, zeroes=True)  # adds the zero bias elsewhere
                            col = j0 + ox if src is None else src
                            p.matmul(ib.addr(t, r, ib.pad + col), first, j1 - j0, accumulate=True, acc_step=sx)
                self.store_region(out, band, t, region, stage)
        p.end(g)

    # ---------------------------------------------------------------- element-wise product
    def emit_product(self, step: Product, pp: ProductPlan) -> None:
        """Per band and channel tile: clear the output region, then per row move b into its place
        and a after the region, and multiply on the SIMD unit (b = mul(a, b) in place)."""
        p = self.p
        a, b, out = (self.buffers[x] for x in (step.a, step.b, step.output))
        g = p.begin(step.name, "product", macs=0, sources=list(step.sources))
        for band in split_bands(out, pp.band_rows):
            region = (band.pr1 - band.pr0) * out.wp
            for t in range(out.tiles):
                p.zero_bias()
                p.matmul(0, 0, region, accumulate=False, zeroes=True)
                for y in range(band.r0, band.r1):
                    at = (y + out.pad - band.pr0) * out.wp + out.pad
                    p.move(DataFlow.LOCAL_TO_ACC, b.addr(t, y + b.pad, b.pad), at, out.width)
                    p.move(DataFlow.LOCAL_TO_ACC, a.addr(t, y + a.pad, a.pad), region, out.width)
                    emit_products(p, [(region + x, at + x) for x in range(out.width)])
                self.store_region(out, band, t, region, pp.scratch)
        p.end(g)

    # ---------------------------------------------------------------- constant tensors
    def emit_constant(self, step: Constant, cp: ConstantPlan) -> None:
        """The values in the planar padded layout (zero borders and lanes) in DRAM1, copied once
        into the buffer (through a plane of local scratch when it lives in DRAM0)."""
        out, a = self.buffers[step.output], self.a
        g = self.p.begin(step.name, "constant", macs=0, sources=list(step.sources))
        image = np.zeros((out.tiles * a, out.hp, out.wp))
        image[:out.channels, out.pad:out.pad + out.height, out.pad:out.pad + out.width] = step.values
        image = image.reshape(out.tiles, a, out.hp * out.wp).transpose(0, 2, 1).reshape(-1, a)
        src = self.consts.add(image, step.name)
        if out.home == "local":
            self.p.move(DataFlow.DRAM1_TO_LOCAL, out.base, src, out.size)
        for t in range(out.tiles if out.home == "dram0" else 0):
            self.p.move(DataFlow.DRAM1_TO_LOCAL, cp.scratch, src + t * out.plane, out.plane)
            self.p.move(DataFlow.LOCAL_TO_DRAM0, cp.scratch, out.base + t * out.plane, out.plane)
        self.p.end(g)

    def store_region(self, out: Buffer, band: Band, t: int, region: int, stage: int) -> None:
        p = self.p
        to_dram = out.home == "dram0" or out.tensor in self.hosts_out
        dest = out.addr(t, band.pr0, 0) if out.home == "local" else stage
        p.move(DataFlow.ACC_TO_LOCAL, dest, 0, region, read_back_to_dram=to_dram)
        if out.home == "dram0":
            p.move(DataFlow.LOCAL_TO_DRAM0, stage, out.addr(t, band.pr0, 0), region)
            row_addr = lambda tile, r: stage + (r - band.pr0) * out.wp  # noqa: E731
        else:
            row_addr = lambda tile, r: out.addr(tile, r, 0)  # noqa: E731
        self.store_output(out, band, t, row_addr)

    def run(self) -> Lowered:
        for ip in self.plan.inputs:
            self.emit_input(ip)
        for step, sp in zip(self.net.steps, self.plan.steps):
            if isinstance(step, GlobalPool):
                self.emit_pool(step, sp)
            elif isinstance(step, Upsample):
                self.emit_upsample(step, sp)
            elif isinstance(step, Product):
                self.emit_product(step, sp)
            elif isinstance(step, Constant):
                self.emit_constant(step, sp)
            else:
                self.emit_layer(step, sp)
        plan = self.plan
        return Lowered(self.p.instrs, self.consts, [ip.host for ip in plan.inputs],
                       [plan.hosts_out[o] for o in self.net.outputs], self.p.groups, plan.buffers,
                       plan.local_peak, plan.acc_peak, plan.dram0_size, list(plan.spilled))


def emit(net: Network, arch: Arch, plan: MemoryPlan, merge_rows: bool = False, avoid_4k: bool = True) -> Lowered:
    """Instructions and constants for a planned network."""
    return _Emitter(net, arch, plan, merge_rows, avoid_4k).run()
