"""Hand-written programs that break a hardware rule, for the refusal tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tensil.arch import Arch
from tensil.fixed import to_bytes
from tensil.isa import DataFlow, DataMove, Instruction, Layout, LoadWeight, MatMul, encode_program
from tensil.tmodel import write_model

LOST_UPDATE_INDEX = 4  # the first accumulating MatMul of `accumulate_chain([])`


def accumulate_chain(arch: Arch, between: list[Instruction], length: int = 3, acc_addrs=None) -> list[Instruction]:
    """The co-simulation's minimal program: 16 inputs DRAM0 0.. -> local 0, weights DRAM1 0..A ->
    local 100, LoadWeight, `length` MatMuls n = 1 into acc 0 (the first writes, the others
    accumulate) with `between` in front of each accumulating one, acc 0 -> local 200 -> DRAM0 100."""
    a = arch.array_size
    acc_addrs = acc_addrs or [0] * length
    program: list[Instruction] = [
        DataMove(DataFlow.DRAM0_TO_LOCAL, 0, 0, 0, 0, 15),
        DataMove(DataFlow.DRAM1_TO_LOCAL, 100, 0, 0, 0, a),
        LoadWeight(100, 0, a),
        MatMul(0, 0, acc_addrs[0], 0, 0),
    ]
    for i in range(1, length):
        program += between + [MatMul(i, 0, acc_addrs[i], 0, 0, accumulate=True)]
    return program + [DataMove(DataFlow.ACC_TO_LOCAL, 200, 0, 0, 0, 0),
                      DataMove(DataFlow.LOCAL_TO_DRAM0, 200, 0, 100, 0, 0)]


def unit_weights(arch: Arch) -> np.ndarray:
    """Raw weight block: bias 0, W[0][0] = 1.0 (output lane 0 = input lane 0)."""
    w = np.zeros((arch.array_size + 1, arch.array_size), dtype=np.int64)
    w[1, 0] = arch.dtype.scale
    return w


def write_lost_update_model(folder: Path, arch: Arch) -> Path:
    """The minimal program as a .tmodel: input x (1, 1, 4, 4) at DRAM0 0..15, output y at DRAM0 100."""
    program = encode_program(accumulate_chain(arch, []), Layout.from_arch(arch))
    return write_model(folder, "lost_update", arch, program, to_bytes(unit_weights(arch), arch.dtype),
                       [("x", 0, 16)], [("y", 100, 1)])
