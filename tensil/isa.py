"""The Tensil instruction set: opcodes, instruction records, binary encoding, decoding, listing.

Facts of docs/tensil.md, "Instructions", each confirmed on the simulated RTL:

* An instruction is one little-endian integer of `Layout.instruction_bytes` bytes. From the
  least significant bit: operand0 (o0 bits), operand1 (o1 bits), operand2 (o2 bits), then a
  4-bit flags field and the 4-bit opcode, so the last byte of each record is
  `opcode << 4 | flags`. A `.tprog` is the concatenation of the records.
* Addresses are vector indices. An address operand holds the address in its low bits, then the
  stride *code* s (step 2^s vectors).
* Every `size` field in this module is the hardware field: the number of vectors minus one
  (`size=0` moves one vector). The only exception is `Simd`, which has no size (one vector).
* Operand2 (the size) must fit in `operand2_addr_bits` bits: the RTL reads 16 bits on the DRAM
  side of a DataMove but only 13 on the local side, so the padding bits must stay zero.

`encode` refuses any field that does not fit its bits; `decode` refuses truncated programs,
unknown opcodes, reserved flag values and non-zero padding bits, so `encode(decode(b)) == b`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Iterable, Sequence, Union

from tensil.arch import Arch

HEADER_BITS = 8
SIMD_OP_BITS = 4
CONFIGURE_REGISTER_BITS = 4


class ProgramError(ValueError):
    """An instruction that cannot be encoded, or bytes that are not a valid program."""


class Opcode(IntEnum):
    """Opcodes as the RTL decodes them (high nibble of the header byte)."""

    NOOP = 0x0
    MATMUL = 0x1
    DATA_MOVE = 0x2
    LOAD_WEIGHT = 0x3
    SIMD = 0x4
    CONFIGURE = 0xF


class DataFlow(IntEnum):
    """DataMove directions (the 4-bit flags field is an enumeration, not independent bits)."""

    DRAM0_TO_LOCAL = 0x0
    LOCAL_TO_DRAM0 = 0x1
    DRAM1_TO_LOCAL = 0x2
    LOCAL_TO_DRAM1 = 0x3
    ACC_TO_LOCAL = 0xC
    LOCAL_TO_ACC = 0xD
    LOCAL_TO_ACC_ACCUMULATE = 0xF

    @property
    def other_memory(self) -> str:
        """Name of the memory addressed by operand1 ('dram0', 'dram1' or 'acc')."""
        return {0: "dram0", 1: "dram0", 2: "dram1", 3: "dram1"}.get(int(self), "acc")

    @property
    def to_local(self) -> bool:
        """True when the move writes local memory."""
        return self in (DataFlow.DRAM0_TO_LOCAL, DataFlow.DRAM1_TO_LOCAL, DataFlow.ACC_TO_LOCAL)

    @property
    def is_dram(self) -> bool:
        return self.other_memory != "acc"


class SimdOp(IntEnum):
    """ALU operations of the SIMD unit (per lane, on raw values; booleans are the fixed-point 1)."""

    NOOP = 0
    ZERO = 1
    MOVE = 2
    NOT = 3
    AND = 4
    OR = 5
    INCREMENT = 6
    DECREMENT = 7
    ADD = 8
    SUBTRACT = 9
    MULTIPLY = 10
    ABS = 11
    GREATER = 12
    GREATER_EQUAL = 13
    MIN = 14
    MAX = 15

    @property
    def arity(self) -> int:
        """Number of sources the operation reads (0, 1 or 2)."""
        if self in (SimdOp.NOOP, SimdOp.ZERO):
            return 0
        if self in (SimdOp.MOVE, SimdOp.NOT, SimdOp.INCREMENT, SimdOp.DECREMENT, SimdOp.ABS):
            return 1
        return 2


class ConfigRegister(IntEnum):
    """Configure registers of the RTL (docs/tensil.md, "Instructions")."""

    DRAM0_OFFSET = 0x0
    DRAM0_CACHE = 0x1
    DRAM1_OFFSET = 0x4
    DRAM1_CACHE = 0x5
    TIMEOUT = 0x8
    TRACEPOINT = 0x9
    PROGRAM_COUNTER = 0xA
    SAMPLE_INTERVAL = 0xB


@dataclass(frozen=True)
class MatMul:
    """`acc[acc_addr + i*2^acc_stride] (+)= W . local[local_addr + i*2^local_stride] + bias`,
    i = 0..size; `zeroes` feeds zero vectors instead of local memory (result = bias)."""

    local_addr: int
    local_stride: int
    acc_addr: int
    acc_stride: int
    size: int
    accumulate: bool = False
    zeroes: bool = False


@dataclass(frozen=True)
class LoadWeight:
    """Push size+1 vectors into the array, highest address first: `local[local_addr +
    size*2^local_stride]`, ..., `local[local_addr]` (zero vectors with `zeroes`)."""

    local_addr: int
    local_stride: int
    size: int
    zeroes: bool = False


@dataclass(frozen=True)
class DataMove:
    """Copy size+1 vectors between local memory and DRAM0/DRAM1/accumulators (`flow`)."""

    flow: DataFlow
    local_addr: int
    local_stride: int
    addr: int
    stride: int
    size: int


@dataclass(frozen=True)
class Simd:
    """One vector through the ALU array: `res = op(L, R)` with sources 0 = the vector read from
    `acc[read_addr]` (needs `read`) or k = register k; `dest` k >= 1 stores res in register k;
    `write` stores res (or adds it, with `accumulate`) to `acc[write_addr]`."""

    op: SimdOp
    left: int = 0
    right: int = 0
    dest: int = 0
    read: bool = False
    write: bool = False
    accumulate: bool = False
    read_addr: int = 0
    write_addr: int = 0


@dataclass(frozen=True)
class Configure:
    """Set a TCU register (emitted by drivers, not compilers). DRAM offsets are in 64 KiB units."""

    register: int
    value: int


@dataclass(frozen=True)
class NoOp:
    """Consumed in one cycle, no effect."""


Instruction = Union[MatMul, LoadWeight, DataMove, Simd, Configure, NoOp]


def _lg(n: int) -> int:
    """ceil(log2(n)) for n >= 1 (Tensil computes it as the bit length of n - 1)."""
    return max(int(n) - 1, 0).bit_length()


def _round8(bits: int) -> int:
    return (bits + 7) // 8 * 8


@dataclass(frozen=True)
class Layout:
    """Field widths of the instruction format of one architecture (docs/tensil.md, "Instructions")."""

    array_size: int
    local_bits: int
    dram0_bits: int
    dram1_bits: int
    acc_bits: int
    stride0_bits: int
    stride1_bits: int
    simd_operand_bits: int
    operand0_addr_bits: int
    operand0_bits: int
    operand1_addr_bits: int
    operand1_bits: int
    operand2_addr_bits: int
    operand2_bits: int

    @classmethod
    def from_arch(cls, arch: Arch) -> "Layout":
        L, C = _lg(arch.local_depth), _lg(arch.accumulator_depth)
        D0, D1 = _lg(arch.dram0_depth), _lg(arch.dram1_depth)
        S0, S1 = _lg(arch.stride0_depth), _lg(arch.stride1_depth)
        so = _lg(arch.simd_registers_depth + 1)
        a0 = max(L, C)
        a1 = max(L, D0, D1, C)
        a2 = max(min(L, C), min(L, D0), min(L, D1), 3 * so + SIMD_OP_BITS)
        return cls(
            array_size=arch.array_size,
            local_bits=L,
            dram0_bits=D0,
            dram1_bits=D1,
            acc_bits=C,
            stride0_bits=S0,
            stride1_bits=S1,
            simd_operand_bits=so,
            operand0_addr_bits=a0,
            operand0_bits=_round8(a0 + S0),
            operand1_addr_bits=a1,
            operand1_bits=_round8(a1 + S1),
            operand2_addr_bits=a2,
            operand2_bits=_round8(a2),
        )

    @property
    def instruction_bits(self) -> int:
        return self.operand0_bits + self.operand1_bits + self.operand2_bits + HEADER_BITS

    @property
    def instruction_bytes(self) -> int:
        return self.instruction_bits // 8

    @property
    def operands_bits(self) -> int:
        """Bits below the header (the Configure argument spans all of them)."""
        return self.operand0_bits + self.operand1_bits + self.operand2_bits

    @property
    def simd_sub_instruction_bits(self) -> int:
        return 3 * self.simd_operand_bits + SIMD_OP_BITS


# ------------------------------------------------------------------------------------ encoding


def _field(value: int, bits: int, what: str, instr: Instruction) -> int:
    value = int(value)
    if not 0 <= value < (1 << bits):
        raise ProgramError(f"{type(instr).__name__}: {what} {value} does not fit in {bits} bits")
    return value


def _addr_operand(addr: int, stride: int, addr_bits: int, stride_bits: int, what: str, instr) -> int:
    return _field(addr, addr_bits, f"{what} address", instr) | (
        _field(stride, stride_bits, f"{what} stride code", instr) << addr_bits
    )


def _fields(instr: Instruction, layout: Layout) -> tuple[int, int, int, int, int]:
    """(opcode, flags, operand0, operand1, operand2) of one instruction."""
    lo = layout
    if isinstance(instr, MatMul):
        op0 = _addr_operand(instr.local_addr, instr.local_stride, lo.operand0_addr_bits, lo.stride0_bits, "local", instr)
        op1 = _addr_operand(instr.acc_addr, instr.acc_stride, lo.operand1_addr_bits, lo.stride1_bits, "acc", instr)
        op2 = _field(instr.size, lo.operand2_addr_bits, "size", instr)
        return Opcode.MATMUL, int(bool(instr.accumulate)) | int(bool(instr.zeroes)) << 1, op0, op1, op2
    if isinstance(instr, DataMove):
        try:
            flow = DataFlow(instr.flow)
        except ValueError:
            raise ProgramError(f"DataMove: flow {instr.flow!r} is not a valid direction") from None
        op0 = _addr_operand(instr.local_addr, instr.local_stride, lo.operand0_addr_bits, lo.stride0_bits, "local", instr)
        op1 = _addr_operand(instr.addr, instr.stride, lo.operand1_addr_bits, lo.stride1_bits, flow.other_memory, instr)
        op2 = _field(instr.size, lo.operand2_addr_bits, "size", instr)
        return Opcode.DATA_MOVE, int(flow), op0, op1, op2
    if isinstance(instr, LoadWeight):
        op0 = _addr_operand(instr.local_addr, instr.local_stride, lo.operand0_addr_bits, lo.stride0_bits, "local", instr)
        op1 = _field(instr.size, lo.operand1_addr_bits, "size", instr)
        return Opcode.LOAD_WEIGHT, int(bool(instr.zeroes)), op0, op1, 0
    if isinstance(instr, Simd):
        try:
            op = SimdOp(instr.op)
        except ValueError:
            raise ProgramError(f"Simd: op {instr.op!r} is not an ALU operation") from None
        so = lo.simd_operand_bits
        sub = (
            _field(instr.dest, so, "dest register", instr)
            | _field(instr.right, so, "right source", instr) << so
            | _field(instr.left, so, "left source", instr) << 2 * so
            | int(op) << 3 * so
        )
        op0 = _field(instr.write_addr, lo.operand0_addr_bits, "write address", instr)
        op1 = _field(instr.read_addr, lo.operand1_addr_bits, "read address", instr)
        flags = int(bool(instr.read)) | int(bool(instr.write)) << 1 | int(bool(instr.accumulate)) << 2
        return Opcode.SIMD, flags, op0, op1, sub
    if isinstance(instr, Configure):
        reg = _field(instr.register, CONFIGURE_REGISTER_BITS, "register", instr)
        value = _field(instr.value, lo.operands_bits - CONFIGURE_REGISTER_BITS, "value", instr)
        arg = reg | value << CONFIGURE_REGISTER_BITS
        return Opcode.CONFIGURE, 0, arg, 0, 0  # op0 carries the whole argument, see encode_int
    if isinstance(instr, NoOp):
        return Opcode.NOOP, 0, 0, 0, 0
    raise ProgramError(f"not an instruction: {instr!r}")


def encode_int(instr: Instruction, layout: Layout) -> int:
    """The instruction as one integer (bit 0 = LSB of operand0)."""
    opcode, flags, op0, op1, op2 = _fields(instr, layout)
    o0, o1, o2 = layout.operand0_bits, layout.operand1_bits, layout.operand2_bits
    body = op0 if opcode == Opcode.CONFIGURE else op0 | op1 << o0 | op2 << (o0 + o1)
    return body | (int(opcode) << 4 | flags) << (o0 + o1 + o2)


def encode(instr: Instruction, layout: Layout) -> bytes:
    """One instruction as its `.tprog` bytes (little-endian)."""
    return encode_int(instr, layout).to_bytes(layout.instruction_bytes, "little")


def encode_program(instrs: Iterable[Instruction], layout: Layout) -> bytes:
    """A whole `.tprog`."""
    return b"".join(encode(i, layout) for i in instrs)


# ------------------------------------------------------------------------------------ decoding


def _split(word: int, layout: Layout) -> tuple[int, int, int, int, int]:
    o0, o1, o2 = layout.operand0_bits, layout.operand1_bits, layout.operand2_bits
    op0 = word & ((1 << o0) - 1)
    op1 = (word >> o0) & ((1 << o1) - 1)
    op2 = (word >> (o0 + o1)) & ((1 << o2) - 1)
    header = word >> (o0 + o1 + o2)
    return header >> 4, header & 0xF, op0, op1, op2


def _addr_stride(op: int, addr_bits: int, stride_bits: int) -> tuple[int, int, int]:
    """(address, stride code, leftover padding bits)."""
    return op & ((1 << addr_bits) - 1), (op >> addr_bits) & ((1 << stride_bits) - 1), op >> (addr_bits + stride_bits)


def decode_int(word: int, layout: Layout) -> Instruction:
    """Decode one instruction integer; raise ProgramError on anything the encoder would not write."""
    opcode, flags, op0, op1, op2 = _split(word, layout)
    lo = layout

    def pad_check(ok: bool, what: str) -> None:
        if not ok:
            raise ProgramError(f"{what} has non-zero reserved bits")

    if opcode == Opcode.NOOP:
        pad_check(word & ((1 << lo.operands_bits) - 1) == 0 and flags == 0, "NoOp")
        return NoOp()
    if opcode == Opcode.CONFIGURE:
        pad_check(flags == 0, "Configure flags")
        arg = word & ((1 << lo.operands_bits) - 1)
        return Configure(arg & 0xF, arg >> CONFIGURE_REGISTER_BITS)
    a0, s0, pad0 = _addr_stride(op0, lo.operand0_addr_bits, lo.stride0_bits)
    if opcode == Opcode.MATMUL:
        if flags & 0b1100:
            raise ProgramError(f"MatMul flags {flags:#x} use reserved bits")
        a1, s1, pad1 = _addr_stride(op1, lo.operand1_addr_bits, lo.stride1_bits)
        pad_check(pad0 == 0 and pad1 == 0 and op2 >> lo.operand2_addr_bits == 0, "MatMul")
        return MatMul(a0, s0, a1, s1, op2, accumulate=bool(flags & 1), zeroes=bool(flags & 2))
    if opcode == Opcode.DATA_MOVE:
        try:
            flow = DataFlow(flags)
        except ValueError:
            raise ProgramError(f"DataMove flags {flags:#x} are not a valid direction") from None
        a1, s1, pad1 = _addr_stride(op1, lo.operand1_addr_bits, lo.stride1_bits)
        pad_check(pad0 == 0 and pad1 == 0 and op2 >> lo.operand2_addr_bits == 0, "DataMove")
        return DataMove(flow, a0, s0, a1, s1, op2)
    if opcode == Opcode.LOAD_WEIGHT:
        if flags & 0b1110:
            raise ProgramError(f"LoadWeight flags {flags:#x} use reserved bits")
        pad_check(pad0 == 0 and op1 >> lo.operand1_addr_bits == 0 and op2 == 0, "LoadWeight")
        return LoadWeight(a0, s0, op1, zeroes=bool(flags & 1))
    if opcode == Opcode.SIMD:
        if flags & 0b1000:
            raise ProgramError(f"SIMD flags {flags:#x} use reserved bits")
        so = lo.simd_operand_bits
        m = (1 << so) - 1
        pad_check(
            op0 >> lo.operand0_addr_bits == 0
            and op1 >> lo.operand1_addr_bits == 0
            and op2 >> lo.simd_sub_instruction_bits == 0,
            "SIMD",
        )
        return Simd(
            SimdOp((op2 >> 3 * so) & 0xF),
            left=(op2 >> 2 * so) & m,
            right=(op2 >> so) & m,
            dest=op2 & m,
            read=bool(flags & 1),
            write=bool(flags & 2),
            accumulate=bool(flags & 4),
            read_addr=op1,
            write_addr=op0,
        )
    raise ProgramError(f"opcode {opcode:#x} is not an instruction the hardware executes")


def _decode_one_by_one(data: bytes, layout: Layout) -> list[Instruction]:
    n = layout.instruction_bytes
    out: list[Instruction] = []
    for index, offset in enumerate(range(0, len(data), n)):
        try:
            out.append(decode_int(int.from_bytes(data[offset : offset + n], "little"), layout))
        except ProgramError as e:
            raise ProgramError(f"instruction {index} (byte {offset}): {e}") from None
    return out


def _decode_vectorised(data: bytes, layout: Layout) -> list[Instruction]:
    """Same result as `_decode_one_by_one` for formats of at most 8 bytes, with the field
    extraction and checks done by numpy (a ResNet program has tens of thousands of records)."""
    import numpy as np

    n = layout.instruction_bytes
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, n)
    padded = np.zeros((raw.shape[0], 8), dtype=np.uint8)
    padded[:, :n] = raw
    w = padded.view("<u8").ravel()
    lo = layout
    o0, o1, o2 = lo.operand0_bits, lo.operand1_bits, lo.operand2_bits
    u = np.uint64
    op0 = w & u((1 << o0) - 1)
    op1 = (w >> u(o0)) & u((1 << o1) - 1)
    op2 = (w >> u(o0 + o1)) & u((1 << o2) - 1)
    header = (w >> u(o0 + o1 + o2)).astype(np.int64)
    opcode, flags = header >> 4, header & 0xF
    a0 = op0 & u((1 << lo.operand0_addr_bits) - 1)
    s0 = (op0 >> u(lo.operand0_addr_bits)) & u((1 << lo.stride0_bits) - 1)
    pad0 = op0 >> u(lo.operand0_addr_bits + lo.stride0_bits)
    a1 = op1 & u((1 << lo.operand1_addr_bits) - 1)
    s1 = (op1 >> u(lo.operand1_addr_bits)) & u((1 << lo.stride1_bits) - 1)
    pad1 = op1 >> u(lo.operand1_addr_bits + lo.stride1_bits)
    size_ok = (op2 >> u(lo.operand2_addr_bits)) == 0
    operands = w & u((1 << lo.operands_bits) - 1)
    flows = np.array([int(f) for f in DataFlow])
    ok = np.select(
        [opcode == Opcode.NOOP, opcode == Opcode.CONFIGURE, opcode == Opcode.MATMUL, opcode == Opcode.DATA_MOVE,
         opcode == Opcode.LOAD_WEIGHT, opcode == Opcode.SIMD],
        [(operands == 0) & (flags == 0),
         flags == 0,
         ((flags & 0b1100) == 0) & (pad0 == 0) & (pad1 == 0) & size_ok,
         np.isin(flags, flows) & (pad0 == 0) & (pad1 == 0) & size_ok,
         ((flags & 0b1110) == 0) & (pad0 == 0) & ((op1 >> u(lo.operand1_addr_bits)) == 0) & (op2 == 0),
         ((flags & 0b1000) == 0) & ((op0 >> u(lo.operand0_addr_bits)) == 0)
         & ((op1 >> u(lo.operand1_addr_bits)) == 0) & ((op2 >> u(lo.simd_sub_instruction_bits)) == 0)],
        default=False,
    )  # fmt: skip
    if not ok.all():
        return _decode_one_by_one(data, layout)  # raises with the exact message of the first bad record
    out: list = [None] * len(w)
    L = lambda a: a.tolist()  # noqa: E731

    def each(code: int):
        idx = np.flatnonzero(opcode == code)
        return idx.tolist(), idx

    ids, ix = each(Opcode.MATMUL)
    for i, la, ls, aa, as_, sz, f in zip(ids, L(a0[ix]), L(s0[ix]), L(a1[ix]), L(s1[ix]), L(op2[ix]), L(flags[ix])):
        out[i] = MatMul(la, ls, aa, as_, sz, accumulate=bool(f & 1), zeroes=bool(f & 2))
    ids, ix = each(Opcode.DATA_MOVE)
    flow_of = {int(f): f for f in DataFlow}
    for i, f, la, ls, xa, xs, sz in zip(ids, L(flags[ix]), L(a0[ix]), L(s0[ix]), L(a1[ix]), L(s1[ix]), L(op2[ix])):
        out[i] = DataMove(flow_of[f], la, ls, xa, xs, sz)
    ids, ix = each(Opcode.LOAD_WEIGHT)
    for i, la, ls, sz, f in zip(ids, L(a0[ix]), L(s0[ix]), L(op1[ix]), L(flags[ix])):
        out[i] = LoadWeight(la, ls, sz, zeroes=bool(f & 1))
    ids, ix = each(Opcode.SIMD)
    so = lo.simd_operand_bits
    m = (1 << so) - 1
    op_of = {int(o): o for o in SimdOp}
    for i, sub, f, wa, ra in zip(ids, L(op2[ix]), L(flags[ix]), L(op0[ix]), L(op1[ix])):
        out[i] = Simd(op_of[(sub >> 3 * so) & 0xF], left=(sub >> 2 * so) & m, right=(sub >> so) & m, dest=sub & m,
                      read=bool(f & 1), write=bool(f & 2), accumulate=bool(f & 4), read_addr=ra, write_addr=wa)  # fmt: skip
    ids, ix = each(Opcode.CONFIGURE)
    for i, arg in zip(ids, L(operands[ix])):
        out[i] = Configure(arg & 0xF, arg >> CONFIGURE_REGISTER_BITS)
    noop = NoOp()
    return [noop if ins is None else ins for ins in out]


def decode(data: bytes, layout: Layout) -> list[Instruction]:
    """Decode a whole `.tprog`; errors name the instruction index and byte offset."""
    n = layout.instruction_bytes
    data = bytes(data)
    if len(data) % n:
        raise ProgramError(
            f"program of {len(data)} bytes is truncated: not a multiple of the {n}-byte instruction size"
        )
    if n <= 8 and len(data) >= 64 * n:
        try:
            import numpy  # noqa: F401  (the board and the host have it; the plain path needs nothing)
        except ImportError:
            return _decode_one_by_one(data, layout)
        return _decode_vectorised(data, layout)
    return _decode_one_by_one(data, layout)


# ------------------------------------------------------------------------------------ listing

_SIMD_OP_NAMES = {
    SimdOp.NOOP: "NoOp", SimdOp.ZERO: "Zero", SimdOp.MOVE: "Move", SimdOp.NOT: "Not",
    SimdOp.AND: "And", SimdOp.OR: "Or", SimdOp.INCREMENT: "Increment", SimdOp.DECREMENT: "Decrement",
    SimdOp.ADD: "Add", SimdOp.SUBTRACT: "Subtract", SimdOp.MULTIPLY: "Multiply", SimdOp.ABS: "Abs",
    SimdOp.GREATER: "GreaterThan", SimdOp.GREATER_EQUAL: "GreaterThanEqual",
    SimdOp.MIN: "Min", SimdOp.MAX: "Max",
}  # fmt: skip

_MEMORY_NAMES = {"dram0": "DRAM0", "dram1": "DRAM1", "acc": "Acc"}


def _at(name: str, addr: int, stride: int) -> str:
    return f"{name}({addr})" + (f"@2^{stride}" if stride else "")


def _count(size: int) -> str:
    return f"{size}(+1)"


def _operand(code: int) -> str:
    return "I" if code == 0 else f"R{code}"


def mnemonic(instr: Instruction) -> str:
    """One-line assembly in the style of Tensil's `.tasm` (sizes printed as `n-1(+1)`)."""
    if isinstance(instr, MatMul):
        mode = ",".join(m for m, on in (("Acc", instr.accumulate), ("Zeroes", instr.zeroes)) if on)
        src = "Zeroes" if instr.zeroes else _at("Local", instr.local_addr, instr.local_stride)
        return f"MatMul{f'({mode})' if mode else ''} {src} {_at('Acc', instr.acc_addr, instr.acc_stride)} {_count(instr.size)}"
    if isinstance(instr, LoadWeight):
        src = "Zeroes" if instr.zeroes else _at("Local", instr.local_addr, instr.local_stride)
        return f"LoadWeights {src} {_count(instr.size)}"
    if isinstance(instr, DataMove):
        flow = DataFlow(instr.flow)
        arrow = "<-" if flow.to_local else ("->, Acc" if flow == DataFlow.LOCAL_TO_ACC_ACCUMULATE else "->")
        other = _at(_MEMORY_NAMES[flow.other_memory], instr.addr, instr.stride)
        return f"DataMove({arrow}) {_at('Local', instr.local_addr, instr.local_stride)} {other} {_count(instr.size)}"
    if isinstance(instr, Simd):
        op = SimdOp(instr.op)
        flags = "".join(f for f, on in (("R", instr.read), ("W", instr.write), ("A", instr.accumulate)) if on)
        args = {0: "", 1: _operand(instr.left)}.get(op.arity, f"{_operand(instr.left)},{_operand(instr.right)}")
        dest = _operand(instr.dest) if instr.dest else "O"
        text = f"SIMD{f'({flags})' if flags else ''} {dest}={_SIMD_OP_NAMES[op]}({args})"
        if instr.write:
            text += f" WAcc({instr.write_addr})"
        if instr.read:
            text += f" RAcc({instr.read_addr})"
        return text
    if isinstance(instr, Configure):
        try:
            reg = ConfigRegister(instr.register).name
        except ValueError:
            reg = f"reg{instr.register:#x}"
        return f"Configure {reg}={instr.value:#x}"
    if isinstance(instr, NoOp):
        return "NoOp"
    raise ProgramError(f"not an instruction: {instr!r}")


def listing(instrs: Sequence[Instruction], layout: Layout, start: int = 0) -> str:
    """Readable disassembly: index, byte offset, raw hex, mnemonic with memory names."""
    n = layout.instruction_bytes
    width = max(len(str(start + len(instrs) - 1)), 1)
    lines = []
    for i, instr in enumerate(instrs, start):
        raw = encode_int(instr, layout)
        lines.append(f"[{i:>{width}}] {i * n:#08x}  {raw:0{2 * n}x}  {mnemonic(instr)}")
    return "\n".join(lines) + ("\n" if lines else "")
