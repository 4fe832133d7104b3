"""Run a federation without a SuperLink: `engine="inline"` (default) handles every client message
in this process, one after the other (`inline.InlineGrid`: the same `run_federation`, messages,
codec and accounting as a real deployment, and no network socket at all); `engine="ray"` starts
Flower's simulation engine. Ray 2.55 (the version Flower 1.41 requires) listens on every network
interface even when told its node address is 127.0.0.1, and its protocol is unauthenticated, so
the Ray engine is for trusted hosts only and says so when it starts."""

from __future__ import annotations

import os
import sys
import warnings

from fl_bridge.config import RunConfig
from fl_bridge.rundir import RunDir


def simulate(cfg: RunConfig) -> RunDir:
    """Train `cfg` with one virtual SuperNode per client sampled in a round (or `supernodes`)."""
    cfg.check()
    if cfg.engine == "inline":
        from fl_bridge.inline import InlineGrid, task_identity
        from fl_bridge.server import run_federation

        with task_identity():
            return run_federation(InlineGrid(cfg.supernodes or cfg.per_round), cfg)
    print("fl_bridge: warning: the Ray engine listens on every network interface (unauthenticated); "
          "use it on a trusted host only, or --engine inline", file=sys.stderr)
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
