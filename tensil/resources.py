"""FPGA resource estimate of a Tensil configuration, and the check that it fits a device.

Standard library only, a function of `tensil.arch.Arch`, so that `tensil/`, `fpga/` and a
design-space exploration share one check.

How each figure is obtained (A = array_size, b = data-type bits):
- BRAM36 is derived from first principles: Tensil maps its local memory and its accumulators
  onto `bram_dp_<A*b>x<depth>` true-dual-port RAMs, and Vivado packs a true-dual-port RAM
  into RAMB36/RAMB18 primitives whose widest true-dual-port shapes are 32Kx1 ... 1Kx36
  (RAMB18: 16Kx1 ... 1Kx18). For PEFSL's custom_perf this gives 48 + 11 = 59 BRAM36, the
  figure PEFSL reports (thesis table 11): an independent check of the model.
- DSP: one DSP48E1 per multiplier of the A*A systolic array plus A for the SIMD ALUs
  (a b x b product takes ceil(b/25)*ceil(b/18) DSP48E1), plus a fixed remainder calibrated so
  that custom_perf gives PEFSL's 159.
- LUT / FF: per-processing-element, per-lane and fixed terms. The split between them is an
  assumption (proportional to b); the total is calibrated on PEFSL's custom_perf figures
  (15,667 LUT, 9,819 FF). Tensil's stock pynqz1 figures were not available to calibrate on.
- The rest of the PYNQ-Z1 design (DMA, HDMI-out video pipeline, interconnects, GPIO) is an
  allowance, `PLATFORM_ALLOWANCE`, not a measurement.
When the DSPs run out, the excess multipliers can be built from LUTs (Vivado's synthesis
option `-max_dsp`): `plan_fit` does that and charges `LUTS_PER_MULTIPLIER_BIT2 * b*b` LUTs each.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from tensil.arch import Arch


class ResourceError(ValueError):
    """A Tensil configuration that cannot fit the target device."""


@dataclass(frozen=True)
class Resources:
    """A count of the four resources the check looks at."""

    dsp: int
    bram36: float
    lut: int
    ff: int

    def __add__(self, other: "Resources") -> "Resources":
        return Resources(self.dsp + other.dsp, self.bram36 + other.bram36, self.lut + other.lut, self.ff + other.ff)

    def to_json_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Device:
    """The resources of one FPGA part."""

    part: str
    available: Resources


XC7Z020 = Device("xc7z020clg400-1", Resources(dsp=220, bram36=140, lut=53200, ff=106400))

# Calibration point: PEFSL's custom_perf (A=12, FP16BP8) on the XC7Z020, thesis table 11.
PEFSL_CUSTOM_PERF = Resources(dsp=159, bram36=59, lut=15667, ff=9819)

# Allowance for the rest of the PYNQ-Z1 design (AXI DMA, VDMA + HDMI-out pipeline, three
# SmartConnects, two AXI interconnects, GPIO, interrupt controller): a rough budget, not a
# measurement; the build report prints the real utilisation next to it.
PLATFORM_ALLOWANCE = Resources(dsp=0, bram36=6, lut=9000, ff=12000)

# Utilisation above this fraction of a resource is refused (placement and routing of a nearly
# full XC7Z020 fail or miss timing).
MAX_UTILISATION = 0.90

# LUTs per bit-product of a multiplier built in fabric (a 16x16 one costs about 256 LUTs).
LUTS_PER_MULTIPLIER_BIT2 = 1.0

# True-dual-port shapes (depth, width) of one RAMB36 and, in halves, one RAMB18.
_RAMB36_TDP_SHAPES = ((32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36))
_RAMB18_TDP_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18))

# Per-element LUT/FF coefficients, in units of data-type bits (assumed split, see docstring).
_LUT_PER_PE_BIT = 4.0
_LUT_PER_LANE_BIT = 24.0
_FF_PER_PE_BIT = 3.0
_FF_PER_LANE_BIT = 12.0


def dsp_per_multiplier(bits: int) -> int:
    """DSP48E1 slices for one signed bits x bits product (25x18 multiplier per slice)."""
    return math.ceil(bits / 25) * math.ceil(bits / 18)


def multipliers(arch: Arch) -> int:
    """Multipliers of the TCU: the A*A systolic array and one per SIMD ALU lane."""
    return arch.array_size * arch.array_size + arch.array_size


def memory_shapes(arch: Arch) -> list[tuple[int, int]]:
    """(width, depth) of each `bram_dp_<width>x<depth>` RAM that `tensil rtl` generates."""
    width = arch.array_size * arch.dtype.bits
    return [(width, arch.local_depth), (width, arch.accumulator_depth)]


def bram36_for(width: int, depth: int) -> float:
    """BRAM36 tiles (a RAMB18 counts as half) for a width x depth true-dual-port RAM.

    Vivado avoids cascading in depth when one primitive shape is deep enough, so the RAM is
    built from the narrowest-waste shape whose depth covers it (32Kx1 stacked beyond 32K).
    """
    shapes = [(d, w, 1.0) for d, w in _RAMB36_TDP_SHAPES] + [(d, w, 0.5) for d, w in _RAMB18_TDP_SHAPES]
    deep_enough = [(d, w, t) for d, w, t in shapes if d >= depth]
    if not deep_enough:
        return float(math.ceil(depth / 32768) * width)
    return min(t * math.ceil(width / w) for d, w, t in deep_enough)


def _fixed_terms() -> tuple[int, int, int]:
    """DSP, LUT and FF remainders that make the model reproduce PEFSL's custom_perf."""
    a, bits = 12, 16
    dsp = PEFSL_CUSTOM_PERF.dsp - (a * a + a) * dsp_per_multiplier(bits)
    lut = PEFSL_CUSTOM_PERF.lut - round(a * a * _LUT_PER_PE_BIT * bits + a * _LUT_PER_LANE_BIT * bits)
    ff = PEFSL_CUSTOM_PERF.ff - round(a * a * _FF_PER_PE_BIT * bits + a * _FF_PER_LANE_BIT * bits)
    return dsp, lut, ff


