"""HaLo-FL's settings as the run gives them (`RunConfig`'s `halo_*` fields, flat CLI flags),
parsed and checked into one `HaloSettings`: the client mix (clients 0.. are energy-, then
latency-, then area-constrained, then unconstrained), start precision, floors, step, stepping
rule, tie-break order, cost model and aggregation."""

from __future__ import annotations

from dataclasses import dataclass

from fl_bridge.halo.costs import TABLE_II, Precision
from fl_bridge.halo.selector import DIMENSIONS, STEP_RULES, StepRule
from fl_bridge.precision.quantizers import SUPPORTED_BITS

COST_MODELS = ("surrogate", "structural", "fpga")
AGGREGATIONS = ("paper", "master")
UPLOADS = ("bw", "grid")
GRID_BITS = 8  # k_G: the stored weights and the broadcast are on an 8-bit grid ("8-bit model")


def parse_precision(text: str, flag: str) -> Precision:
    """'8-8-8' (bw-ba-be, the paper's notation) -> (8, 8, 8); ValueError with one line otherwise."""
    parts = str(text).split("-")
    try:
        bits = tuple(int(p) for p in parts)
    except ValueError:
        bits = ()
    if len(bits) != 3 or any(b not in SUPPORTED_BITS or b > GRID_BITS for b in bits):
        raise ValueError(f"{flag} {text!r}: give bw-ba-be, three bit widths from 2 to {GRID_BITS} (e.g. 8-8-8)")
    return bits  # type: ignore[return-value]


@dataclass(frozen=True)
class HaloSettings:
    mix: tuple[int, int, int, int]  # energy, latency, area, unconstrained clients
    start: Precision
    floors: Precision
    step: int
    rule: StepRule
    tie_break: tuple[str, ...]
    cost_model: str
    calibration: str
    aggregation: str
    upload: str
    fpga_arch: str
    fpga_mhz: float

    def constraints(self) -> list[str]:
        """Each client's constraint, by client index."""
        e, l, a, u = self.mix
        return ["energy"] * e + ["latency"] * l + ["area"] * a + ["none"] * u


def settings(cfg) -> HaloSettings:
    """The HaLo-FL settings of a `RunConfig`; ValueError (one line) for any bad value."""
    mix = (cfg.halo_energy, cfg.halo_latency, cfg.halo_area, cfg.halo_unconstrained)
    if any(n < 0 for n in mix) or sum(mix) != cfg.clients:
        raise ValueError(f"--halo-energy/--halo-latency/--halo-area/--halo-unconstrained {'/'.join(map(str, mix))} "
                         f"must be >= 0 and add up to --clients ({cfg.clients})")
    start, floors = parse_precision(cfg.halo_start, "--halo-start"), parse_precision(cfg.halo_floors, "--halo-floors")
    if any(f > s for f, s in zip(floors, start)):
        raise ValueError(f"--halo-floors {cfg.halo_floors} is above --halo-start {cfg.halo_start} in some dimension")
    if cfg.halo_step not in (1, 2, 4):
        raise ValueError(f"--halo-step {cfg.halo_step}: must be 1, 2 or 4 bits")
    if cfg.halo_step_rule not in STEP_RULES:
        raise ValueError(f"--halo-step-rule {cfg.halo_step_rule!r}: must be one of {', '.join(STEP_RULES)}")
    if cfg.halo_step_every < 0:
        raise ValueError(f"--halo-step-every {cfg.halo_step_every}: must be >= 0 (0 = ceil(rounds / 3))")
    tie = tuple(cfg.halo_tie_break.split(","))
    if sorted(tie) != sorted(DIMENSIONS):
        raise ValueError(f"--halo-tie-break {cfg.halo_tie_break!r}: an order of bw,ba,be (e.g. be,ba,bw)")
    if cfg.halo_cost_model not in COST_MODELS:
        raise ValueError(f"--halo-cost-model {cfg.halo_cost_model!r}: must be one of {', '.join(COST_MODELS)}")
    if cfg.halo_calibration not in TABLE_II:
        raise ValueError(f"--halo-calibration {cfg.halo_calibration!r}: must be one of {', '.join(TABLE_II)}")
    if cfg.halo_aggregation not in AGGREGATIONS:
        raise ValueError(f"--halo-aggregation {cfg.halo_aggregation!r}: must be one of {', '.join(AGGREGATIONS)}")
    if cfg.halo_upload not in UPLOADS:
        raise ValueError(f"--halo-upload {cfg.halo_upload!r}: must be one of {', '.join(UPLOADS)}")
    if not cfg.halo_fpga_mhz > 0 or cfg.halo_fpga_mhz != cfg.halo_fpga_mhz or cfg.halo_fpga_mhz == float("inf"):
        raise ValueError(f"--halo-fpga-mhz {cfg.halo_fpga_mhz}: must be a positive number of MHz")
    if cfg.lora:
        raise ValueError("halo-fl trains every parameter (its cost models count every layer): drop --lora")
    return HaloSettings(mix, start, floors, cfg.halo_step, StepRule(cfg.halo_step_rule, cfg.halo_step_every, cfg.rounds),
                        tie, cfg.halo_cost_model, cfg.halo_calibration, cfg.halo_aggregation, cfg.halo_upload,
                        cfg.halo_fpga_arch,
                        float(cfg.halo_fpga_mhz))
