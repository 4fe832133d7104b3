"""FPGA figures: resource estimate of array sizes on the XC7Z020, and the clock each frequency gets."""

from __future__ import annotations

from fpga.clocking import plan_clock
from tensil.arch import from_dict, load_arch
from tensil.resources import PEFSL_CUSTOM_PERF, estimate_tcu, plan_fit


def main() -> None:
    base = load_arch("custom_perf")
    tcu = estimate_tcu(base)
    print("custom_perf TCU estimate vs PEFSL thesis table 11 (estimate / reported):")
    for key in ("dsp", "bram36", "lut", "ff"):
        print(f"  {key:6s} {getattr(tcu, key):>8g} / {getattr(PEFSL_CUSTOM_PERF, key):<8g} = "
              f"{getattr(tcu, key) / getattr(PEFSL_CUSTOM_PERF, key):.3f}")  # fmt: skip
    print("\narray size sweep (custom_perf memories), TCU + platform allowance on the XC7Z020:")
    print(f"  {'A':>3} {'dtype':8} {'DSP':>5} {'BRAM36':>7} {'LUT':>7} {'FF':>7} {'LUT mults':>9}  verdict")
    for dtype in ("FP16BP8", "FP8BP4"):
        for a in (4, 8, 12, 14, 16, 20, 24):
            arch = from_dict(base.to_json_dict() | {"array_size": a, "data_type": dtype}, f"a{a}")
            plan = plan_fit(arch)
            t = plan.total
            print(f"  {a:>3} {dtype:8} {t.dsp:>5} {t.bram36:>7g} {t.lut:>7} {t.ff:>7} {plan.lut_multipliers:>9}  "
                  f"{'fits' if plan.fits else 'refused: ' + plan.reasons[0]}")  # fmt: skip
    print("\naccelerator clock plans:")
    for mhz in (25, 33, 50, 62.5, 100, 125, 142.857, 150, 200):
        plan = plan_clock(mhz)
        how = f"FCLK3 1000/{plan.fclk_divisors[0]}/{plan.fclk_divisors[1]}" if plan.source == "fclk" else (
            f"MMCM 100*{plan.mmcm_mult:g}/{plan.mmcm_divclk}/{plan.mmcm_out_div:g}")  # fmt: skip
        print(f"  {mhz:>8g} MHz -> {plan.actual_mhz:.6f} MHz via {how}")


if __name__ == "__main__":
    main()
