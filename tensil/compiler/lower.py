"""Lowering: fused network -> Tensil instructions, in two passes with a check between them.

`plan.plan_memory` decides where every activation lives and how every step is cut (spilling
to DRAM0 until everything fits), `plan.verify_plan` checks the plan's invariants, and
`emit.emit` turns it into instructions and the DRAM1 constants image. When a DRAM move would
end on a burst that crosses 4 KiB (`tensil.axi`), DRAM0's data are shifted by a few vectors.

Reserved: local vector `local_depth-1` and DRAM0 vectors `dram0_depth-2..-1` (the PYNQ
driver's completion probe), accumulator vectors `acc_depth-2..-1` (SIMD constants).
"""

from __future__ import annotations

from dataclasses import dataclass

from tensil.arch import Arch
from tensil.axi import count_4k_crossings
from tensil.compiler.emit import Lowered, emit
from tensil.compiler.graph import Network
from tensil.compiler.plan import plan_memory, verify_plan

DRAM0_ORIGINS_TRIED = 8


@dataclass
class LoweringOptions:
    merge_rows: bool = False  # one MatMul per (tap, tile) over a whole band when pitches agree
    avoid_4k: bool = True  # cut DRAM moves / shift DRAM0 data so no AXI burst crosses 4 KiB


def lower_at(net: Network, arch: Arch, options: LoweringOptions, dram0_origin: int = 0) -> Lowered:
    """Plan (DRAM0 data from `dram0_origin` on), verify the plan, emit."""
    plan = plan_memory(net, arch, dram0_origin)
    verify_plan(plan, net, arch)
    return emit(net, arch, plan, options.merge_rows, options.avoid_4k)


def lower(net: Network, arch: Arch, options: LoweringOptions | None = None) -> Lowered:
    """Plan memory and generate the program. A move that *ends* on a crossing vector cannot be
    cut around it, so with `avoid_4k` DRAM0's data start a few vectors later when that helps
    (the plan with the fewest crossing bursts wins; cycles are unchanged)."""
    options = options or LoweringOptions()
    best = lower_at(net, arch, options)
    if not options.avoid_4k:
        return best
    best_n = count_4k_crossings(best.instrs, arch)
    for origin in range(1, DRAM0_ORIGINS_TRIED + 1):
        if best_n == 0:
            break
        candidate = lower_at(net, arch, options, origin)
        n = count_4k_crossings(candidate.instrs, arch)
        if n < best_n:
            best, best_n = candidate, n
    return best
