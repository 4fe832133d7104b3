"""The run folder of contract 6: `config.json`, `partitions.json` (per-client class histograms),
`state.pt` (the global model after the last finished round: what a killed server resumes from),
`metrics.json` (one entry per round) and the final `backbone.pt` (contract 1). Every file is
written atomically (temp file + rename)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fl_bridge.codec import Layout
from fl_bridge.config import RunConfig
from fl_bridge.errors import FLError
from train.checkpoint import atomic_torch_save, content_digest
from train.files import atomic_write_text

# Settings that may change when a run is resumed (they do not change what is computed).
RESUMABLE_CHANGES = {"out", "rounds", "round_timeout", "supernodes", "client_cpus"}


def write_json(path: Path, obj: object) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")


@dataclass
class ServerState:
    """The global model after `round` finished rounds, and the metrics of those rounds."""

    round: int
    tensors: dict[str, np.ndarray]
    rounds: list[dict]


class RunDir:
    """The files of one federated run."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

        self.config_path = self.path / "config.json"
        self.state_path = self.path / "state.pt"
        self.metrics_path = self.path / "metrics.json"
        self.checkpoint_path = self.path / "backbone.pt"
        self.partitions_path = self.path / "partitions.json"

    def start(self, cfg: RunConfig) -> None:
        """Write `config.json`, or check that an existing one describes the same run."""
        if self.config_path.is_file():
            old = RunConfig.load(self.path).to_dict()
            new = cfg.to_dict()
            ignored = RESUMABLE_CHANGES | cfg.unused_settings
            diff = sorted(k for k in new if k not in ignored and old.get(k) != new[k])
            if diff:
                raise FLError(f"{self.path} holds a run with other settings ({', '.join(diff)}); use another --out")
        write_json(self.config_path, cfg.to_dict())

    def load_state(self, layout: Layout) -> ServerState | None:
        if not self.state_path.is_file():
            return None
        try:
            d = torch.load(self.state_path, map_location="cpu", weights_only=True)
            if "sha256" in d and d["sha256"] != content_digest(d):  # torch loads flipped tensor bytes silently
                raise ValueError("sha256")
            tensors = {n: d["tensors"][n].numpy() for n, _ in layout}
        except Exception:  # noqa: BLE001 - a corrupt or foreign file; torch's own text is many lines
            raise FLError(f"{self.state_path} is corrupt, truncated or of another model; delete it to restart "
                          f"the run from round 0") from None
        if any(tensors[n].shape != shape for n, shape in layout):
            raise FLError(f"{self.state_path} does not match the model of config.json")
        return ServerState(int(d["round"]), tensors, list(d["rounds"]))

    def save_state(self, state: ServerState) -> None:
        tensors = {n: torch.from_numpy(v.copy()) for n, v in state.tensors.items()}
        d = {"round": state.round, "tensors": tensors, "rounds": state.rounds}
        atomic_torch_save({**d, "sha256": content_digest(d)}, self.state_path)

    def write_metrics(self, cfg: RunConfig, summary: dict, rounds: list[dict]) -> None:
        write_json(self.metrics_path, {"config": cfg.to_dict(), "summary": summary, "rounds": rounds})
