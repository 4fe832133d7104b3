"""Tensil fixed-point arithmetic, vectorised on int64 numpy arrays of raw values.

A raw value `q` of a `DataType` with `bits` w and `frac_bits` bp stands for `q / 2^bp`.
The hardware (measured on the RTL; docs/tensil.md, "Fixed-point arithmetic") computes every operation
on w-bit raw values and saturates every result:

* `mac(x, y, z) = sat(RNE((x*y + z*2^bp) / 2^bp))`: the exact product plus the partial sum
  is rounded once to nearest, ties to *even of the sum* (so a product of exactly 0.5 LSB
  rounds up when z is odd: bias 1 + twelve products of 0.5 LSB gives 2 on the RTL), then
  saturated. Rounding and saturation happen at every MAC step; there is no wider accumulator.
  (Tensil's own description states the same bit-level formula but simplifies it to
  `z + RNE(x*y / 2^bp)`; the two differ exactly at ties.)
* `add(x, y) = sat(x + y)`, `sub(x, y) = sat(x - y)` (no wrap of -(-2^(w-1))),
  `mul(x, y) = sat(RNE(x*y / 2^bp))`.

Float -> fixed conversion exists in two flavours: Tensil's compiler quantizes constants with
Java `Math.round` (round half up, `"half_up"`) and saturates; Tensil's PYNQ driver converts
run-time inputs with `np.round` (ties to even, `"half_even"`) and does *not* saturate. Our
host packing (`tensil.layout`) uses `"half_even"` like the driver but always saturates.

All functions accept anything `np.asarray` accepts and return int64 arrays; int64 holds every
intermediate exactly for all types up to FP32BP16 (|x*y| <= 2^62).
"""

from __future__ import annotations

import numpy as np

from tensil.arch import DataType

ROUNDINGS = ("half_up", "half_even")


class FixedPointError(ValueError):
    """Bad argument to a fixed-point conversion (unknown rounding, byte buffer of a wrong size)."""


def _raw(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def saturate(raw, dtype: DataType) -> np.ndarray:
    """Clamp wide integers to the raw range of `dtype`."""
    return np.clip(_raw(raw), dtype.min_raw, dtype.max_raw)


def wrap(raw, dtype: DataType) -> np.ndarray:
    """Two's-complement wrap-around of wide integers into the raw range (what no saturation gives)."""
    mask = (1 << dtype.bits) - 1
    r = _raw(raw) & mask
    return np.where(r > dtype.max_raw, r - (1 << dtype.bits), r)


def round_shift_even(wide, shift: int) -> np.ndarray:
    """`RNE(wide / 2^shift)` exactly, on integers (the rounding of every hardware MAC step)."""
    wide = _raw(wide)
    if shift == 0:
        return wide
    # floor((m + half - 1 + lsb(floor(m / 2^shift))) / 2^shift): above half rounds up, below
    # rounds down, exactly half adds the parity bit of the floor, i.e. rounds to even
    return (wide + ((1 << (shift - 1)) - 1) + ((wide >> shift) & 1)) >> shift


def quantize(x, dtype: DataType, rounding: str = "half_up", saturate: bool = True) -> tuple[np.ndarray, int]:
    """Float -> raw. Returns `(raw, n_overflow)` where n_overflow counts out-of-range values.

    `rounding="half_up"` is Java `Math.round` (floor(v + 0.5)), used by Tensil's compiler for
    constants; `"half_even"` is `np.round`, used by Tensil's PYNQ driver for inputs. With
    `saturate=False` out-of-range values wrap around like the upstream driver's uint16 cast.
    NaN is refused; +-inf saturate.
    """
    if rounding not in ROUNDINGS:
        raise FixedPointError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
    v = np.asarray(x, dtype=np.float64) * dtype.scale
    if np.isnan(v).any():
        raise FixedPointError("cannot quantize NaN")
    r = np.floor(v + 0.5) if rounding == "half_up" else np.round(v)
    lo, hi = dtype.min_raw, dtype.max_raw
    n_overflow = int(np.count_nonzero((r < lo) | (r > hi)))
    if saturate:
        return np.clip(r, lo, hi).astype(np.int64), n_overflow
    # beyond +-2^62 float -> int64 is undefined; clamp there first, then wrap like uint casts do
    r = np.clip(r, -(2.0**62), 2.0**62).astype(np.int64)
    return wrap(r, dtype), n_overflow


def dequantize(raw, dtype: DataType) -> np.ndarray:
    """Raw -> float64 (`q / 2^bp`)."""
    return _raw(raw).astype(np.float64) / dtype.scale


def mac_wide(x, y, z, dtype: DataType) -> np.ndarray:
    """`RNE((x*y + z*2^bp) / 2^bp)` before saturation (for overflow counting)."""
    bp = dtype.frac_bits
    return round_shift_even(_raw(x) * _raw(y) + (_raw(z) << bp), bp)


def mac(x, y, z, dtype: DataType) -> np.ndarray:
    """The hardware MAC: `sat(RNE((x*y + z*2^bp) / 2^bp))`."""
    return saturate(mac_wide(x, y, z, dtype), dtype)


def add(x, y, dtype: DataType) -> np.ndarray:
    """Saturating addition (also accumulator accumulate and SIMD Add)."""
    return saturate(_raw(x) + _raw(y), dtype)


def sub(x, y, dtype: DataType) -> np.ndarray:
    """Saturating subtraction `x - y` (no wrap of -min)."""
    return saturate(_raw(x) - _raw(y), dtype)


def mul(x, y, dtype: DataType) -> np.ndarray:
    """Fixed-point product `sat(RNE(x*y / 2^bp))`."""
    return saturate(round_shift_even(_raw(x) * _raw(y), dtype.frac_bits), dtype)


def _storage(dtype: DataType) -> np.dtype:
    return np.dtype({1: "<u1", 2: "<u2", 4: "<u4"}[dtype.bytes_per_scalar])


def to_bytes(raw, dtype: DataType) -> bytes:
    """Raw values -> file/DRAM bytes: little-endian two's complement masked to the width
    (FP18BP10 sits in a 32-bit slot with the upper 14 bits zero)."""
    mask = (1 << dtype.bits) - 1
    return (_raw(raw).ravel() & mask).astype(_storage(dtype)).tobytes()


def from_bytes(buf, dtype: DataType) -> np.ndarray:
    """File/DRAM bytes -> raw int64 values (sign-extended from the data type's width)."""
    width = dtype.bytes_per_scalar
    mv = memoryview(buf).cast("B")
    if mv.nbytes % width:
        raise FixedPointError(f"{mv.nbytes} bytes is not a whole number of {width}-byte {dtype.name} scalars")
    u = np.frombuffer(mv, dtype=_storage(dtype)).astype(np.int64)
    return wrap(u, dtype)
