"""Cycle estimators for Tensil programs.

1. `tensil_cycles`: Tensil's own per-instruction model (docs/tensil.md), so our numbers compare with
   the "Execution latency (KCycles)" of `tensil compile -s true`: MatMul n (+A after a
   LoadWeight, +2A after anything else), LoadWeight n, DataMove n, SIMD 1, NoOp 1.

2. `hardware_cycles`: a model fitted to the simulated RTL (docs/tensil.md, timing). The
   decoder is in order and load never overlaps compute, so the model is additive over each
   instruction's *dispatch* time, plus the pipeline tails that matter:

   | instruction | dispatch cycles (bv = AXI beats per vector, r/b = read/write latency) |
   |---|---|
   | DataMove DRAM->local, DRAM stride code 0 | bv*n + 5 + r |
   | DataMove DRAM->local, strided | max(bv*n + 5 + r, floor((n-1)/3)*(r+bv) + r + bv*((n-1)%3+1) + 5) (at most 3 bursts in flight) |
   | DataMove local->DRAM | bv*n (streams; strided: like reads with b, minus the 5 + b tail) |
   | a DRAM read after a write on the same port | + 5 + b (waits for the B response) |
   | local->acc / acc->local / local->acc accumulate | n / n + 2 / n + 1 |
   | LoadWeight | n, + 2A when it follows a MatMul (array drain) |
   | MatMul | n; SIMD and acc->local wait for its 2A+1 cycle tail |
   | SIMD read+write / read only / write only or none | 4 / 2 / 1.5 |
   | NoOp, Configure | 1 |

   Every instruction costs at least its fetch time on the 64-bit instruction stream
   (instruction bytes / 8 cycles): this is the instruction-fetch bound that dominates
   SIMD-heavy layers. The last instruction's tail (MatMul 2A+1, DRAM write 5 + b, ...) is added
   at the end. This reproduces every single-instruction and group measurement of §3.1 exactly
   (e.g. LoadWeight 13 + MatMul n = n + 38, G weight groups = G(n + 37) + 1). DRAM latencies
   are given in nanoseconds (`HardwareParams`) because they do not scale with the TCU clock;
   the default 250 ns is an assumption for the Zynq-7000 HP ports, to be calibrated on a board.

MAC efficiency = useful MACs / (A^2 * cycles), as Tensil defines it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from tensil.arch import Arch
from tensil.isa import Configure, DataFlow, DataMove, Instruction, Layout, LoadWeight, MatMul, NoOp, Simd

DEFAULT_CLOCKS_MHZ = (50.0, 125.0)
OUTSTANDING_BURSTS = 3


class EstimateError(ValueError):
    """Bad estimator input (group ranges, clocks)."""


@dataclass(frozen=True)
class HardwareParams:
    """Platform figures of the hardware-aware model."""

    dram_read_latency_ns: float = 250.0
    dram_write_latency_ns: float = 250.0
    axi_bytes: int = 8  # DRAM AXI and instruction stream width (PEFSL / PYNQ-Z1: 64 bits)

    def latencies(self, mhz: float) -> Tuple[int, int]:
        """(r, b) in cycles at this clock (at least 1)."""
        cyc = lambda ns: max(1, math.ceil(ns * mhz / 1000.0))  # noqa: E731
        return cyc(self.dram_read_latency_ns), cyc(self.dram_write_latency_ns)


@dataclass(frozen=True)
class Group:
    """A named range of instructions [start, stop) (e.g. one layer) and its useful MACs."""

    name: str
    start: int
    stop: int
    macs: int = 0


@dataclass
class GroupEstimate:
    """Both models' cycles of one group of instructions."""

    name: str
    instructions: int
    tensil_cycles: int
    hardware_cycles: Dict[float, float]
    macs: int
    mac_efficiency: float  # on Tensil's cycles


