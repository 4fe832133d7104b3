"""What the server asks a client to do in one round, sent as JSON inside the message's
ConfigRecord: clients are stateless workers that rebuild the model and their partition from it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from fl_bridge.codec import CodecConfig
from fl_bridge.local import LocalConfig
from fl_bridge.model import ModelConfig
from fl_bridge.precision.engine import Int8Training

TASK_KEY = "task"


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

    def to_json(self) -> str:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainTask":
        d = json.loads(text)
        return cls(ModelConfig.from_dict(d["model"]), CodecConfig(**d["codec"]), LocalConfig(**d["local"]),
                   DataTask(**d["data"]), int(d["partition"]), str(d["base_hash"]),
                   Int8Training(**d["int8"]).check() if d.get("int8") else None,
                   CodecConfig(**d["upload_codec"]).check() if d.get("upload_codec") else None)
