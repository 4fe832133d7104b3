"""Accelerator clock planning for the PYNQ-Z1: a PS7 FCLK when its dividers make the
frequency exactly, otherwise a clocking wizard (MMCME2) fed by the 100 MHz FCLK0.

Facts used (Zynq-7000 TRM UG585, 7-series clocking UG472, DS187 for the -1 speed grade):
- PL clocks FCLK0-3 come from the IO PLL (1000 MHz on PYNQ-Z1 images) through two 6-bit
  dividers (1..63 each); the PS7 configuration accepts up to 250 MHz.
- MMCME2_ADV (-1): input divider D 1..106, feedback multiplier M 2..64 in steps of 1/8,
  output divider O (CLKOUT0) 1..128 in steps of 1/8, PFD 10..450 MHz, VCO 600..1200 MHz.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction

from fpga.errors import ClockError

IO_PLL_MHZ = 1000
FCLK_DIVIDER_MAX = 63
MIN_MHZ = 10.0
MAX_MHZ = 250.0
# Largest relative error accepted between the requested and the made frequency, and the one
# under which an FCLK divider pair counts as making the frequency (142.857 -> 1000/7).
TOLERANCE = 0.001
FCLK_MATCH = 1e-5

MMCM_REF_MHZ = 100
MMCM_D_RANGE = range(1, 107)
MMCM_M_EIGHTHS = range(2 * 8, 64 * 8 + 1)
MMCM_O_EIGHTHS = range(1 * 8, 128 * 8 + 1)
MMCM_PFD_MHZ = (10.0, 450.0)
MMCM_VCO_MHZ = (600.0, 1200.0)


@dataclass(frozen=True)
class ClockPlan:
    """How the accelerator clock is made: `fclk` (PS7 FCLK_CLK3) or `mmcm` (clk_wiz)."""

    requested_mhz: float
    actual_mhz: float
    source: str
    fclk_divisors: tuple[int, int] | None = None
    mmcm_divclk: int | None = None
    mmcm_mult: float | None = None
    mmcm_out_div: float | None = None

    @property
    def period_ns(self) -> float:
        return 1000.0 / self.actual_mhz

    def to_json_dict(self) -> dict:
        return asdict(self)


def _fclk(mhz: float) -> ClockPlan | None:
    for d0 in range(1, FCLK_DIVIDER_MAX + 1):
        for d1 in range(1, FCLK_DIVIDER_MAX + 1):
            made = IO_PLL_MHZ / (d0 * d1)
            if abs(made - mhz) <= FCLK_MATCH * mhz:
                return ClockPlan(mhz, made, "fclk", fclk_divisors=(d0, d1))
    return None


def _mmcm(mhz: float) -> ClockPlan | None:
    target = Fraction(mhz).limit_denominator(10**6)
    best: tuple[float, int, int, int] | None = None
    for d in MMCM_D_RANGE:
        pfd = MMCM_REF_MHZ / d
        if not MMCM_PFD_MHZ[0] <= pfd <= MMCM_PFD_MHZ[1]:
            continue
        for m8 in MMCM_M_EIGHTHS:
            vco = Fraction(MMCM_REF_MHZ * m8, 8 * d)
            if not MMCM_VCO_MHZ[0] <= vco <= MMCM_VCO_MHZ[1]:
                continue
            o8 = round(vco * 8 / target)
            if o8 not in MMCM_O_EIGHTHS:
                continue
            err = abs(float(vco * 8 / o8 - target)) / mhz
            if best is None or err < best[0] - 1e-15:
                best = (err, d, m8, o8)
    if best is None or best[0] > TOLERANCE:
        return None
    _, d, m8, o8 = best
    actual = MMCM_REF_MHZ * m8 / (8 * d) * 8 / o8
    return ClockPlan(mhz, actual, "mmcm", mmcm_divclk=d, mmcm_mult=m8 / 8, mmcm_out_div=o8 / 8)


def plan_clock(mhz: float) -> ClockPlan:
    """The clock source for `mhz`, or ClockError saying why the board cannot make it."""
    if not MIN_MHZ <= mhz <= MAX_MHZ:
        raise ClockError(
            f"accelerator clock {mhz:g} MHz is outside {MIN_MHZ:g}..{MAX_MHZ:g} MHz "
            "(the range of the PS7 FCLKs and of what the Tensil TCU can be timed for)"
        )
    plan = _fclk(mhz) or _mmcm(mhz)
    if plan is None:
        raise ClockError(
            f"accelerator clock {mhz:g} MHz cannot be made within {TOLERANCE:.1%}: not 1000 MHz / (d0*d1) "
            "and no MMCM setting (VCO 600..1200 MHz) reaches it"
        )
    return plan
