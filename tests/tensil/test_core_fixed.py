"""Fixed-point arithmetic: ties both ways, saturation at every step, min*min, sub of min, bytes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tensil import fixed
from tensil.arch import DATA_TYPES

FP16 = DATA_TYPES["FP16BP8"]


def test_quantize_ties_half_up_like_java_math_round():
    raw, n = fixed.quantize(np.array([0.5, -0.5, 2.5, -2.5, 1.5]) / 256, FP16, rounding="half_up")
    assert raw.tolist() == [1, 0, 3, -2, 2] and n == 0


def test_quantize_ties_half_even_like_numpy_round():
    raw, _ = fixed.quantize(np.array([0.5, -0.5, 2.5, -2.5, 1.5]) / 256, FP16, rounding="half_even")
    assert raw.tolist() == [0, 0, 2, -2, 2]


def test_quantize_saturates_and_counts_or_wraps():
    x = np.array([127.99609375, 128.0, -128.0, -128.01, 1e9, -np.inf])
    raw, n = fixed.quantize(x, FP16)
    assert raw.tolist() == [32767, 32767, -32768, -32768, 32767, -32768] and n == 4
    wrapped, n = fixed.quantize(np.array([128.0, -128.5]), FP16, saturate=False)
    assert wrapped.tolist() == [-32768, 32640] and n == 2


def test_quantize_refuses_nan_and_unknown_rounding():
    with pytest.raises(fixed.FixedPointError, match="NaN"):
        fixed.quantize([np.nan], FP16)
    with pytest.raises(fixed.FixedPointError, match="rounding"):
        fixed.quantize([1.0], FP16, rounding="down")


def test_mul_rounds_ties_to_even_both_directions():
    # products of exactly k + 0.5 LSB, measured on the RTL (docs/tensil.md)
    assert fixed.mul([3, -3, 384, -128], [128, 128, 129, 127], FP16).tolist() == [2, -2, 194, -64]
    assert fixed.mul([1, -1, 1], [128, 128, 384], FP16).tolist() == [0, 0, 2]


def test_min_times_min_saturates():
    assert fixed.mul([-32768], [-32768], FP16).tolist() == [32767]
    assert fixed.mul([-32768], [32767], FP16).tolist() == [-32768]
    assert fixed.mul([-256], [32767], FP16).tolist() == [-32767]  # RTL facts §1d Mul row


def test_sub_of_min_does_not_wrap():
    assert fixed.sub([128, 0, -32768], [-32768, -32768, 1], FP16).tolist() == [32767, 32767, -32768]
    assert fixed.add([32767, -32768], [1, -1], FP16).tolist() == [32767, -32768]


def test_mac_saturates_at_every_step_and_rounds_product_only():
    # bias 32767, then +1000, then -1000 -> 31767 (a wide accumulator would give 32767)
    z = np.array([32767])
    z = fixed.mac([1000], [256], z, FP16)
    z = fixed.mac([-1000], [256], z, FP16)
    assert z.tolist() == [31767]
    # +30000, +30000, -30000 from 0 -> 2767 (RTL facts §1c (ii))
    z = np.array([0])
    for x in (30000, 30000, -30000):
        z = fixed.mac([x], [256], z, FP16)
    assert z.tolist() == [2767]


def test_mac_tie_sequence_matches_rtl_measurement():
    # RTL facts §1c (i): all x = 1, all W = 128, bias 1 -> 2; bias 3 -> 4; bias -1 -> 0
    for bias, expected in [(0, 0), (1, 2), (2, 2), (3, 4), (-1, 0), (-2, -2)]:
        z = np.array([bias])
        for _ in range(12):
            z = fixed.mac([1], [128], z, FP16)
        assert z.tolist() == [expected]
    # products of 1.5 / -0.5 / 0.25 / 0.75 LSB from bias 0 -> 24 / 0 / 0 / 12
    for x, w, expected in [(3, 128, 24), (-1, 128, 0), (1, 64, 0), (3, 64, 12)]:
        z = np.array([0])
        for _ in range(12):
            z = fixed.mac([x], [w], z, FP16)
        assert z.tolist() == [expected]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(list(DATA_TYPES.values())),
    st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=20),
    st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=20),
)
def test_mac_equals_rne_of_exact_sum(dtype, xs, ys):
    n = min(len(xs), len(ys))
    x = fixed.saturate(xs[:n], dtype)
    y = fixed.saturate(ys[:n], dtype)
    z = fixed.saturate(ys[:n][::-1], dtype)
    got = fixed.mac(x, y, z, dtype).tolist()
    from fractions import Fraction

    for xi, yi, zi, g in zip(x.tolist(), y.tolist(), z.tolist(), got):
        exact = Fraction(xi * yi + zi * dtype.scale, dtype.scale)
        r = round(exact)  # Python's round of a Fraction is half-to-even
        assert g == min(max(r, dtype.min_raw), dtype.max_raw)


@pytest.mark.parametrize("name", list(DATA_TYPES))
def test_bytes_round_trip_and_encoding(name):
    dtype = DATA_TYPES[name]
    raw = np.array([dtype.min_raw, -1, 0, 1, dtype.max_raw])
    blob = fixed.to_bytes(raw, dtype)
    assert len(blob) == raw.size * dtype.bytes_per_scalar
    assert fixed.from_bytes(blob, dtype).tolist() == raw.tolist()


def test_fp18_sits_in_32_bit_slot_with_upper_bits_zero_and_fp16_is_little_endian():
    blob = fixed.to_bytes([-1], DATA_TYPES["FP18BP10"])
    assert blob == bytes([0xFF, 0xFF, 0x03, 0x00])
    assert fixed.to_bytes([0x0102, -2], FP16) == bytes([0x02, 0x01, 0xFE, 0xFF])
    with pytest.raises(fixed.FixedPointError, match="whole number"):
        fixed.from_bytes(b"\x00\x01\x02", FP16)


def test_dequantize():
    assert fixed.dequantize([256, -128, 32767], FP16).tolist() == [1.0, -0.5, 127.99609375]
