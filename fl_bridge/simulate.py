"""Run a federation in Flower's simulation engine (Ray backend), in this process."""

from __future__ import annotations

import os
import warnings

from fl_bridge.config import RunConfig
from fl_bridge.rundir import RunDir


def simulate(cfg: RunConfig) -> RunDir:
    """Train `cfg` with one virtual SuperNode per client sampled in a round (or `supernodes`)."""
    cfg.check()
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    from flwr.simulation import run_simulation

    from fl_bridge.client_app import app as client_app
    from fl_bridge.server_app import make_server_app

    backend = {
        "client_resources": {"num_cpus": cfg.client_cpus, "num_gpus": 0.0},
        "init_args": {"num_cpus": max(1, os.cpu_count() or 1), "include_dashboard": False,
                      "logging_level": "warning", "log_to_driver": True},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        run_simulation(make_server_app(cfg), client_app, cfg.supernodes or cfg.per_round, backend_config=backend)
    return RunDir(cfg.out)
