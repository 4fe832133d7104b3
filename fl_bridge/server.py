"""The federated training loop of the ServerApp: resumable rounds of `CompressedFedAvg`.

Each round: configure (sample + encode), `grid.send_and_receive` with the round timeout (a
client that crashes answers with an error, one that times out does not answer; neither stops
the round), aggregate the usable replies, evaluate the global model every `eval_every` rounds,
then save the server state and `metrics.json`. A killed server restarted on the same `--out`
continues after the last saved round. At the end the adapters are merged and the backbone
checkpoint of contract 1 is written.

Why this loop and not Flower's `Strategy.start`: `start` keeps its state in memory and returns
at the end, while this loop saves the server state after every round (resume after a kill) and
measures the serialised bytes of every message sent and received (`bytes_up`, `bytes_down`);
it uses only the strategy's public `configure_train` / `aggregate_train` and the `Grid`.
"""

from __future__ import annotations

import logging
import sys
import time

from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp import Grid
from tqdm import tqdm

from fl_bridge.accounting import count_message
from fl_bridge.codec import record_nbytes
from fl_bridge.checkpointing import write_backbone_checkpoint
from fl_bridge.config import RunConfig
from fl_bridge.curves import round_line
from fl_bridge.data import dataset, model_config, partitions
from fl_bridge.evaluate import Evaluator
from fl_bridge.fedmpq.methods import FEDMPQ_METHODS
from fl_bridge.model import ModelConfig, base_hash, build_model, get_communicated, layout
from fl_bridge.partition import histograms, sample_clients
from fl_bridge.precision.accounting import message_bits, round_bits
from fl_bridge.qfed import evaluate_global, load_global
from fl_bridge.rundir import RunDir, ServerState, write_json
from fl_bridge.strategy import CompressedFedAvg, from_record, to_record
from fl_bridge.task import DataTask

log = logging.getLogger("fl_bridge.server")


def data_task(cfg: RunConfig) -> DataTask:
    return DataTask(cfg.dataset, cfg.data_root, cfg.image_size, cfg.clients, cfg.lda_alpha,
                    cfg.samples_per_client, cfg.seed)


def analytic(cfg: RunConfig, model_cfg: ModelConfig) -> dict:
    """The thesis's message size and TCC for this model, next to which measured bytes are put."""
    plain = build_model(ModelConfig(**{**model_cfg.__dict__, "method": "fedavg"}))
    count = count_message(plain, cfg.rank if cfg.structure == "flocora" else None, cfg.adapt_stem)
    bits = cfg.quant_bits
    out = {
        **count.to_dict(),
        "message_bytes": count.nbytes(bits),
        "message_bytes_with_buffers": count.nbytes(bits, with_buffers=True),
        "tcc_bytes": count.tcc_bytes(cfg.rounds, bits),
        "fedavg_fp32_message_bytes": count_message(plain, None).nbytes(32),
        "convention": "Eq. 16: TCC = 2 R |message|, one client slot; BatchNorm statistics not counted",
        "message_bits": message_bits(layout(build_model(model_cfg)), cfg.codec).to_dict(),
    }
    if cfg.codec.scale == "pow2":  # one int8 exponent per tensor instead of the thesis's per-slice pairs
        with_buffers = out["message_bits"]["total"] // 8
        buffers = 4 * count.buffers
        out.update(message_bytes=with_buffers - buffers, message_bytes_with_buffers=with_buffers,
                   tcc_bytes=2 * cfg.rounds * (with_buffers - buffers),
                   convention="TCC = 2 R |message| (power-of-two INT8: one int8 exponent per tensor); "
                              "BatchNorm statistics not counted")
    return out


