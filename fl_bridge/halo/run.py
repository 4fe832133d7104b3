"""Building HaLo-FL's server strategy for a run: its settings, its cost model (`surrogate`,
`structural` or `fpga`, written to `<run>/halo_cost_model.json` with the cost of every precision
of the tree) and `HaloFedAvg`."""

from __future__ import annotations

import itertools
from pathlib import Path

from fl_bridge.codec import Layout
from fl_bridge.config import RunConfig
from fl_bridge.errors import FLError
from fl_bridge.halo.costs import CostModel, HaLoSimSurrogate, StructuralCrossbar
from fl_bridge.halo.network import layer_shapes
from fl_bridge.halo.settings import HaloSettings, settings
from fl_bridge.halo.strategy import HaloFedAvg
from fl_bridge.model import ModelConfig, build_model
from fl_bridge.rundir import write_json
from fl_bridge.task import DataTask
from train.datasets import FewShotData

COST_MODEL_FILE = "halo_cost_model.json"


def cost_model(cfg: RunConfig, halo: HaloSettings, model_cfg: ModelConfig, data: FewShotData,
               run_dir: Path) -> CostModel:
    if halo.cost_model == "surrogate":
        return HaLoSimSurrogate.fit(halo.calibration)
    spec = model_cfg.spec
    if halo.cost_model == "structural":
        return StructuralCrossbar(layer_shapes(build_model(model_cfg), spec.in_channels, spec.image_size),
                                  cfg.batch_size)
    from fl_bridge.halo.fpga import fpga_cost_model

    return fpga_cost_model(cfg, halo, model_cfg, data, run_dir)


def tree_costs(model: CostModel, halo: HaloSettings) -> list[dict]:
    """The modelled cost of every precision between the floors and the start."""
    ranges = [range(f, s + 1, halo.step) for f, s in zip(halo.floors, halo.start)]
    return [{"precision": list(p), **model.cost(p).to_dict()} for p in itertools.product(*ranges)]


def halo_strategy(cfg: RunConfig, model_cfg: ModelConfig, data: FewShotData, dtask: DataTask, layout: Layout,
                  frozen_hash: str, run_dir: Path) -> HaloFedAvg:
    try:
        halo = settings(cfg)
    except ValueError as e:
        raise FLError(str(e)) from None
    model = cost_model(cfg, halo, model_cfg, data, Path(run_dir))
    write_json(Path(run_dir) / COST_MODEL_FILE, {"cost_model": model.name, "units": model.units,
                                                  "label": "modelled", "tree": tree_costs(model, halo)})
    return HaloFedAvg(model_cfg, cfg.codec, cfg.local, dtask, layout, frozen_hash, cfg.per_round,
                      round_timeout_s=cfg.round_timeout, int8=cfg.int8,
                      error_feedback=halo.aggregation == "master", halo=halo, cost_model=model)
