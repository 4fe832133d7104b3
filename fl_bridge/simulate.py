"""Run a federation on this machine: `engine="inline"` (default) handles every client message
in this process, one after the other (`inline.InlineGrid`: the same `run_federation`, messages,
codec and accounting as a real deployment, and no network socket at all); `engine="ray"` starts
Flower's simulation engine. Ray 2.55 (the version Flower 1.41 requires) listens on every network
interface even when told its node address is 127.0.0.1, and its protocol is unauthenticated, so
the Ray engine is for trusted hosts only and says so when it starts. The Ray engine is started
the way Flower documents (not the deprecated `run_simulation`): a SuperLink in simulation mode
on a free loopback port and `flwr run --federation-config num-supernodes=N`
(`deployment.simulate_on_superlink`); `--client-cpus` is rounded to whole CPUs there."""

from __future__ import annotations

import os
import sys

from fl_bridge.config import RunConfig
from fl_bridge.errors import FLError
from fl_bridge.rundir import RunDir


def simulate(cfg: RunConfig) -> RunDir:
    """Train `cfg` with one virtual SuperNode per client sampled in a round (or `supernodes`)."""
    cfg.check()
    if cfg.node_data and cfg.engine == "inline":
        raise FLError("--node-data reads each SuperNode's node config: use --superlink, or --engine ray (whose "
                      "virtual SuperNodes have partition-id and num-partitions)")
    if cfg.engine == "inline":
        from fl_bridge.inline import InlineGrid, task_identity
        from fl_bridge.server import run_federation

        with task_identity():
            return run_federation(InlineGrid(cfg.supernodes or cfg.per_round), cfg)
    print("fl_bridge: warning: the Ray engine listens on every network interface (unauthenticated); "
          "use it on a trusted host only, or --engine inline", file=sys.stderr)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    from fl_bridge.deployment import simulate_on_superlink

    return simulate_on_superlink(cfg)