@dataclass
class Estimate:
    """Both models over a whole program: totals, per clock, per instruction kind, per group."""

    arch: str
    array_size: int
    n_instructions: int
    program_bytes: int
    tensil_cycles: int
    hardware_cycles: Dict[float, float]
    latency_ms: Dict[float, float]  # hardware-aware, per clock in MHz
    tensil_latency_ms: Dict[float, float]
    useful_macs: int
    array_vectors: int  # vectors pushed through the array by MatMuls (zeroes included)
    mac_efficiency: float  # useful MACs / (A^2 * Tensil cycles)
    hardware_mac_efficiency: Dict[float, float]
    by_kind: Dict[str, Dict[str, float]]
    groups: List[GroupEstimate] = field(default_factory=list)
    params: Optional[HardwareParams] = None

    def to_json_dict(self) -> dict:
        d = asdict(self)
        for key in ("hardware_cycles", "latency_ms", "tensil_latency_ms", "hardware_mac_efficiency"):
            d[key] = {f"{k:g}MHz": v for k, v in d[key].items()}
        for g in d["groups"]:
            g["hardware_cycles"] = {f"{k:g}MHz": v for k, v in g["hardware_cycles"].items()}
        return d

    def table(self, clock_mhz: Optional[float] = None) -> str:
        """Per-group table: instructions, Tensil KCycles, hardware KCycles, ms, MAC efficiency."""
        mhz = clock_mhz if clock_mhz is not None else max(self.hardware_cycles)
        head = f"{'group':<28} {'instrs':>8} {'KCycles':>9} {'hw KCycles':>10} {f'ms@{mhz:g}MHz':>11} {'MAC eff':>8}"
        rows = [head, "-" * len(head)]
        for g in self.groups + [
            GroupEstimate("TOTAL", self.n_instructions, self.tensil_cycles, self.hardware_cycles, self.useful_macs,
                          self.mac_efficiency)  # fmt: skip
        ]:
            hw = g.hardware_cycles[mhz]
            rows.append(
                f"{g.name[:28]:<28} {g.instructions:>8} {g.tensil_cycles / 1e3:>9.1f} {hw / 1e3:>10.1f} "
                f"{hw / (mhz * 1e3):>11.3f} {100 * g.mac_efficiency:>7.1f}%"
            )
        return "\n".join(rows)


def kind_of(ins: Instruction) -> str:
    """Mnemonic class used in Tensil's instruction summary."""
    if isinstance(ins, DataMove):
        return f"DataMove({DataFlow(ins.flow).name})"
    return {MatMul: "MatMul", LoadWeight: "LoadWeights", Simd: "SIMD", NoOp: "NoOp", Configure: "Configure"}[type(ins)]


def tensil_costs(instrs: Sequence[Instruction], arch: Arch) -> List[int]:
    """Per-instruction cycles of Tensil's estimator (docs/tensil.md)."""
    A = arch.array_size
    out = []
    prev = None
    for ins in instrs:
        if isinstance(ins, MatMul):
            n = ins.size + 1
            c = n if isinstance(prev, MatMul) else n + A if isinstance(prev, LoadWeight) else n + 2 * A
        elif isinstance(ins, (LoadWeight, DataMove)):
            c = ins.size + 1
        else:
            c = 1
        out.append(c)
        prev = ins
    return out


