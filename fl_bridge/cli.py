"""`python -m fl_bridge <command>`: run | compare | precision-sweep | timing | deploy | superlink | supernode.

Defaults are the embedded default. Errors print one `fl_bridge: error: <line>` to stderr and
exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path

from contracts import fl_run_dir
from fl_bridge.bridge import DeployConfig
from fl_bridge.config import RunConfig
from fl_bridge.errors import DeployError, FLError
from fl_bridge.fedmpq import cli as fedmpq_cli
from safeio import OneLineParser, add_dataclass_flags, config_from_args

HELP = {
    "out": "run folder (config, metrics.json, state.pt, backbone.pt)",
    "dataset": "dataset of train/ (synthetic, fashionmnist, cifarfs, ...)",
    "data_root": "folder of an on-disk dataset",
    "backbone": "resnet9 | resnet12 | resnet8 | resnet18",
    "norm": "batch | group (the FPGA chain needs batch)",
    "method": "fedavg | flocora | q-fedavg | q-fedupdate (INT8 client training, INT8 messages both ways; "
              "q-fedupdate keeps an FP32 master model on the server)",
    "lora": "q-fedavg / q-fedupdate: train FLoCoRA's adapters (--rank, --alpha) in INT8 instead of every parameter",
    "grid_update": "q-*: integer weight update, niti (Eq. 2, --eta) | sgd (--lr, --momentum, then stochastic rounding)",
    "eta": "q-* with --grid-update niti: bits of the integer weight update (at most 2^eta weight LSBs per step)",
    # FedMPQ (--method fedmpq | aqfl | fpq8)
    "mpq_budgets": "fedmpq/aqfl/fpq8: average weight-bit budgets, one per client (2,2,4,...), or budget levels "
                   "shared out by --mpq-budget-shares",
    "mpq_budget_shares": "percent of the clients at each budget level, in client order (used when --mpq-budgets "
                         "lists fewer values than --clients)",
    "mpq_act_bits": "fedmpq/aqfl: activation bits (fpq8 uses 8)",
    "mpq_lambda": "fedmpq: weight of the bit-plane group lasso",
    "mpq_eps": "fedmpq: a top bit-plane with at most this density of ones is pruned",
    "mpq_representation": "fedmpq/aqfl/fpq8: sign-magnitude (the top plane is sparse) | literal (the paper's offset "
                          "binary: the top plane is the sign)",
    "mpq_allocation": "fedmpq: the server's pruning-growing, literal (Alg. 2 as published, may overshoot a budget "
                      "slightly) | strict (never over budget)",
    "eta_schedule": "q-* with niti: ROUND:ETA,... eta from that round on, e.g. 1:5,11:4,16:3 (NITI's decay); "
                    "--eta before the first item",
    "int8_momentum": "q-* with niti: NITI's integer momentum m = floor(m * M / 16) + step, M in 0..15 (0 = none)",
    "int8_decay_shift": "q-* with niti: integer weight decay, round(codes / 2^d) more per step (0 = none)",
    "rank": "LoRA rank r (flocora)",
    "alpha": "LoRA alpha; the update is scaled by alpha / r",
    "adapt_stem": "put an adapter on the stem conv too (FLoCoRA mode 2) instead of training it fully",
    "rotation": "add EASY's rotation loss to the local objective",
    "quant_bits": "message bits: 32 (float) or 8 | 4 | 2 (affine per output channel, both directions; "
                  "power-of-two per tensor, 8 only, for q-*)",
    "prune_rate": "global magnitude pruning rate of every message, in [0, 1)",
    "deflate": "DEFLATE-compress every message",
    "clients": "number of clients (LDA partitions of the base split)",
    "per_round": "clients sampled per round (seeded)",
    "lda_alpha": "Dirichlet concentration of the non-IID split ('inf' = IID)",
    "samples_per_client": "samples per client (0 = an equal share)",
    "round_timeout": "seconds the server waits for a round's replies",
    "augment": "EASY's training transforms (random resized crop, colour jitter, flip) instead of flips only",
    "eval_every": "evaluate the global model every N rounds (and after the last)",
    "episodes": "few-shot episodes per evaluation",
    "shots": "shots of the few-shot evaluation",
    "engine": "inline: every client in this process, one after the other, no network socket; ray: Flower's "
              "Ray simulation engine, clients in parallel (Ray listens on every interface: trusted hosts only)",
    "supernodes": "virtual SuperNodes of the simulation (0 = per-round)",
    "client_cpus": "CPUs per simulated client (Ray resources)",
    # HaLo-FL (--method halo-fl)
    "halo_energy": "halo-fl: energy-constrained clients (clients 0.., then latency, area, unconstrained)",
    "halo_latency": "halo-fl: latency-constrained clients",
    "halo_area": "halo-fl: area-constrained clients",
    "halo_unconstrained": "halo-fl: clients that keep --halo-start (the four counts add up to --clients)",
    "halo_start": "halo-fl: start precision bw-ba-be (weights, activations, errors)",
    "halo_floors": "halo-fl: lowest bits per dimension, bw-ba-be",
    "halo_step": "halo-fl: bits removed by one HaLo-PS step",
    "halo_step_rule": "halo-fl: every-k (before rounds K+1, 2K+1, ...) | every-round (Alg. 1 read literally)",
    "halo_step_every": "halo-fl: K of every-k (0 = ceil(rounds / 3))",
    "halo_tie_break": "halo-fl: order of the dimensions lowered when costs tie",
    "halo_cost_model": "halo-fl: surrogate (HaLoSim fitted to the paper's Table II) | structural (crossbars of our "
                       "network) | fpga (Tensil on the PYNQ-Z1: tensil's resources and cycle estimator)",
    "halo_calibration": "halo-fl surrogate: the Table II dataset its constants come from (cifar10, emnist, tinyimagenet)",
    "halo_aggregation": "halo-fl: paper (average re-quantized to 8 bits) | master (extension: Q-FedUpdate's FP32 master)",
    "halo_upload": "halo-fl: bw (the bw-bit forward weights) | grid (the 8-bit stored weights)",
    "halo_fpga_arch": "halo-fl fpga cost model: Tensil architecture (size and memories)",
    "halo_fpga_mhz": "halo-fl fpga cost model: board clock in MHz",
    "node_data": "with --superlink: each SuperNode trains on its own data (partition-id, num-partitions and "
                 "data-folder of its node config) instead of the server-assigned partitions of --data-root",
}


def _add_config_flags(parser: argparse.ArgumentParser, **defaults: object) -> None:
    add_dataclass_flags(parser, RunConfig, helps=HELP, defaults=defaults)


def _config(args: argparse.Namespace) -> RunConfig:
    return config_from_args(RunConfig, args).check()


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m fl_bridge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="federated training, in simulation or on a running SuperLink")
    _add_config_flags(run)
    run.add_argument("--superlink", default=None, metavar="HOST:PORT",
                     help="submit to this SuperLink with `flwr run` instead of simulating")
    cmp = sub.add_parser("compare", help="simulate FedAvg (float32) and these FLoCoRA settings side by side")
    _add_config_flags(cmp, out=fl_run_dir("compare"))
    swp = sub.add_parser("precision-sweep", help="FedAvg (FP32) vs Q-FedAvg vs Q-FedUpdate for several clients per "
                         "round, in-process; --method and --per-round are set by the sweep")
    _add_config_flags(swp, out=fl_run_dir("precision"), image_size=16, clients=16, samples_per_client=32, rounds=20,
                      eval_every=20, eta=1)
    swp.add_argument("--per-round-list", type=int, nargs="+", default=[1, 4, 16],
                     help="clients per round K of the sweep (default: 1 4 16)")
    swp.add_argument("--seeds", type=int, nargs="+", default=None,
                     help="run the sweep for each seed (in <out>/seed<S>/) and report mean +- std over seeds "
                          "(default: --seed only)")
    tim = sub.add_parser("timing", help="modelled CPU/accelerator pipelining of INT8 batch quantization (Q-FedUpdate)")
    _add_config_flags(tim, method="q-fedupdate", out=fl_run_dir("timing"))
    tim.add_argument("--json", action="store_true", help="print the full report as JSON instead of a table")
    dep = sub.add_parser("deploy", help="merge the adapters and run export, compile, (bitstream) and bundle")
    add_dataclass_flags(dep, DeployConfig, helps={
        "run": "federated run folder", "name": "artifact name (none: fl_<run folder name>)",
        "arch": "Tensil architecture", "mhz": "accelerator clock of the bitstream (built when vivado is on PATH)",
        "build": "root of the export/tensil/fpga/bundle outputs", "check_images": "images compared emulator vs torch"})
    fedmpq_cli.add_parsers(sub, _add_config_flags)  # FedMPQ: fedmpq-compare, allocate
    link = sub.add_parser("superlink", help="start a Flower SuperLink (insecure; for trusted networks and tests)")
    link.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    link.add_argument("--port", type=int, default=8000, help="port of the Fleet/Control/Runtime API (default: 8000)")
    link.add_argument("--database", default=None, help="SQLite file for a SuperLink that survives restarts")
    node = sub.add_parser("supernode", help="start a Flower SuperNode connected to a SuperLink")
    node.add_argument("--superlink", default="127.0.0.1:8000", help="SuperLink address (default: 127.0.0.1:8000)")
    node.add_argument("--port", type=int, default=9094, help="local port of its ClientApp API (default: 9094)")
    node.add_argument("--data-folder", default=None,
                      help="this node's own dataset folder, for runs with --node-data (default: the run's --data-root)")
    node.add_argument("--partition-id", type=int, default=0,
                      help="with --node-data: the share of the data folder this node trains on (default: 0)")
    node.add_argument("--num-partitions", type=int, default=1,
                      help="with --node-data: shares the data folder is cut into (default: 1, all of it)")
    return parser


def _run(args: argparse.Namespace) -> int:
    from safeio import output_lock

    cfg = _config(args)
    with output_lock(Path(cfg.out), "run folder", FLError):  # one writer per run folder
        if args.superlink:
            from fl_bridge.deployment import run_on_superlink

            run = run_on_superlink(cfg, args.superlink)
        else:
            from fl_bridge.simulate import simulate

            run = simulate(cfg)
    if not run.checkpoint_path.is_file():
        raise FLError(f"the federation ended without writing {run.checkpoint_path}; see the log above")
    print(run.metrics_path)
    print(run.checkpoint_path)
    report_run(run.metrics_path)
    return 0


def report_run(metrics_path: Path) -> None:
    """`<run>/convergence.png` and one summary line on stderr (a plotting failure only warns)."""
    import json

    from fl_bridge.curves import PNG_NAME, plot_run, summary_line

    metrics = json.loads(Path(metrics_path).read_text())
    run_dir = Path(metrics_path).parent
    try:
        png = plot_run(metrics, run_dir / PNG_NAME, title=str(run_dir))
    except (ImportError, OSError, ValueError, KeyError) as e:
        print(f"fl_bridge: warning: no convergence plot ({type(e).__name__}: {e})", file=sys.stderr)
        png = None
    print(summary_line(metrics, run_dir, png), file=sys.stderr)


def report_compare(path: Path) -> None:
    """`comparison.png` next to `comparison.json` and one summary line on stderr."""
    import json

    from fl_bridge.curves import COMPARE_PNG, compare_summary_line, plot_compare

    results = json.loads(Path(path).read_text())
    out_dir = Path(path).parent
    try:
        runs = {"FedAvg": json.loads((out_dir / "fedavg" / "metrics.json").read_text()),
                "FLoCoRA": json.loads((out_dir / "flocora" / "metrics.json").read_text())}
        png = plot_compare(runs, out_dir / COMPARE_PNG, title=str(out_dir))
    except (ImportError, OSError, ValueError, KeyError) as e:
        print(f"fl_bridge: warning: no comparison plot ({type(e).__name__}: {e})", file=sys.stderr)
        png = None
    print(compare_summary_line(results, out_dir, png), file=sys.stderr)


def _deploy(args: argparse.Namespace) -> int:
    from fl_bridge.bridge import deploy

    report = deploy(config_from_args(DeployConfig, args))
    print(report)
    print(deploy_verdict(json.loads(report.read_text()), report), file=sys.stderr)
    return 0


def deploy_verdict(report: dict, path: Path) -> str:
    """`deploy`'s closing line: where the bundle went and how closely the emulated fixed-point
    backbone agrees with the float one (the figures of deploy.json)."""
    from fl_bridge.bridge import MIN_COSINE

    check = report["emulator_vs_torch"]
    target = "FPGA bitstream" if report.get("bitstream") else "emulator only, no bitstream"
    parts = [f"fl_bridge: summary: bundle {report['bundle']} ({target}); the emulated fixed-point backbone agrees "
             f"with the float one on {check['images']} images: min cosine {check['min_cosine']:.5f} "
             f"(at least {MIN_COSINE} required), max |diff| {check['max_abs_diff']:.4f} "
             f"for features up to {check['feature_scale']:.3f}"]
    int8 = check.get("int8_trained_vs_emulated")
    if int8:
        parts.append(f"against the INT8-trained model: min cosine {int8['min_cosine']:.5f}")
    parts.append(f"details in {path}")
    return "; ".join(parts)


def _timing(args: argparse.Namespace) -> int:
    import json

    import torch

    from fl_bridge.qtiming import client_timing, markdown

    torch.set_num_threads(1)
    cfg = _config(args)
    if not cfg.quantized_training:
        raise FLError("timing models INT8 client training: use --method q-fedupdate or q-fedavg")
    report = client_timing(cfg)
    print(json.dumps(report, indent=1) if args.json else markdown(report))
    return 0


def _flower(cmd: list[str]) -> int:
    from fl_bridge.deployment import flower_env

    try:
        return subprocess.call(cmd, env=flower_env())
    except KeyboardInterrupt:
        return 130


def configure_logging(command: str) -> None:
    """fl_bridge's INFO lines on stderr; Flower's own handler without colour codes unless stderr
    is a terminal (Flower colours its level names whatever the stream is)."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("fl_bridge").setLevel(logging.INFO)
    logging.getLogger("flwr").propagate = False  # Flower prints through its own handler
    if command in ("run", "compare", "precision-sweep") and not sys.stderr.isatty():
        from flwr.common.logger import update_console_handler

        update_console_handler(colored=False)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.command)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "compare":
            from fl_bridge.compare import compare

            cfg = _config(args)
            if cfg.quantized_training:
                raise FLError("compare runs FedAvg against FLoCoRA; for q-fedavg / q-fedupdate use precision-sweep")
            path = compare(cfg)
            print(path)
            report_compare(path)
            return 0
        if args.command == "precision-sweep":
            import torch

            from fl_bridge.sweep import sweep

            torch.set_num_threads(1)  # one thread: reproducible figures, fair to the other jobs
            print(sweep(_config(args), args.per_round_list, args.seeds))
            return 0
        if args.command in fedmpq_cli.COMMANDS:  # FedMPQ
            return fedmpq_cli.main(args, _config)
        if args.command == "timing":
            return _timing(args)
        if args.command == "deploy":
            return _deploy(args)
        from fl_bridge.deployment import node_config_arg, superlink_command, supernode_command

        if args.command == "superlink":
            return _flower(superlink_command(args.host, args.port, args.database))
        if not 0 <= args.partition_id < args.num_partitions:
            raise FLError(f"--partition-id {args.partition_id} must be in 0..{args.num_partitions - 1}")
        node_config = node_config_arg(args.partition_id, args.num_partitions, args.data_folder)
        return _flower(supernode_command(args.superlink, args.port, node_config=node_config))
    except (FLError, DeployError) as e:
        print(f"fl_bridge: error: {e}", file=sys.stderr)
        return 2
