"""Our FedAvg over encoded payloads (a subclass of Flower's Message-API `FedAvg`).

`configure_train` samples the round's clients (partition ids) from the run seed, encodes the
global model once with the run's codec (quantised and pruned as configured: both directions)
and addresses one message per sampled partition to the connected SuperNodes, round-robin over
their sorted ids. With `node_data` (real deployments) it samples connected SuperNodes instead
(seeded), each training on its own data (`task.NODE_PARTITION`); the replies say which share.
`aggregate_train` drops error replies (`split_replies`: Flower's public `Message.has_error`) and
validates every payload before use (`codec.decode`): a malformed one is logged and dropped (also
a `num-examples` above the largest partition sent in the round), the rest are averaged weighted
by `num-examples`. A round with no usable reply keeps the previous global model.

With `error_feedback` (Q-FedUpdate) the global arrays are an FP32 master model: the new master is
the average plus the broadcast's quantization residual (`precision.server.apply_update`). With a
power-of-two codec (Q-FedAvg, Q-FedUpdate) each round also reports the share of effective updates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import replace

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fl_bridge.codec import CodecConfig, Layout, decode, encode, record_nbytes
from fl_bridge.data import partitions as data_partitions
from fl_bridge.errors import FLError, MalformedUpdate
from fl_bridge.local import LocalConfig
from fl_bridge.model import ModelConfig
from fl_bridge.partition import sample_clients
from fl_bridge.precision.engine import Int8Training, eta_for_round
from fl_bridge.precision.server import apply_update, broadcast_values, update_statistics
from fl_bridge.task import NODE_PARTITION, DataTask, TrainTask

log = logging.getLogger("fl_bridge.server")


def split_replies(replies: Iterable[Message], server_round: int) -> tuple[list[Message], list[Message]]:
    """(replies with content, error replies), each error logged with its node and reason."""
    valid, errors = [], []
    for msg in replies:
        if msg.has_error():
            errors.append(msg)
            log.warning("round %d: node %d answered with an error: %s", server_round, msg.metadata.src_node_id,
                        msg.error.reason)
        else:
            valid.append(msg)
    return valid, errors


def to_record(tensors: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({n: Array(np.ascontiguousarray(v, dtype=np.float32)) for n, v in tensors.items()})


def from_record(record: ArrayRecord) -> dict[str, np.ndarray]:
    return {n: a.numpy() for n, a in record.items()}


def sample_nodes(nodes: list[int], per_round: int, seed: int, server_round: int) -> list[int]:
    """The SuperNodes of a `--node-data` round, drawn from (seed, round). Flower's node ids are
    uint64: draw indices, since numpy would hold ids above 2^63 as float64 and round them."""
    picked = np.random.default_rng([seed, server_round]).choice(len(nodes), min(per_round, len(nodes)), replace=False)
    return sorted(nodes[int(i)] for i in picked)


class CompressedFedAvg(FedAvg):
    """FedAvg with seeded partition sampling and encoded, validated payloads."""

    def __init__(self, model: ModelConfig, codec: CodecConfig, local: LocalConfig, data: DataTask,
                 layout: Layout, base_hash: str, per_round: int, round_timeout_s: float = 600.0,
                 int8: Int8Training | None = None, error_feedback: bool = False, node_data: bool = False,
                 eta_schedule: str = ""):
        # no federated evaluation (the server evaluates the global model itself): configure_evaluate
        # sends nothing, rather than fraction_evaluate=0.0, which Flower warns about on every run
        super().__init__(fraction_train=1.0, min_train_nodes=1, min_available_nodes=1)
        self.model, self.codec, self.local, self.data = model, codec, local, data
        self.layout, self.base_hash, self.per_round = layout, base_hash, per_round
        self.round_timeout_s = round_timeout_s
        self.int8, self.error_feedback, self.node_data = int8, error_feedback, node_data
        self.eta_schedule = eta_schedule  # "ROUND:ETA,...": the INT8 clients' eta per round (engine.parse_eta_schedule)
        self._reports: list[tuple[int, int]] = []  # (partition-id, num-examples) of this round's usable replies
        self._sent: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None  # (master, broadcast)
        self._most_examples = 0  # the largest partition sent this round: the bound of a reply's num-examples

    def resume(self, rounds: list[dict]) -> None:
        """Restore state a subclass keeps in the saved rounds' metrics (HaLo-FL's precisions); none here."""

    def round_metrics(self, server_round: int) -> dict:
        """Entries a subclass adds to the round's metrics (HaLo-FL's precisions and costs); with
        `node_data`, the shares the SuperNodes reported (the server did not assign them)."""
        if not self.node_data:
            return {}
        reports = sorted(self._reports)
        return {"partitions": [p for p, _ in reports], "node_examples": [n for _, n in reports]}

    def _nodes(self, grid: Grid) -> list[int]:
        deadline = time.monotonic() + self.round_timeout_s
        while not (nodes := sorted(grid.get_node_ids())):
            if time.monotonic() > deadline:
                raise FLError(f"no SuperNode connected within {self.round_timeout_s:.0f} s")
            time.sleep(1.0)
        return nodes

    def task(self, server_round: int, partition: int) -> TrainTask:
        entropy = [self.data.seed, server_round, partition % 2**32]  # NODE_PARTITION (-1) too
        seed = int(np.random.default_rng(entropy).integers(2**31))
        local = replace(self.local, seed=seed)
        int8 = self.int8
        if int8 is not None and self.eta_schedule:
            int8 = replace(int8, eta=eta_for_round(self.eta_schedule, int8.eta, server_round))
        return TrainTask(self.model, self.codec, local, self.data, partition, self.base_hash, int8)

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        nodes = self._nodes(grid)
        master = from_record(arrays)
        payload = encode(master, self.layout, self.codec)
        self._sent = (master, decode(payload, self.layout, self.codec))
        if self.node_data:  # each sampled SuperNode trains on its own data: no bound known here
            nodes = sample_nodes(nodes, self.per_round, self.data.seed, server_round)
            partitions, self._most_examples = [NODE_PARTITION] * len(nodes), 0
        else:
            partitions = sample_clients(self.data.clients, self.per_round, self.data.seed, server_round)
            sizes = [len(part) for part in data_partitions(self.data)]
            self._most_examples = max(sizes[p] for p in partitions)
        log.info("round %d: partitions %s on %d SuperNode(s)", server_round, partitions, len(nodes))
        return [
            Message(
                RecordDict({"arrays": payload,
                            "config": ConfigRecord(self.task(server_round, p).to_config(server_round))}),
                dst_node_id=nodes[i % len(nodes)], message_type=MessageType.TRAIN, group_id=str(server_round),
                ttl=self.round_timeout_s,  # a late reply expires with its round
            )
            for i, p in enumerate(partitions)
        ]

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        return []

    def _usable(self, msg: Message) -> tuple[dict[str, np.ndarray], int, float]:
        """Decoded tensors, example count and training loss of a reply; MalformedUpdate if unusable."""
        content = msg.content
        if set(content.keys()) != {"arrays", "metrics"}:
            raise MalformedUpdate(f"reply records {sorted(content.keys())} are not arrays + metrics")
        n, loss = content["metrics"].get("num-examples"), content["metrics"].get("train-loss", 0.0)
        if not isinstance(n, int) or n < 1:
            raise MalformedUpdate(f"num-examples {n!r} is not a positive integer")
        if self._most_examples and n > self._most_examples:  # one client must not dominate the average
            raise MalformedUpdate(f"num-examples {n} is more than any partition sent this round holds "
                                  f"({self._most_examples})")
        if not isinstance(loss, (int, float)):
            raise MalformedUpdate(f"train-loss {loss!r} is not a number")
        return decode(content["arrays"], self.layout, self.codec), n, float(loss)

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        valid, errors = split_replies(replies, server_round)
        sums: dict[str, np.ndarray] = {}  # running sums of n_k * update_k: one update in memory at a time
        examples, loss_sum, received, dropped, bytes_up = 0, 0.0, 0, 0, 0
        self._reports = []
        for msg in valid:
            bytes_up += record_nbytes(msg.content["arrays"]) if "arrays" in msg.content else 0
            try:
                tensors, n, loss = self._usable(msg)
            except MalformedUpdate as e:
                log.warning("round %d: dropped the update of node %d: %s", server_round, msg.metadata.src_node_id, e)
                dropped += 1
                continue
            for name, value in tensors.items():
                if name in sums:
                    sums[name] += n * value.astype(np.float64)
                else:
                    sums[name] = n * value.astype(np.float64)
            examples += n
            received += 1
            partition = msg.content["metrics"].get("partition-id", -1)
            self._reports.append((partition if isinstance(partition, int) else -1, n))
            loss_sum += n * loss
        metrics = MetricRecord({"bytes-up": bytes_up, "received": received, "dropped": dropped,
                                "failed": len(errors), "num-examples": examples})
        if not received:
            log.warning("round %d: no usable update; the global model is unchanged", server_round)
            return None, metrics
        averaged = {name: (sums[name] / examples).astype(np.float32) for name, _ in self.layout}
        metrics["train-loss"] = loss_sum / examples
        if self._sent is None:
            return to_record(averaged), metrics
        master, broadcast = self._sent
        new = apply_update(master, broadcast, averaged, self.error_feedback)
        stats = update_statistics(self.layout, self.codec, broadcast, averaged,
                                  broadcast_values(new, self.layout, self.codec))
        metrics.update({k.replace("_", "-"): v for k, v in stats.items()})
        return to_record(new), metrics
