"""The 203-instruction 3x3 convolution measured on the simulated RTL, lowered the way Tensil
does (8x8x12 input, pad 1, 12 -> 12 channels, bias, ReLU), shared by the core tests."""

from __future__ import annotations

from tensil.isa import DataFlow, DataMove, Instruction, LoadWeight, MatMul, Simd, SimdOp

INPUT_LOCAL, OUTPUT_LOCAL, OUTPUT_DRAM0 = 200, 300, 100
TAPS = [(kh, kw) for kh in range(3) for kw in range(3)]


def conv3x3_program() -> list[Instruction]:
    """DRAM1 holds bias then the 9 taps x 12 weight vectors (lane o of vector ci = W[o][ci]);
    DRAM0 holds the 64 input pixels (NHWC); the result goes to DRAM0[100..163]."""
    prog: list[Instruction] = [
        DataMove(DataFlow.DRAM1_TO_LOCAL, 0, 0, 0, 0, 108),
        DataMove(DataFlow.DRAM0_TO_LOCAL, INPUT_LOCAL, 0, 0, 0, 63),
    ]
    for t, (kh, kw) in enumerate(TAPS):
        prog += [LoadWeight(1 + 12 * t, 0, 11), LoadWeight(0, 0, 0, zeroes=t > 0)]
        zeros = []
        for y in range(8):
            iy = y + kh - 1
            if not 0 <= iy < 8:
                zeros.append(MatMul(0, 0, y * 8, 0, 7, accumulate=t > 0, zeroes=True))
                continue
            x0, x1 = max(0, 1 - kw), min(8, 9 - kw)
            prog.append(MatMul(INPUT_LOCAL + iy * 8 + x0 + kw - 1, 0, y * 8 + x0, 0, x1 - x0 - 1, accumulate=t > 0))
            zeros += [MatMul(0, 0, y * 8 + x, 0, 0, accumulate=t > 0, zeroes=True) for x in range(8) if not x0 <= x < x1]
        prog += zeros
    prog.append(Simd(SimdOp.ZERO, dest=1))
    prog += [Simd(SimdOp.MAX, 0, 1, 0, read=True, write=True, read_addr=p, write_addr=p) for p in range(64)]
    prog.append(DataMove(DataFlow.ACC_TO_LOCAL, OUTPUT_LOCAL, 0, 0, 0, 63))
    prog.append(DataMove(DataFlow.LOCAL_TO_DRAM0, OUTPUT_LOCAL, 0, OUTPUT_DRAM0, 0, 63))
    return prog
