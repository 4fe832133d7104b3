"""Instruction encoding: worked examples, field widths, round trips, refusals (docs/tensil.md)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tensil.arch import Arch, load_arch
from tensil.isa import (
    Configure,
    DataFlow,
    DataMove,
    Layout,
    LoadWeight,
    MatMul,
    NoOp,
    ProgramError,
    Simd,
    SimdOp,
    decode,
    encode,
    encode_int,
    encode_program,
    listing,
)

CUSTOM_PERF = Layout.from_arch(load_arch("custom_perf"))

# worked examples of Tensil's encoding (confirmed bit for bit on the simulated RTL)
WORKED_EXAMPLES = [
    (DataMove(DataFlow.DRAM0_TO_LOCAL, 5, 0, 1000, 0, 9), 0x2000090003E80005, "05 00 e8 03 00 09 00 20"),
    (MatMul(100, 1, 3, 0, 15, accumulate=True), 0x11000F0000032064, "64 20 03 00 00 0f 00 11"),
    (LoadWeight(200, 0, 11), 0x30000000000B00C8, "c8 00 0b 00 00 00 00 30"),
    (LoadWeight(0, 0, 0, zeroes=True), 0x3100000000000000, "00 00 00 00 00 00 00 31"),
    (
        Simd(SimdOp.MAX, left=0, right=1, read=True, write=True, write_addr=7, read_addr=9),
        0x43007A0000090007,
        "07 00 09 00 00 7a 00 43",
    ),
    (Simd(SimdOp.ZERO, dest=1), 0x4000090000000000, "00 00 00 00 00 09 00 40"),
    (Configure(0, 0x1F00), 0xF00000000001F000, "00 f0 01 00 00 00 00 f0"),
]


@pytest.mark.parametrize("instr,word,hexbytes", WORKED_EXAMPLES)
def test_worked_examples(instr, word, hexbytes):
    assert encode_int(instr, CUSTOM_PERF) == word
    assert encode(instr, CUSTOM_PERF) == bytes.fromhex(hexbytes)
    assert decode(bytes.fromhex(hexbytes), CUSTOM_PERF) == [instr]


def _arch(**kw) -> Arch:
    base = load_arch("pynqz1").to_json_dict()
    base.update(kw)
    return Arch(**base)


@pytest.mark.parametrize(
    "arch,widths",
    [
        (load_arch("pynqz1"), (13, 16, 20, 24, 13, 16, 8)),
        (load_arch("custom_perf"), (13, 16, 20, 24, 13, 16, 8)),
        (_arch(array_size=16, dram0_depth=2**21, dram1_depth=2**21, local_depth=20480, accumulator_depth=4096),
         (15, 24, 21, 24, 15, 16, 9)),  # ultra96v2
        (_arch(array_size=32, dram0_depth=2**21, dram1_depth=2**21, local_depth=49152, accumulator_depth=20480),
         (16, 24, 21, 24, 16, 16, 9)),  # zcu104_uram
        (_arch(array_size=4, dram0_depth=4096, dram1_depth=32768, local_depth=4096, accumulator_depth=4096),
         (12, 16, 15, 24, 12, 16, 8)),  # cmoda7
    ],
)
def test_field_widths_of_spec_table(arch, widths):
    lo = Layout.from_arch(arch)
    got = (lo.operand0_addr_bits, lo.operand0_bits, lo.operand1_addr_bits, lo.operand1_bits,
           lo.operand2_addr_bits, lo.operand2_bits, lo.instruction_bytes)  # fmt: skip
    assert got == widths


def instructions(lo: Layout):
    addr0 = st.integers(0, (1 << lo.operand0_addr_bits) - 1)
    addr1 = st.integers(0, (1 << lo.operand1_addr_bits) - 1)
    s0 = st.integers(0, (1 << lo.stride0_bits) - 1)
    s1 = st.integers(0, (1 << lo.stride1_bits) - 1)
    size = st.integers(0, (1 << lo.operand2_addr_bits) - 1)
    reg = st.integers(0, (1 << lo.simd_operand_bits) - 1)
    return st.one_of(
        st.builds(MatMul, addr0, s0, addr1, s1, size, st.booleans(), st.booleans()),
        st.builds(LoadWeight, addr0, s0, addr1, st.booleans()),
        st.builds(DataMove, st.sampled_from(list(DataFlow)), addr0, s0, addr1, s1, size),
        st.builds(Simd, st.sampled_from(list(SimdOp)), reg, reg, reg, st.booleans(), st.booleans(),
                  st.booleans(), addr1, addr0),
        st.builds(Configure, st.integers(0, 15), st.integers(0, (1 << (lo.operands_bits - 4)) - 1)),
        st.just(NoOp()),
    )


@pytest.mark.parametrize("arch_name", ["custom_perf", "pynqz1"])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_round_trip_random_programs(arch_name, data):
    lo = Layout.from_arch(load_arch(arch_name))
    prog = data.draw(st.lists(instructions(lo), max_size=12))
    blob = encode_program(prog, lo)
    assert len(blob) == len(prog) * lo.instruction_bytes
    assert decode(blob, lo) == prog
    assert encode_program(decode(blob, lo), lo) == blob


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_round_trip_nine_byte_format(data):
    lo = Layout.from_arch(_arch(array_size=16, dram0_depth=2**21, dram1_depth=2**21, local_depth=20480,
                                accumulator_depth=4096))
    prog = data.draw(st.lists(instructions(lo), max_size=8))
    assert decode(encode_program(prog, lo), lo) == prog


def test_header_is_last_byte():
    blob = encode(MatMul(1, 0, 2, 0, 3, zeroes=True), CUSTOM_PERF)
    assert blob[-1] == 0x12


@pytest.mark.parametrize(
    "instr,what",
    [
        (MatMul(1 << 13, 0, 0, 0, 0), "local address"),
        (MatMul(0, 8, 0, 0, 0), "stride code"),
        (MatMul(0, 0, 0, 0, 1 << 13), "size"),  # bits 53-55 must stay zero (RTL facts §1d)
        (DataMove(DataFlow.DRAM0_TO_LOCAL, 0, 0, 1 << 20, 0, 0), "dram0 address"),
        (DataMove(5, 0, 0, 0, 0, 0), "flow"),
        (LoadWeight(0, 0, -1), "size"),
        (Simd(SimdOp.MOVE, left=2), "left source"),
        (Configure(16, 0), "register"),
    ],
)
def test_encode_refuses_fields_that_do_not_fit(instr, what):
    with pytest.raises(ProgramError, match=what):
        encode(instr, CUSTOM_PERF)


@pytest.mark.parametrize(
    "word,what",
    [
        (0x5000000000000000, "opcode 0x5"),
        (0xE000000000000000, "opcode 0xe"),
        (0x2400000000000000, "not a valid direction"),  # DataMove kind 4
        (0x1400000000000000, "reserved"),  # MatMul flag bit 2
        (0x3200000000000000, "reserved"),  # LoadWeight flag bit 1
        (0x4800000000000000, "reserved"),  # SIMD flag bit 3
        (0x2020000000000000, "reserved"),  # DataMove size bit 53
        (0x0000000000000001, "NoOp"),
    ],
)
def test_decode_refuses(word, what):
    with pytest.raises(ProgramError, match=what):
        decode(word.to_bytes(8, "little"), CUSTOM_PERF)


def test_decode_refuses_truncated_program_and_names_instruction():
    blob = encode_program([NoOp(), MatMul(0, 0, 0, 0, 0)], CUSTOM_PERF)
    with pytest.raises(ProgramError, match="truncated"):
        decode(blob[:-3], CUSTOM_PERF)
    bad = blob + (0x5000000000000000).to_bytes(8, "little")
    with pytest.raises(ProgramError, match=r"instruction 2 \(byte 16\)"):
        decode(bad, CUSTOM_PERF)


def test_listing_names_memories_and_offsets():
    text = listing(
        [
            DataMove(DataFlow.DRAM1_TO_LOCAL, 0, 0, 10, 0, 4),
            DataMove(DataFlow.LOCAL_TO_ACC_ACCUMULATE, 3, 1, 7, 2, 0),
            MatMul(0, 0, 0, 0, 3, zeroes=True),
            Simd(SimdOp.MULTIPLY, left=0, right=1, dest=1, read=True, read_addr=4),
        ],
        CUSTOM_PERF,
    ).splitlines()
    assert text[0].endswith("DataMove(<-) Local(0) DRAM1(10) 4(+1)")
    assert "0x000008" in text[1] and text[1].endswith("DataMove(->, Acc) Local(3)@2^1 Acc(7)@2^2 0(+1)")
    assert text[2].endswith("MatMul(Zeroes) Zeroes Acc(0) 3(+1)")
    assert text[3].endswith("SIMD(R) R1=Multiply(I,R1) RAcc(4)")


@pytest.mark.parametrize("arch_name", ["custom_perf", "pynqz1"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_vectorised_decoder_equals_one_by_one(arch_name, data):
    from tensil.isa import _decode_one_by_one, _decode_vectorised

    lo = Layout.from_arch(load_arch(arch_name))
    prog = data.draw(st.lists(instructions(lo), min_size=1, max_size=40))
    blob = encode_program(prog, lo)
    assert _decode_vectorised(blob, lo) == _decode_one_by_one(blob, lo) == prog
    # a bad record anywhere gives the same one-line error as the plain decoder
    k = data.draw(st.integers(0, len(prog) - 1))
    bad = blob[: 8 * k] + (0x5000000000000000).to_bytes(8, "little") + blob[8 * (k + 1):]
    with pytest.raises(ProgramError, match=rf"instruction {k} \(byte {8 * k}\)"):
        _decode_vectorised(bad, lo)
