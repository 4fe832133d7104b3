"""What the server asks a client to do in one round, sent as flat typed keys of the message's
ConfigRecord (`TrainTask.to_config`): clients are stateless workers that rebuild the model and
their partition from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from fl_bridge.codec import CodecConfig
from fl_bridge.errors import FLError
from fl_bridge.fedmpq.methods import FedMPQTask
from fl_bridge.local import LocalConfig
from fl_bridge.model import ModelConfig
from fl_bridge.flat import flatten, unflatten
from fl_bridge.precision.engine import Int8Training

TASK_PREFIX = "task."  # the task's keys in the ConfigRecord
NODE_PARTITION = -1     # `TrainTask.partition`: the SuperNode's own data (its node config)


@dataclass(frozen=True)
class DataTask:
    """Which dataset and which LDA partitioning of its base split."""

    dataset: str
    data_root: str
    image_size: int
    clients: int
    lda_alpha: float
    samples_per_client: int
    seed: int


@dataclass(frozen=True)
class TrainTask:
    model: ModelConfig
    codec: CodecConfig
    local: LocalConfig
    data: DataTask
    partition: int
    base_hash: str
    int8: Int8Training | None = None  # INT8 local training (q-fedavg, q-fedupdate)
    upload_codec: CodecConfig | None = None  # HaLo-FL: the reply carries the bw-bit weights (None = `codec`)
    fedmpq: FedMPQTask | None = None  # FedMPQ / AQFL / FPQ8 clients (fl_bridge.fedmpq)

    def to_config(self, server_round: int) -> dict:
        """The message's ConfigRecord content: the task flattened under `task.` (`task.local.lr`,
        `task.model.spec.family`, ...; see `fl_bridge.flat`) and the round."""
        return {**{TASK_PREFIX + k: v for k, v in flatten(self).items()}, "server-round": server_round}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "TrainTask":
        """The task of a message's ConfigRecord; every nested config that can check itself is
        checked (FLError, one line)."""
        try:
            task = unflatten(cls, {k[len(TASK_PREFIX):]: v for k, v in config.items() if k.startswith(TASK_PREFIX)})
            for f in fields(task):
                value = getattr(task, f.name)
                if hasattr(value, "check"):
                    value.check()
        except (TypeError, ValueError) as e:
            raise FLError(f"malformed task: {e}") from None
        return task