def run_federation(grid: Grid, cfg: RunConfig, initial_metrics: dict | None = None) -> RunDir:
    """Run (or resume) the federation of `cfg`. `initial_metrics`: the round-0 evaluation when the
    caller already has it (the same initial global model, evaluated the same way: the precision
    sweep's runs that differ only in K), recorded instead of evaluating again."""
    cfg.check()
    if cfg.method in FEDMPQ_METHODS:  # FedMPQ and its baselines: a model per client (fl_bridge/fedmpq)
        from fl_bridge.fedmpq.server import run_fedmpq

        return run_fedmpq(grid, cfg)
    run = RunDir(cfg.out)
    run.start(cfg)
    data = dataset(cfg.dataset, cfg.data_root, cfg.image_size)
    model_cfg = model_config(cfg, data)
    num_classes = model_cfg.num_classes
    model = build_model(model_cfg)
    lay, dtask, frozen_hash = layout(model), data_task(cfg), base_hash(model)
    write_json(run.partitions_path, {"assignment": "node-config", "note": "each SuperNode trains on its own data"}
               if cfg.node_data else {
        "lda_alpha": cfg.lda_alpha, "seed": cfg.seed, "classes": num_classes,
        "histograms": histograms(data.base.labels, list(partitions(dtask)), num_classes).tolist()})
    if cfg.method == "halo-fl":  # HaLo-FL: one precision per client (fl_bridge/halo)
        from fl_bridge.halo.run import halo_strategy

        strategy = halo_strategy(cfg, model_cfg, data, dtask, lay, frozen_hash, run.path)
    else:
        strategy = CompressedFedAvg(model_cfg, cfg.codec, cfg.local, dtask, lay, frozen_hash, cfg.per_round,
                                    round_timeout_s=cfg.round_timeout, int8=cfg.int8,
                                    error_feedback=cfg.method == "q-fedupdate", node_data=cfg.node_data,
                                    eta_schedule=cfg.eta_schedule)
    evaluator = Evaluator(data, cfg)
    summary = analytic(cfg, model_cfg)
    state = run.load_state(lay)
    if state is None:
        initial = get_communicated(model)
        load_global(model, cfg, initial, lay)
        metrics = evaluate_global(evaluator, model, cfg) if initial_metrics is None else dict(initial_metrics)
        state = ServerState(0, initial, [{"round": 0, "bytes_up": 0, "bytes_down": 0, **metrics}])
        run.save_state(state)
    else:
        log.info("resuming %s after round %d", run.path, state.round)
    strategy.resume(state.rounds)
    arrays = to_record(state.tensors)
    rounds = tqdm(range(state.round + 1, cfg.rounds + 1), desc="rounds", unit="round", file=sys.stderr,
                  initial=state.round, total=cfg.rounds)
    for rnd in rounds:
        start = time.monotonic()
        arrays, entry = play_round(grid, strategy, arrays, rnd, cfg)
        if rnd % cfg.eval_every == 0 or rnd == cfg.rounds:
            load_global(model, cfg, from_record(arrays), lay)
            entry.update(evaluate_global(evaluator, model, cfg))
        entry["seconds"] = round(time.monotonic() - start, 2)
        state = ServerState(rnd, from_record(arrays), state.rounds + [entry])
        run.save_state(state)
        summary.update(totals(state.rounds))
        run.write_metrics(cfg, summary, state.rounds)
        log.info("%s", round_line(entry, cfg.rounds))
        rounds.set_postfix(bytes_up=entry["bytes_up"], received=entry["received"])
    load_global(model, cfg, from_record(arrays), lay)
    summary.update(totals(state.rounds))
    run.write_metrics(cfg, summary, state.rounds)
    write_backbone_checkpoint(model, model_cfg, data, cfg, state.rounds, run.checkpoint_path)
    if cfg.method == "halo-fl":  # HaLo-FL: each client's path through the precision tree, next to the metrics
        from fl_bridge.halo.plot import write_path_plot

        write_path_plot(cfg, state.rounds, run.path)
    log.info("wrote %s, %s and %s", run.metrics_path, run.state_path, run.checkpoint_path)
    return run


def play_round(grid: Grid, strategy: CompressedFedAvg, arrays: ArrayRecord, rnd: int,
               cfg: RunConfig) -> tuple[ArrayRecord, dict]:
    """One round: configure, send and receive (round timeout), aggregate; the new global model
    (unchanged without a usable update) and the round's traffic and outcome counts."""
    messages = list(strategy.configure_train(rnd, arrays, ConfigRecord(), grid))
    replies = list(grid.send_and_receive(messages, timeout=cfg.round_timeout))
    new_arrays, metrics = strategy.aggregate_train(rnd, replies)
    arrived = int(metrics["received"]) + int(metrics["dropped"])
    entry = {"round": rnd, "partitions": sample_clients(cfg.clients, cfg.per_round, cfg.seed, rnd),
             "bytes_up": int(metrics["bytes-up"]),
             "bytes_down": sum(record_nbytes(m.content["arrays"]) for m in messages),
             **round_bits(strategy.layout, cfg.codec, len(messages), arrived),
             "sent": len(messages), "received": int(metrics["received"]), "dropped": int(metrics["dropped"]),
             "failed": int(metrics["failed"]), "timed_out": len(messages) - len(replies),
             "train_loss": metrics.get("train-loss")}
    for key in ("effective-update-fraction", "broadcast-changed-fraction"):
        if key in metrics:
            entry[key.replace("-", "_")] = float(metrics[key])
    entry.update(strategy.round_metrics(rnd))
    return (arrays if new_arrays is None else new_arrays), entry


def totals(rounds: list[dict]) -> dict:
    up = sum(r["bytes_up"] for r in rounds)
    down = sum(r["bytes_down"] for r in rounds)
    bits = sum(r.get("bits_up", 0) + r.get("bits_down", 0) for r in rounds)
    return {"total_bytes_up": up, "total_bytes_down": down, "total_bytes": up + down, "total_bits": bits}