def estimate_tcu(arch: Arch) -> Resources:
    """Estimated resources of the Tensil TCU alone, with every multiplier in a DSP."""
    a, bits = arch.array_size, arch.dtype.bits
    fixed_dsp, fixed_lut, fixed_ff = _fixed_terms()
    return Resources(
        dsp=multipliers(arch) * dsp_per_multiplier(bits) + fixed_dsp,
        bram36=sum(bram36_for(w, d) for w, d in memory_shapes(arch)),
        lut=round(a * a * _LUT_PER_PE_BIT * bits + a * _LUT_PER_LANE_BIT * bits) + fixed_lut,
        ff=round(a * a * _FF_PER_PE_BIT * bits + a * _FF_PER_LANE_BIT * bits) + fixed_ff,
    )


@dataclass(frozen=True)
class FitPlan:
    """How a configuration fits a device: totals, DSP cap for synthesis, and the verdict."""

    arch: str
    device: str
    tcu: Resources
    platform: Resources
    total: Resources
    available: Resources
    max_dsp: int | None
    lut_multipliers: int
    reasons: tuple[str, ...]

    @property
    def fits(self) -> bool:
        return not self.reasons

    def utilisation(self) -> dict[str, float]:
        return {
            k: round(getattr(self.total, k) / getattr(self.available, k), 4) for k in ("dsp", "bram36", "lut", "ff")
        }

    def to_json_dict(self) -> dict:
        return {
            "arch": self.arch,
            "device": self.device,
            "tcu": self.tcu.to_json_dict(),
            "platform_allowance": self.platform.to_json_dict(),
            "total": self.total.to_json_dict(),
            "available": self.available.to_json_dict(),
            "utilisation": self.utilisation(),
            "max_dsp": self.max_dsp,
            "lut_multipliers": self.lut_multipliers,
            "fits": self.fits,
            "reasons": list(self.reasons),
        }

    def table(self) -> str:
        """A plain-text table: TCU, platform allowance, total, available, use."""
        rows = [("resource", "TCU", "platform", "total", self.device, "use")]
        use = self.utilisation()
        for key, label in (("dsp", "DSP48E1"), ("bram36", "BRAM36"), ("lut", "LUT"), ("ff", "FF")):
            rows.append(
                (
                    label,
                    _fmt(getattr(self.tcu, key)),
                    _fmt(getattr(self.platform, key)),
                    _fmt(getattr(self.total, key)),
                    _fmt(getattr(self.available, key)),
                    f"{100 * use[key]:.1f}%",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
        if self.lut_multipliers:
            lines.append(
                f"{self.lut_multipliers} multipliers built from LUTs (synthesis -max_dsp {self.max_dsp})"
            )
        lines.append("fits" if self.fits else "does not fit: " + "; ".join(self.reasons))
        return "\n".join(lines)


def _fmt(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def plan_fit(
    arch: Arch,
    device: Device = XC7Z020,
    platform: Resources = PLATFORM_ALLOWANCE,
    max_utilisation: float = MAX_UTILISATION,
) -> FitPlan:
    """Estimate TCU + platform on `device`, moving multipliers to LUTs when DSPs run out."""
    tcu = estimate_tcu(arch)
    limit = {k: getattr(device.available, k) * max_utilisation for k in ("dsp", "bram36", "lut", "ff")}
    max_dsp: int | None = None
    lut_multipliers = 0
    per_mult = dsp_per_multiplier(arch.dtype.bits)
    dsp_budget = int(limit["dsp"]) - platform.dsp
    if tcu.dsp > dsp_budget:
        excess = tcu.dsp - dsp_budget
        lut_multipliers = min(multipliers(arch), math.ceil(excess / per_mult))
        max_dsp = dsp_budget
        extra_lut = round(lut_multipliers * LUTS_PER_MULTIPLIER_BIT2 * arch.dtype.bits**2)
        tcu = Resources(tcu.dsp - lut_multipliers * per_mult, tcu.bram36, tcu.lut + extra_lut, tcu.ff)
    total = tcu + platform
    reasons = []
    for key, label in (("dsp", "DSP48E1"), ("bram36", "BRAM36"), ("lut", "LUTs"), ("ff", "flip-flops")):
        need = getattr(total, key)
        if need > limit[key]:
            reasons.append(
                f"needs {_fmt(need)} {label}, more than {max_utilisation:.0%} of the {_fmt(getattr(device.available, key))} "
                f"of the {device.part}"
            )
    return FitPlan(
        arch=arch.name,
        device=device.part,
        tcu=tcu,
        platform=platform,
        total=total,
        available=device.available,
        max_dsp=max_dsp,
        lut_multipliers=lut_multipliers,
        reasons=tuple(reasons),
    )


def check_fit(arch: Arch, device: Device = XC7Z020) -> FitPlan:
    """`plan_fit`, raising ResourceError with the reasons when the configuration cannot fit."""
    plan = plan_fit(arch, device)
    if not plan.fits:
        raise ResourceError(f"architecture {arch.name} (A={arch.array_size}) does not fit: " + "; ".join(plan.reasons))
    return plan
