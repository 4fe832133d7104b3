"""The federated loop of `--method fedmpq | aqfl | fpq8`: every client gets its own fixed-point
model (the global float model at the client's per-layer allocation, fresh steps), trains it, and
answers with the layers it keeps; the server averages (Eq. 15), and for fedmpq re-allocates every
client's bits with Alg. 2 from the rounded consensus allocation and the bits the client pruned in
its last round (clients not sampled keep their last pruned counts, 0 at first).

The run folder is contract 6 as for the other methods. The server state (`state.pt`) holds the
float global model; each round's metrics entry holds, under `fedmpq`, the allocation of every
client for the next round and their last pruned counts (what a resumed server restarts from), and
per round the average bits each sampled client was sent (`sent_avg_bits`, its budget is met when
this is <= its budget) and sent back (`returned_avg_bits`), `bits_down` / `bits_up` from the
formula (`wire.message_bits`) next to the measured `bytes_down` / `bytes_up`.

Evaluation every `eval_every` rounds: for every budget level, the model of the first client at
that level (the global model at its allocation, activations at the method's bits): `b<v>_...`
keys; the unprefixed keys are the client-weighted mean over the levels. The final `backbone.pt` is
the global model at the allocation of the first client with the largest budget (its fixed-point
values as float weights).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from dataclasses import replace

import numpy as np
from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid
from tqdm import tqdm

from fl_bridge.checkpointing import write_backbone_checkpoint
from fl_bridge.codec import record_nbytes
from fl_bridge.config import RunConfig
from fl_bridge.data import dataset, model_config, partitions
from fl_bridge.errors import FLError, MalformedUpdate
from fl_bridge.evaluate import Evaluator
from fl_bridge.fedmpq import wire
from fl_bridge.fedmpq.aggregate import aggregation_weights, consensus_bits, weighted_average
from fl_bridge.fedmpq.allocate import Allocator, average_bits
from fl_bridge.fedmpq.methods import MethodSpec, method_spec
from fl_bridge.fedmpq.planes import B_MAX, LayerCode, quantize
from fl_bridge.fedmpq.train import mixed_precision
from fl_bridge.model import FLModel, base_hash, build_model, get_communicated, layout, set_communicated
from fl_bridge.partition import histograms, sample_clients
from fl_bridge.rundir import RunDir, ServerState, write_json
from fl_bridge.server import data_task, totals
from fl_bridge.strategy import CompressedFedAvg, split_replies
from fl_bridge.task import TrainTask

log = logging.getLogger("fl_bridge.server")
Tensors = dict[str, np.ndarray]


def spec_of(cfg: RunConfig) -> MethodSpec:
    try:
        return method_spec(cfg.method, cfg.mpq_budgets, cfg.mpq_budget_shares, cfg.clients, cfg.mpq_act_bits,
                           cfg.mpq_lambda, cfg.mpq_eps, cfg.mpq_representation, cfg.mpq_allocation)
    except ValueError as e:
        raise FLError(str(e)) from None


def fixed_point(tensors: Tensors, names: list[str], bits: list[int], representation: str) -> dict[str, LayerCode]:
    """The global float model's layers at an allocation (fresh step per layer, Eq. 14)."""
    return {n: quantize(tensors[n], b, representation) for n, b in zip(names, bits)}


