"""Memory planning: where every activation lives, how each step is cut, which addresses it uses.

The plan is decided before any instruction exists and is a typed record the emitter
(`emit.py`) only reads:

* every activation is a planar padded `Buffer` homed in local memory while the live set fits;
  when a step cannot fit, the largest live local buffer (or the one that could not be placed)
  is spilled to DRAM0 and planning restarts;
* a graph input is filled from its host region, through bands of local staging when spilled;
* a layer gets a weight mode (all tiles staged once, one output tile at a time, or groups of
  tiles for very wide layers), a band height chosen for the fewest bands, and one block of
  local scratch for weights, staged input rows and the output band;
* a global average pool gets its scratch and, for a spilled input, a band height.

Local memory is a first-fit allocator over `local_depth - 1` vectors (the last one belongs to
the PYNQ driver's completion probe); a buffer is freed after its last consumer. `verify_plan`
checks the result before emission.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from tensil.arch import Arch
from tensil.compiler.bands import split_bands
from tensil.compiler.errors import CompileError
from tensil.compiler.geometry import band_accumulators, conv_geometry, tile_sizes
from tensil.compiler.graph import Constant, GlobalPool, Layer, Network, Product, Upsample
from tensil.compiler.memory import Allocator, Buffer, HostRegion, tiles
from tensil.hazards import DriverProbe

CONST_ACC_SLOTS = 2  # accumulator vectors reserved at the top for SIMD constants


class WeightMode(Enum):
    LAYER = "layer"  # every weight tile of the layer staged in local memory once
    TILE = "tile"  # one output tile's weights at a time, reloaded per band
    GROUP = "group"  # runs of weight tiles that fit, reloaded per band and output tile


@dataclass(frozen=True)
class InputPlan:
    """A graph input: its host region and, when its buffer is in DRAM0, the staging bands."""

    tensor: str
    host: HostRegion
    band_rows: int = 0  # 0: the buffer is in local memory and filled in place
    stages: tuple[int, ...] = ()  # local base of each band's staging block (spilled inputs)


@dataclass(frozen=True)
class LayerPlan:
    name: str
    mode: WeightMode
    band_rows: int
    w_base: int  # local scratch: weights [w_base, +w_need), then staging [+stage)
    w_need: int
    stage: int
    tile_offsets: tuple[int, ...]
    tile_sizes: tuple[int, ...]
    group_starts: tuple[int, ...] = (0,)  # first tile of each weight group (GROUP mode)

    @property
    def stage_base(self) -> int:
        return self.w_base + self.w_need

    @property
    def const_tmp(self) -> int:
        """The last scratch vector: passes SIMD constants to the accumulators."""
        return self.w_base + self.w_need + self.stage - 1


@dataclass(frozen=True)
class PoolPlan:
    name: str
    scratch: int  # two weight blocks of A+1 vectors, `tiles` temporaries, then input staging
    scratch_size: int
    band_rows: int  # input rows staged at a time (spilled input), else the input's height
    banks: int  # accumulators per channel tile (2 for a single tile: no back-to-back accumulation)


@dataclass(frozen=True)
class UpsamplePlan:
    name: str
    scratch: int  # the interpolation weight tiles (A+1 vectors each), then output staging
    scratch_size: int
    band_rows: int
    tiles: tuple[tuple[int, int, int, int, float], ...]  # (row phase, col phase, row offset, col offset, weight)


@dataclass(frozen=True)
class ProductPlan:
    name: str
    scratch: int  # output staging (spilled output) and one spare vector
    scratch_size: int
    band_rows: int


@dataclass(frozen=True)
class ConstantPlan:
    name: str
    scratch: int  # one channel tile's plane when the tensor lives in DRAM0
    scratch_size: int
    band_rows: int = 1


StepPlan = LayerPlan | PoolPlan | UpsamplePlan | ProductPlan | ConstantPlan


@dataclass
class MemoryPlan:
    buffers: dict[str, Buffer]
    inputs: list[InputPlan]
    steps: list[StepPlan]  # one per network step, same order
    hosts_out: dict[str, HostRegion]
    local_peak: int
    acc_peak: int
    dram0_size: int
    spilled: list[str] = field(default_factory=list)


class _Spill(Exception):
    """A step cannot fit: the planner spills a buffer to DRAM0 and starts again."""

    def __init__(self, step: str, need: str, tensor: str | None = None):
        super().__init__(step)
        self.step, self.need, self.tensor = step, need, tensor


def group_starts(sizes: list[int], budget: int) -> tuple[int, ...]:
    """First tile index of each run of consecutive tiles whose vectors fit `budget`."""
    starts, used = [0], 0
    for k, n in enumerate(sizes):
        if used + n > budget:
            starts.append(k)
            used = 0
        used += n
    return tuple(starts)


class _Planner:
    """One planning attempt with a fixed set of spilled tensors."""

    def __init__(self, net: Network, arch: Arch, spilled: set[str], dram0_origin: int):
        self.net, self.arch, self.a = net, arch, arch.array_size
        self.local = Allocator(DriverProbe(arch).local, "local memory")
        self.acc_budget = arch.accumulator_depth - CONST_ACC_SLOTS
        self.acc_peak = 0
        self.dram0_top = dram0_origin
        self.buffers = self._buffers(spilled)
        self.live: set[str] = set()  # local buffers currently allocated

    def _buffers(self, spilled: set[str]) -> dict[str, Buffer]:
        pads: dict[str, int] = {}
        for step in self.net.steps:
            for t in getattr(step, "terms", []):
                pads[t.input] = max(pads.get(t.input, 0), *t.pads)
        return {name: Buffer(name, c, h, w, pads.get(name, 0), tiles(c, self.a),
                             home="dram0" if name in spilled else "local")
                for name, (c, h, w) in self.net.shapes.items()}

    # ------------------------------------------------------------------ allocation
    def dram0_alloc(self, size: int, what: str) -> int:
        base = self.dram0_top
        self.dram0_top += size
        usable = DriverProbe(self.arch).target
        if self.dram0_top > usable:
            raise CompileError(f"DRAM0 too small: {what} needs vectors up to {self.dram0_top}, {usable} usable")
        return base

    def place(self, buf: Buffer, step_name: str) -> None:
        if buf.home == "dram0":
            buf.base = self.dram0_alloc(buf.size, buf.tensor)
            return
        base = self.local.alloc(buf.size)
        if base is None:
            raise _Spill(step_name, f"{buf.size} local vectors for {buf.tensor}", buf.tensor)
        buf.base = base
        self.live.add(buf.tensor)

    def scratch(self, size: int, step_name: str) -> int:
        base = self.local.alloc(max(size, 1))
        if base is None:
            raise _Spill(step_name, f"{size} local vectors of scratch")
        return base

    def use_acc(self, n: int) -> None:
        self.acc_peak = max(self.acc_peak, n)

    # ------------------------------------------------------------------ steps
    def plan_input(self, name: str) -> InputPlan:
        c, h, w = self.net.shapes[name]
        buf = self.buffers[name]
        host = HostRegion(name, c, h, w, buf.tiles, self.dram0_alloc(h * w * buf.tiles, name))
        self.place(buf, f"input {name}")
        if buf.home == "local":
            return InputPlan(name, host)
        rows = max(1, min(h, (self.local.largest_free() // (buf.tiles * buf.wp)) - 2 * buf.pad))
        stages = []
        for band in split_bands(buf, rows):
            stages.append(self.scratch(buf.tiles * (band.pr1 - band.pr0) * buf.wp, f"input {name}"))
            self.local.free(stages[-1])
        return InputPlan(name, host, rows, tuple(stages))

    def layer_needs(self, layer: Layer, rows: int, out: Buffer) -> tuple[int, int]:
        """(accumulator vectors, local staging vectors) for bands of at most `rows` output rows
        (a bound for every band: both border rows counted)."""
        _, wc = conv_geometry(self.net, layer)
        region = (rows + 2 * out.pad) * out.wp
        c_rows = rows
        if layer.pool:
            _, (kh, _), (sh, _) = layer.pool
            c_rows = (rows - 1) * sh + kh
        acc = region + (c_rows * wc if layer.pool else 0) + (1 if c_rows * wc == 1 else 0)
        stage = 0
        for t in layer.terms:
            ib = self.buffers[t.input]
            if ib.home == "dram0":
                stage += ib.tiles * ((c_rows - 1) * t.strides[0] + t.weight.shape[2]) * ib.wp
        if out.home == "dram0":
            stage += region
        return acc, stage + 1  # + one vector for SIMD constants

    def choose_mode(self, layer: Layer, out: Buffer, sizes: list[int]) -> tuple[WeightMode, int, int, int]:
        """(weight mode, rows per band, local vectors for weights, staging vectors): fewest bands
        wins, then the mode that loads weights least often."""
        free = self.local.largest_free()
        tile_vectors = sum(sizes)
        best = None
        for mode, w_need in ((WeightMode.LAYER, tile_vectors * out.tiles), (WeightMode.TILE, tile_vectors)):
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
                return WeightMode.GROUP, rows, free - stage, stage
        staging = self.layer_needs(layer, 1, out)[1]
        raise _Spill(layer.name, f"room for one output row and one weight tile (staging {staging} vectors)")

    def plan_layer(self, layer: Layer) -> LayerPlan:
        out = self.buffers[layer.output]
        offsets, sizes = tile_sizes(layer, self.a)
        self.place(out, layer.name)
        mode, rows, w_need, stage = self.choose_mode(layer, out, sizes)
        w_base = self.scratch(w_need + stage, layer.name)
        for band in split_bands(out, rows):
            self.use_acc(band_accumulators(self.net, layer, out, band, self.a))
        self.local.free(w_base)
        starts = group_starts(sizes, w_need) if mode == WeightMode.GROUP else (0,)
        return LayerPlan(layer.name, mode, rows, w_base, w_need, stage, tuple(offsets), tuple(sizes), starts)

    def plan_pool(self, step: GlobalPool) -> PoolPlan:
        a = self.a
        ib, out = self.buffers[step.input], self.buffers[step.output]
        if out.pad:
            raise CompileError(f"{step.name}: a padded consumer of a global pooling output is not supported")
        self.place(out, step.name)
        tiles_n, rows = ib.tiles, ib.height
        if ib.home == "dram0":
            free = self.local.largest_free() - 3 * (a + 1) - tiles_n
            rows = max(1, min(ib.height, free // (ib.tiles * ib.wp)))
            if free < ib.tiles * ib.wp:
                raise _Spill(step.name, "room for one staged input row")
        n_stage = ib.tiles * rows * ib.wp if ib.home == "dram0" else 0
        scratch = self.scratch(2 * (a + 1) + tiles_n + n_stage, step.name)
        banks = 1 if tiles_n > 1 else min(2, ib.height * ib.width)
        self.use_acc(tiles_n * banks)
        self.local.free(scratch)
        return PoolPlan(step.name, scratch, 2 * (a + 1) + tiles_n + n_stage, rows, banks)

    def plan_upsample(self, step: Upsample) -> UpsamplePlan:
        a = self.a
        ib, out = self.buffers[step.input], self.buffers[step.output]
        if ib.home != "local":
            raise CompileError(f"{step.name}: upsampling an activation spilled to DRAM0 is not supported "
                               "(the network does not fit local memory around the Resize)")
        self.place(out, step.name)
        (sy, sx), taps_y, taps_x = step.scales, Upsample.taps(step.scales[0]), Upsample.taps(step.scales[1])
        tiles_w = tuple((dy, dx, oy, ox, wy * wx) for dy in range(sy) for dx in range(sx)
                        for oy, wy in taps_y[dy] for ox, wx in taps_x[dx])
        rows = out.height
        while rows > 1 and (rows + 2 * out.pad) * out.wp + 1 > self.acc_budget:
            rows -= 1
        region = (rows + 2 * out.pad) * out.wp
        size = len(tiles_w) * (a + 1) + (region if out.home == "dram0" else 0)
        scratch = self.scratch(size, step.name)
        self.use_acc(region + 1)
        self.local.free(scratch)
        return UpsamplePlan(step.name, scratch, size, rows, tiles_w)

    def plan_product(self, step: Product) -> ProductPlan:
        out = self.buffers[step.output]
        for x in step.inputs:
            if self.buffers[x].home != "local":
                raise CompileError(f"{step.name}: a product of an activation spilled to DRAM0 is not supported "
                                   "(the network does not fit local memory around the Mul)")
        self.place(out, step.name)
        rows = out.height
        while rows > 1 and (rows + 2 * out.pad) * out.wp + out.width > self.acc_budget:
            rows -= 1
        region = (rows + 2 * out.pad) * out.wp
        size = (region if out.home == "dram0" else 0) + 1
        scratch = self.scratch(size, step.name)
        self.use_acc(region + out.width)
        self.local.free(scratch)
        return ProductPlan(step.name, scratch, size, rows)

    def plan_constant(self, step: Constant) -> ConstantPlan:
        out = self.buffers[step.output]
        self.place(out, step.name)
        size = out.plane if out.home == "dram0" else 1
        scratch = self.scratch(size, step.name)
        self.local.free(scratch)
        return ConstantPlan(step.name, scratch, size)

    def run(self) -> MemoryPlan:
        net = self.net
        last_use = {x: i for i, step in enumerate(net.steps) for x in step.inputs}
        inputs = [self.plan_input(name) for name in net.inputs]
        hosts_out = {}
        for name in net.outputs:
            c, h, w = net.shapes[name]
            hosts_out[name] = HostRegion(name, c, h, w, tiles(c, self.a), 0)
        for host in hosts_out.values():
            host.base = self.dram0_alloc(host.size, host.tensor)
        steps: list[StepPlan] = []
        for i, step in enumerate(net.steps):
            if isinstance(step, GlobalPool):
                steps.append(self.plan_pool(step))
            elif isinstance(step, Upsample):
                steps.append(self.plan_upsample(step))
            elif isinstance(step, Product):
                steps.append(self.plan_product(step))
            elif isinstance(step, Constant):
                steps.append(self.plan_constant(step))
            else:
                steps.append(self.plan_layer(step))
            for x in set(step.inputs):
                if last_use[x] == i and x in self.live and x not in net.outputs:
                    self.local.free(self.buffers[x].base)
                    self.live.discard(x)
        for name in net.inputs:
            if name not in last_use:
                raise CompileError(f"graph input {name!r} is not used")
        return MemoryPlan(self.buffers, inputs, steps, hosts_out, self.local.peak,
                          self.acc_peak + CONST_ACC_SLOTS, self.dram0_top)


def plan_memory(net: Network, arch: Arch, dram0_origin: int = 0) -> MemoryPlan:
    """Plan every buffer and step; spill activations to DRAM0 until everything fits."""
    spilled: set[str] = set()
    while True:
        planner = _Planner(net, arch, spilled, dram0_origin)
        try:
            plan = planner.run()
            plan.spilled = sorted(spilled)
            return plan
        except _Spill as s:
            candidates = [b for b in planner.buffers.values() if b.tensor in planner.live]
            if s.tensor is not None:
                candidates.append(planner.buffers[s.tensor])
            if not candidates:
                raise CompileError(
                    f"{s.step}: the network does not fit the architecture (needs {s.need}; local memory "
                    f"{arch.local_depth}, accumulators {arch.accumulator_depth} vectors)"
                ) from None
            spilled.add(max(candidates, key=lambda b: b.size).tensor)


def verify_plan(plan: MemoryPlan, net: Network, arch: Arch) -> None:
    """Raise CompileError when the plan breaks an invariant the emitter relies on: buffers inside
    their memory, local buffers that are live at the same time disjoint, DRAM0 regions disjoint,
    accumulators within the budget, one plan per step."""
    if len(plan.steps) != len(net.steps):
        raise CompileError(f"internal error: {len(plan.steps)} step plans for {len(net.steps)} steps")
    if plan.acc_peak > arch.accumulator_depth:
        raise CompileError(f"internal error: the plan uses {plan.acc_peak} accumulators of {arch.accumulator_depth}")
    first = {name: -1 for name in net.inputs}
    last = {name: -1 for name in net.inputs}
    for i, step in enumerate(net.steps):
        first.setdefault(step.output, i)
        for x in step.inputs:
            last[x] = i
    for name in net.outputs:
        last[name] = len(net.steps)
    local = [b for b in plan.buffers.values() if b.home == "local" and b.tensor in first]
    span = {b.tensor: (first[b.tensor], last.get(b.tensor, first[b.tensor])) for b in local}
    for b in local:
        if not (0 <= b.base and b.base + b.size <= DriverProbe(arch).local):
            raise CompileError(f"internal error: {b.tensor} lies outside local memory ({b.base}, {b.size})")
    for i, x in enumerate(local):
        for y in local[i + 1:]:
            (s0, e0), (s1, e1) = span[x.tensor], span[y.tensor]
            if x.base < y.base + y.size and y.base < x.base + x.size and s0 <= e1 and s1 <= e0:
                raise CompileError(f"internal error: {x.tensor} and {y.tensor} share local memory while both live")
    for i, sp in enumerate(plan.steps):
        lo = sp.w_base if isinstance(sp, LayerPlan) else sp.scratch
        hi = lo + (sp.w_need + sp.stage if isinstance(sp, LayerPlan) else sp.scratch_size)
        for b in local:
            if span[b.tensor][0] <= i <= span[b.tensor][1] and lo < b.base + b.size and b.base < hi:
                raise CompileError(f"internal error: the scratch of {sp.name} overlaps {b.tensor}")
    regions = sorted([(b.base, b.size, b.tensor) for b in plan.buffers.values() if b.home == "dram0"]
                     + [(h.base, h.size, h.tensor) for h in (*[p.host for p in plan.inputs], *plan.hosts_out.values())])
    for (b0, s0, t0), (b1, _, t1) in zip(regions, regions[1:]):
        if b0 + s0 > b1:
            raise CompileError(f"internal error: DRAM0 regions of {t0} and {t1} overlap")
    if regions and regions[-1][0] + regions[-1][1] > DriverProbe(arch).target:
        raise CompileError("internal error: DRAM0 data reach the driver probe's vectors")
    for step, sp in zip(net.steps, plan.steps):
        if sp.name != step.name or sp.band_rows < 1:
            raise CompileError(f"internal error: bad plan for {step.name}")


