"""SIMD sequences for activations and max pooling, on accumulator vectors, hazard-free.

With one ALU register (R1) and one accumulator read per instruction (source 0 = the vector
read), every sequence below reads through `read` whenever a source is 0 and never writes the
accumulator from an instruction whose destination is R1 (the stall and simd-dest-write rules of
`tensil.hazards`):

* ReLU: `R1 = Zero` once (both sources R1: consumes no input), then per vector
  `O = Max(I, R1)` (read + write in place).
* LeakyReLU(a), 0 <= a <= 1: per vector `R1 = Move(I)` [read a], `R1 = Mul(I, R1)` [read x],
  `O = Max(I, R1)` [read x, write x] = max(x, mul(x, a)).
* Clip(lo, hi), lo <= 0 <= hi: `R1 = Move(I)` [lo], `R1 = Max(I, R1)` [x],
  `O = Min(I, R1)` [read hi, write x].
* Product of two vectors: `R1 = Move(I)` [a], `O = Mul(I, R1)` [read b, write in place].
* Max pool of a window: `R1 = Move(I)` [first], `R1 = Max(I, R1)` [middle ones],
  `O = Max(I, R1)` [last, write the pooled vector]; a 1-element window is `O = Move(I)`.
Constants (a, lo, hi) sit in reserved accumulator slots, broadcast over all lanes.
"""

from __future__ import annotations

from tensil.compiler.program import ProgramBuilder
from tensil.isa import SimdOp

R1 = 1  # the ALU register every shipped arch has
INPUT = 0  # source code of the vector read from the accumulators


def emit_activation(p: ProgramBuilder, kind: str, addrs: list[int], slots: list[int]) -> None:
    """Apply `kind` in place to the accumulator vectors `addrs`; `slots` hold its constants."""
    if kind == "relu":
        p.simd(SimdOp.ZERO, left=R1, right=R1, dest=R1)
        for x in addrs:
            p.simd(SimdOp.MAX, left=INPUT, right=R1, read=True, write=True, read_addr=x, write_addr=x)
    elif kind == "leaky":
        for x in addrs:
            p.simd(SimdOp.MOVE, left=INPUT, right=INPUT, dest=R1, read=True, read_addr=slots[0])
            p.simd(SimdOp.MULTIPLY, left=INPUT, right=R1, dest=R1, read=True, read_addr=x)
            p.simd(SimdOp.MAX, left=INPUT, right=R1, read=True, write=True, read_addr=x, write_addr=x)
    elif kind == "clip":
        for x in addrs:
            p.simd(SimdOp.MOVE, left=INPUT, right=INPUT, dest=R1, read=True, read_addr=slots[0])
            p.simd(SimdOp.MAX, left=INPUT, right=R1, dest=R1, read=True, read_addr=x)
            p.simd(SimdOp.MIN, left=INPUT, right=R1, read=True, write=True, read_addr=slots[1], write_addr=x)
    else:
        raise ValueError(f"unknown activation {kind!r}")


def emit_products(p: ProgramBuilder, pairs: list[tuple[int, int]]) -> None:
    """For each (a, b) accumulator pair: b = mul(a, b), the fixed-point product (RNE, saturating)."""
    for a, b in pairs:
        p.simd(SimdOp.MOVE, left=INPUT, right=INPUT, dest=R1, read=True, read_addr=a)
        p.simd(SimdOp.MULTIPLY, left=INPUT, right=R1, read=True, write=True, read_addr=b, write_addr=b)


def emit_max_pool(p: ProgramBuilder, windows: list[tuple[list[int], int]]) -> None:
    """For each (source addresses, destination): destination = lane-wise max of the sources."""
    for srcs, dst in windows:
        if len(srcs) == 1:
            p.simd(SimdOp.MOVE, left=INPUT, right=INPUT, read=True, write=True, read_addr=srcs[0], write_addr=dst)
            continue
        p.simd(SimdOp.MOVE, left=INPUT, right=INPUT, dest=R1, read=True, read_addr=srcs[0])
        for s in srcs[1:-1]:
            p.simd(SimdOp.MAX, left=INPUT, right=R1, dest=R1, read=True, read_addr=s)
        p.simd(SimdOp.MAX, left=INPUT, right=R1, read=True, write=True, read_addr=srcs[-1], write_addr=dst)