class FedMPQStrategy(CompressedFedAvg):
    """Per-client bit-plane messages, Eq. 15 aggregation and (fedmpq) Alg. 2 re-allocation."""

    def __init__(self, cfg: RunConfig, spec: MethodSpec, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.spec = spec
        self.names, self.m = wire.layer_names(self.layout), wire.layer_sizes(self.layout)
        self.allocator = Allocator(spec.allocation, spec.task.b_min, B_MAX).check()
        self.allocation = [[spec.start_bits(n)] * len(self.m) for n in range(cfg.clients)]
        self.pruned = [[0] * len(self.m) for _ in range(cfg.clients)]
        self.consensus: list[float] | None = None
        self.sent_bits: dict[int, list[int]] = {}
        self.report: dict = {}

    def state(self) -> dict:
        return {"allocation": self.allocation, "pruned": self.pruned, "consensus": self.consensus}

    def restore(self, state: dict) -> None:
        self.allocation, self.pruned = state["allocation"], state["pruned"]
        self.consensus = state.get("consensus")

    def task(self, server_round: int, partition: int) -> TrainTask:
        return replace(super().task(server_round, partition), fedmpq=self.spec.task)

    def messages(self, server_round: int, tensors: Tensors, grid: Grid) -> list[Message]:
        nodes = self._nodes(grid)
        chosen = sample_clients(self.data.clients, self.per_round, self.data.seed, server_round)
        self._most_examples = max(len(partitions(self.data)[p]) for p in chosen)
        floats = {n: v for n, v in tensors.items() if n not in self.names}
        out = []
        self.sent_bits = {}
        for i, p in enumerate(chosen):
            codes = fixed_point(tensors, self.names, self.allocation[p], self.spec.task.representation)
            self.sent_bits[p] = list(self.allocation[p])
            out.append(Message(
                RecordDict({"arrays": wire.encode(codes, floats, self.layout), "config": ConfigRecord(
                    self.task(server_round, p).to_config(server_round))}),
                dst_node_id=nodes[i % len(nodes)], message_type=MessageType.TRAIN, group_id=str(server_round),
                ttl=self.round_timeout_s))
        return out

    def _reply(self, msg: Message) -> tuple[int, Tensors, list[int], int, float]:
        """(partition, float model, bits per layer, examples, loss) of a usable reply."""
        content = msg.content
        if set(content.keys()) != {"arrays", "metrics"}:
            raise MalformedUpdate(f"reply records {sorted(content.keys())} are not arrays + metrics")
        metrics = content["metrics"]
        p, n, loss = metrics.get("partition-id"), metrics.get("num-examples"), metrics.get("train-loss", 0.0)
        if p not in self.sent_bits:
            raise MalformedUpdate(f"partition-id {p!r} was not sent this round")
        if not isinstance(n, int) or not 1 <= n <= self._most_examples:
            raise MalformedUpdate(f"num-examples {n!r} is not in 1..{self._most_examples}")
        codes, floats = wire.decode(content["arrays"], self.layout, self.spec.task.representation,
                                    self.spec.task.b_min)
        bits = [codes[name].bits for name in self.names]
        if any(b > s for b, s in zip(bits, self.sent_bits[p])):
            raise MalformedUpdate("a layer came back with more bits than it was sent (clients only prune)")
        return int(p), {**floats, **{k: c.values() for k, c in codes.items()}}, bits, n, float(loss)

    def aggregate(self, server_round: int, replies: Iterable[Message], tensors: Tensors) -> Tensors:
        valid, errors = split_replies(replies, server_round)
        got, bytes_up, dropped = [], 0, 0
        for msg in valid:
            bytes_up += record_nbytes(msg.content["arrays"]) if "arrays" in msg.content else 0
            try:
                got.append(self._reply(msg))
            except MalformedUpdate as e:
                log.warning("round %d: dropped the update of node %d: %s", server_round, msg.metadata.src_node_id, e)
                dropped += 1
        densities = [m["metrics"].get("top-plane-density") for m in (msg.content for msg in valid)
                     if "metrics" in m]
        densities = [d for d in densities if isinstance(d, float)]
        self.report = {"bytes_up": bytes_up, "received": len(got), "dropped": dropped, "failed": len(errors),
                       "bits_up": sum(self.bits_of(bits) for _, _, bits, _, _ in got),
                       "top_plane_density": sum(densities) / len(densities) if densities else None}
        if not got:
            log.warning("round %d: no usable update; the global model is unchanged", server_round)
            return tensors
        parts = [p for p, *_ in got]
        budgets = [self.spec.budgets[p] for p in parts]
        weights = aggregation_weights(budgets, [n for *_, n, _ in got], self.spec.weight_by_budget)
        new = weighted_average([model for _, model, *_ in got], weights)
        self.report.update(
            train_loss=float(sum(w * loss for w, (*_, loss) in zip(weights, got))),
            aggregation_weights={str(p): float(w) for p, w in zip(parts, weights)},
            returned_avg_bits={str(p): average_bits(bits, self.m) for p, _, bits, _, _ in got},
            planes_pruned=sum(sum(s - b for s, b in zip(self.sent_bits[p], bits)) for p, _, bits, _, _ in got))
        if self.spec.reallocate:
            for p, _, bits, _, _ in got:
                self.pruned[p] = [s - b for s, b in zip(self.sent_bits[p], bits)]
            self.consensus, rounded = consensus_bits([bits for _, _, bits, _, _ in got], weights)
            self.allocation = [self.allocator(rounded, self.pruned[c], self.m, self.spec.budgets[c])
                               for c in range(self.data.clients)]
        return new

    def bits_of(self, bits: list[int]) -> int:
        return wire.message_bits(self.layout, dict(zip(self.names, bits))).total


def evaluate_levels(evaluator: Evaluator, model: FLModel, tensors: Tensors, strategy: FedMPQStrategy) -> dict:
    """Accuracy of the model of the first client at every budget level, and the client-weighted mean."""
    spec, out, means = strategy.spec, {}, {}
    levels = sorted(set(spec.budgets))
    for v in levels:
        client = spec.budgets.index(v)
        bits = strategy.allocation[client]
        codes = fixed_point(tensors, strategy.names, bits, spec.task.representation)
        set_communicated(model, {**tensors, **{n: c.values() for n, c in codes.items()}})
        with mixed_precision(model, codes, spec.task.act_bits):
            result = evaluator.evaluate(model)
        out[f"b{v}_avg_bits"] = average_bits(bits, strategy.m)
        share = spec.budgets.count(v) / len(spec.budgets)
        for k, value in result.items():
            out[f"b{v}_{k}"] = value
            if not k.endswith("_ci95"):
                means[k] = means.get(k, 0.0) + share * value
    set_communicated(model, tensors)
    return {**means, **out}


def deployed_codes(cfg: RunConfig, tensors: Tensors, allocation: list[list[int]],
                   lay: wire.Layout) -> dict[str, LayerCode]:
    """The layers of the deployed model: the global model at the allocation of the first client with
    the largest budget (`allocation`: every client's, as saved in the last round's metrics)."""
    spec = spec_of(cfg)
    client = spec.budgets.index(max(spec.budgets))
    return fixed_point(tensors, wire.layer_names(lay), allocation[client], spec.task.representation)


def deployed_tensors(cfg: RunConfig, tensors: Tensors, rounds: list[dict], lay: wire.Layout) -> Tensors:
    """The deployed model's tensors (fixed-point layers as float values), from a run's state."""
    codes = deployed_codes(cfg, tensors, rounds[-1]["fedmpq"]["allocation"], lay)
    return {**tensors, **{n: c.values() for n, c in codes.items()}}


def run_fedmpq(grid: Grid, cfg: RunConfig) -> RunDir:
    cfg.check()
    spec = spec_of(cfg)
    run = RunDir(cfg.out)
    run.start(cfg)
    data = dataset(cfg.dataset, cfg.data_root, cfg.image_size)
    model_cfg = model_config(cfg, data)
    model = build_model(model_cfg)
    lay, dtask = layout(model), data_task(cfg)
    write_json(run.partitions_path, {
        "lda_alpha": cfg.lda_alpha, "seed": cfg.seed, "classes": model_cfg.num_classes, "budgets": list(spec.budgets),
        "histograms": histograms(data.base.labels, list(partitions(dtask)), model_cfg.num_classes).tolist()})
    strategy = FedMPQStrategy(cfg, spec, model_cfg, cfg.codec, cfg.local, dtask, lay, base_hash(model),
                              cfg.per_round, round_timeout_s=cfg.round_timeout)
    evaluator = Evaluator(data, cfg)
    summary = {"method": cfg.method, "budgets": list(spec.budgets), "layer_sizes": strategy.m,
               "representation": spec.task.representation, "allocation_mode": spec.allocation}
    state = run.load_state(lay)
    if state is None:
        tensors = get_communicated(model)
        state = ServerState(0, tensors, [{"round": 0, "bytes_up": 0, "bytes_down": 0, "fedmpq": strategy.state(),
                                          **evaluate_levels(evaluator, model, tensors, strategy)}])
        run.save_state(state)
    else:
        log.info("resuming %s after round %d", run.path, state.round)
        strategy.restore(state.rounds[-1]["fedmpq"])
    tensors = state.tensors
    bar = tqdm(range(state.round + 1, cfg.rounds + 1), desc="rounds", unit="round", file=sys.stderr,
               initial=state.round, total=cfg.rounds)
    for rnd in bar:
        start = time.monotonic()
        messages = strategy.messages(rnd, tensors, grid)
        sent = {p: average_bits(b, strategy.m) for p, b in strategy.sent_bits.items()}
        bits_down = sum(strategy.bits_of(b) for b in strategy.sent_bits.values())
        replies = list(grid.send_and_receive(messages, timeout=cfg.round_timeout))
        tensors = strategy.aggregate(rnd, replies, tensors)
        entry = {"round": rnd, "partitions": list(sent), "bytes_down": sum(record_nbytes(m.content["arrays"])
                                                                          for m in messages),
                 "bits_down": bits_down, "sent": len(messages), "timed_out": len(messages) - len(replies),
                 **strategy.report, "sent_avg_bits": {str(p): a for p, a in sent.items()},
                 "budget_met": {str(p): a <= spec.budgets[p] + 1e-9 for p, a in sent.items()},
                 "fedmpq": strategy.state()}
        if rnd % cfg.eval_every == 0 or rnd == cfg.rounds:
            entry.update(evaluate_levels(evaluator, model, tensors, strategy))
        entry["seconds"] = round(time.monotonic() - start, 2)
        state = ServerState(rnd, tensors, state.rounds + [entry])
        run.save_state(state)
        summary.update(totals(state.rounds))
        run.write_metrics(cfg, summary, state.rounds)
        log.info("round %d: received %d, loss %s", rnd, entry["received"], entry.get("train_loss"))
        bar.set_postfix(bytes_up=entry["bytes_up"], received=entry["received"])
    summary.update(totals(state.rounds), final_avg_bits=[average_bits(b, strategy.m) for b in strategy.allocation],
                   final_allocation=strategy.allocation)
    run.write_metrics(cfg, summary, state.rounds)
    set_communicated(model, deployed_tensors(cfg, tensors, state.rounds, lay))
    write_backbone_checkpoint(model, model_cfg, data, cfg, state.rounds, run.checkpoint_path)
    log.info("wrote %s, %s and %s", run.metrics_path, run.state_path, run.checkpoint_path)
    return run
