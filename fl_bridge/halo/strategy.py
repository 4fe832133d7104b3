"""HaLo-FL's server strategy: `CompressedFedAvg` with one precision (bw, ba, be) per client.

Before a round's training, when the stepping rule says so, every client takes one HaLo-PS step
under its constraint and the cost model (whether sampled this round or not: the precision is a
property of the client's hardware, as in the paper's Alg. 1, which loops over all clients). The
server broadcasts the 8-bit model (the run's power-of-two INT8 codec); each sampled client trains
with its (bw, ba, be) on the 8-bit weight grid (`Int8Training` with `weight_bits`, `act_bits`,
`error_bits`) and uploads the bw-bit weights of its forward pass (or, `--halo-upload grid`, its
8-bit stored weights). Aggregation is the paper's
(`paper`: the sample-weighted average of the uploads, re-quantized to the 8-bit grid by the next
broadcast) or, as an extension the paper does not have, Q-FedUpdate's FP32 master with error
feedback (`master`); the base class does both (`error_feedback`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from flwr.app import Message

from fl_bridge.codec import CodecConfig
from fl_bridge.errors import MalformedUpdate
from fl_bridge.halo.costs import METRICS, CostModel, Precision
from fl_bridge.halo.messages import upload_codec
from fl_bridge.halo.selector import select
from fl_bridge.halo.settings import HaloSettings
from fl_bridge.precision.accounting import message_bits
from fl_bridge.strategy import CompressedFedAvg
from fl_bridge.task import TrainTask


class HaloFedAvg(CompressedFedAvg):
    """`CompressedFedAvg` whose clients train and upload at their own HaLo-PS precision."""

    def __init__(self, *args, halo: HaloSettings, cost_model: CostModel, **kwargs):
        super().__init__(*args, **kwargs)
        self.halo, self.cost_model = halo, cost_model
        self.constraints = halo.constraints()
        self.precisions: list[Precision] = [halo.start] * len(self.constraints)
        self._arrived: list[int] = []

    def resume(self, rounds: list[dict]) -> None:
        """The precisions after the last saved round (a resumed run continues their paths)."""
        saved = [r["halo_precisions"] for r in rounds if "halo_precisions" in r]
        if saved:
            self.precisions = [tuple(p) for p in saved[-1]]

    def step(self, server_round: int) -> None:
        if self.halo.rule.steps_before(server_round):
            self.precisions = [select(p, c, self.cost_model, self.halo.step, self.halo.floors, self.halo.tie_break)
                               for p, c in zip(self.precisions, self.constraints)]

    def task(self, server_round: int, partition: int) -> TrainTask:
        bw, ba, be = self.precisions[partition]
        base = super().task(server_round, partition)
        return replace(base, int8=replace(base.int8, weight_bits=bw, act_bits=ba, error_bits=be),
                       upload_codec=upload_codec(bw) if self.halo.upload == "bw" else None)

    def upload_bits(self, partition: int) -> int:
        """Bits per weight of the partition's upload: its bw, or the 8-bit grid (`--halo-upload grid`)."""
        return self.precisions[partition][0] if self.halo.upload == "bw" else self.codec.bits

    def configure_train(self, server_round, arrays, config, grid):
        self.step(server_round)
        self._arrived = []
        return super().configure_train(server_round, arrays, config, grid)

    def _usable(self, msg: Message) -> tuple[dict[str, np.ndarray], int, float]:
        partition = msg.content["metrics"].get("partition-id") if "metrics" in msg.content else None
        if not isinstance(partition, int) or not 0 <= partition < len(self.precisions):
            raise MalformedUpdate(f"partition-id {partition!r} is not a client of this run")
        codec = self.codec
        if self.halo.upload == "bw":
            self.codec = upload_codec(self.precisions[partition][0])
        try:  # the reply is decoded with the client's upload codec; everything else as the base class does
            tensors, n, loss = super()._usable(msg)
        finally:
            self.codec = codec
        self._arrived.append(partition)
        return tensors, n, loss

    def round_metrics(self, server_round: int) -> dict:
        """The round's entry in metrics.json: every client's precision and modelled costs, the mean
        cost per client type, and the analytic upload bits at each arrived client's bw."""
        costs = [self.cost_model.cost(p) for p in self.precisions]
        by_type = {}
        for constraint in sorted(set(self.constraints)):
            members = [c for c, k in zip(costs, self.constraints) if k == constraint]
            by_type[constraint] = {m: float(np.mean([c[m] for c in members])) for m in METRICS}
        bits_up = sum(message_bits(self.layout, CodecConfig(self.upload_bits(p), scale="pow2")).total
                      for p in self._arrived)
        return {"halo_precisions": [list(p) for p in self.precisions],
                "halo_costs_modelled": [c.to_dict() for c in costs],
                "halo_mean_costs_modelled": by_type, "bits_up": bits_up}