def _strided_dram(n: int, bv: int, lat: int) -> int:
    """Time of n single-vector bursts with at most 3 in flight (RTL facts §3.1)."""
    return ((n - 1) // OUTSTANDING_BURSTS) * (lat + bv) + lat + bv * ((n - 1) % OUTSTANDING_BURSTS + 1) + 6


class _HardwareModel:
    """The RTL-fitted model of the module docstring, one instruction at a time, in order."""

    def __init__(self, arch: Arch, mhz: float, params: HardwareParams):
        self.A = arch.array_size
        self.r, self.b = params.latencies(mhz)
        self.beats = max(1, math.ceil(arch.vector_bytes / params.axi_bytes))  # AXI beats per vector
        self.fetch = Layout.from_arch(arch).instruction_bytes / params.axi_bytes
        self.tail = 0.0  # pipeline work still draining after the last dispatch
        self.matmul_left = 0.0  # cycles until the last MatMul's results are in the accumulators
        self.writing = {"dram0": False, "dram1": False}  # last DRAM access of the port was a write
        self.prev: Optional[Instruction] = None

    def dram(self, ins: DataMove, flow: DataFlow) -> Tuple[float, float]:
        n, bv, r, b = ins.size + 1, self.beats, self.r, self.b
        port = flow.other_memory
        if flow.to_local:
            c = bv * n + 5 + r if ins.stride == 0 else max(bv * n + 5 + r, _strided_dram(n, bv, r) - 1)
            if self.writing[port]:
                c += 5 + b  # reads wait for the port's outstanding write responses
            self.writing[port] = False
            return c, 1
        self.writing[port] = True
        return (bv * n if ins.stride == 0 else max(bv * n, _strided_dram(n, bv, b) - 6 - b)), 5 + b

    def dispatch(self, ins: Instruction) -> float:
        """Cycles until the next instruction can be dispatched."""
        waits_for_matmul = False
        tail = 0.0
        if isinstance(ins, MatMul):
            c, tail = ins.size + 1, 2 * self.A + 1 + (1 if ins.accumulate else 0)
        elif isinstance(ins, LoadWeight):
            c, tail = ins.size + 1 + (2 * self.A if isinstance(self.prev, MatMul) else 0), 2
        elif isinstance(ins, DataMove):
            flow, n = DataFlow(ins.flow), ins.size + 1
            if flow.is_dram:
                c, tail = self.dram(ins, flow)
            elif flow == DataFlow.ACC_TO_LOCAL:
                c, tail, waits_for_matmul = n + 2, 1, True
            else:
                c, tail = (n, 2) if flow == DataFlow.LOCAL_TO_ACC else (n + 1, 2)
        elif isinstance(ins, Simd):
            if ins.read and ins.write:
                c, tail = 4, 2
            elif ins.read or ins.write:
                c, tail = (2, 3) if ins.read else (1.5, 3)
            else:
                c = 1.5
            waits_for_matmul = True
        else:
            c = 1
        if waits_for_matmul:
            c += self.matmul_left
        c = max(c, self.fetch)  # the instruction stream delivers at most one word per cycle
        if isinstance(ins, MatMul):
            self.matmul_left = tail
        elif waits_for_matmul or isinstance(ins, LoadWeight):  # LoadWeight's drain covers it
            self.matmul_left = 0.0
        else:
            self.matmul_left = max(0.0, self.matmul_left - c)
        self.tail = max(self.tail - c, tail)
        self.prev = ins
        return float(c)


def hardware_costs(instrs: Sequence[Instruction], arch: Arch, mhz: float, params: HardwareParams) -> Tuple[List[float], float]:
    """Per-instruction dispatch cycles of the hardware-aware model, and the final tail."""
    model = _HardwareModel(arch, mhz, params)
    return [model.dispatch(ins) for ins in instrs], model.tail


def estimate(
    instrs: Sequence[Instruction],
    arch: Arch,
    groups: Optional[Sequence[Group]] = None,
    macs: Optional[int] = None,
    clocks_mhz: Sequence[float] = DEFAULT_CLOCKS_MHZ,
    params: HardwareParams = HardwareParams(),
) -> Estimate:
    """Both models over a whole program, with per-group accounting.

    `groups` are instruction ranges (typically one per layer); costs are computed over the
    whole stream and then summed per group, so group sums equal the totals (the final tail is
    charged to the last group). `macs` (useful MACs) defaults to the sum of the groups' MACs.
    """
    instrs = list(instrs)
    if not clocks_mhz or any(c <= 0 for c in clocks_mhz):
        raise EstimateError("clock frequencies must be positive MHz values")
    groups = list(groups or [])
    for g in groups:
        if not 0 <= g.start <= g.stop <= len(instrs):
            raise EstimateError(f"group {g.name!r} range [{g.start}, {g.stop}) is outside the {len(instrs)} instructions")
    A = arch.array_size
    tcost = tensil_costs(instrs, arch)
    hw: Dict[float, Tuple[List[float], float]] = {mhz: hardware_costs(instrs, arch, mhz, params) for mhz in clocks_mhz}
    useful = int(macs if macs is not None else sum(g.macs for g in groups))
    tensil_total = sum(tcost)
    hw_total = {mhz: sum(c) + t for mhz, (c, t) in hw.items()}

    def eff(m: int, cycles: float) -> float:
        return m / (A * A * cycles) if cycles else 0.0

    by_kind: Dict[str, Dict[str, float]] = {}
    first = clocks_mhz[0]
    for i, ins in enumerate(instrs):
        k = by_kind.setdefault(kind_of(ins), {"count": 0, "vectors": 0, "tensil_cycles": 0, f"hardware_cycles@{first:g}MHz": 0.0})
        k["count"] += 1
        k["vectors"] += 1 if isinstance(ins, (Simd, NoOp, Configure)) else ins.size + 1
        k["tensil_cycles"] += tcost[i]
        k[f"hardware_cycles@{first:g}MHz"] += hw[first][0][i]

    group_estimates = []
    for gi, g in enumerate(groups):
        t = sum(tcost[g.start : g.stop])
        h = {}
        for mhz, (c, tail) in hw.items():
            h[mhz] = sum(c[g.start : g.stop]) + (tail if g.stop == len(instrs) and gi == len(groups) - 1 else 0.0)
        group_estimates.append(GroupEstimate(g.name, g.stop - g.start, t, h, g.macs, eff(g.macs, t)))

    layout = Layout.from_arch(arch)
    return Estimate(
        arch=arch.name,
        array_size=A,
        n_instructions=len(instrs),
        program_bytes=len(instrs) * layout.instruction_bytes,
        tensil_cycles=tensil_total,
        hardware_cycles=hw_total,
        latency_ms={mhz: hw_total[mhz] / (mhz * 1e3) for mhz in clocks_mhz},
        tensil_latency_ms={mhz: tensil_total / (mhz * 1e3) for mhz in clocks_mhz},
        useful_macs=useful,
        array_vectors=sum(i.size + 1 for i in instrs if isinstance(i, MatMul)),
        mac_efficiency=eff(useful, tensil_total),
        hardware_mac_efficiency={mhz: eff(useful, hw_total[mhz]) for mhz in clocks_mhz},
        by_kind=by_kind,
        groups=group_estimates,
        params=params,
    )
