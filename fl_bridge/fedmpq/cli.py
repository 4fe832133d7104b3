"""FedMPQ's subcommands of `python -m fl_bridge`: `fedmpq-compare` (FedMPQ against AQFL and FPQ8
on one federation) and `allocate` (per-layer bits for a trained checkpoint under a budget)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from contracts import fl_run_dir

COMMANDS = ("fedmpq-compare", "allocate")
# the comparison's small defaults (like precision-sweep's): a few minutes on two cores
COMPARE_DEFAULTS = {"out": fl_run_dir("fedmpq"), "method": "fedmpq", "image_size": 16, "clients": 10, "per_round": 5,
                    "samples_per_client": 64, "rounds": 10, "epochs": 2, "eval_every": 10}


def add_parsers(sub: argparse._SubParsersAction, add_config_flags: Callable[..., None]) -> None:
    cmp = sub.add_parser("fedmpq-compare", help="FedMPQ vs fixed precision per client (AQFL) and FPQ8, in-process; "
                         "accuracy against average weight bits")
    add_config_flags(cmp, **COMPARE_DEFAULTS)
    cmp.add_argument("--variants", nargs="+", default=["fedmpq", "aqfl", "fpq8"],
                     help="runs: fedmpq | fedmpq-strict (Alg. 2 never over budget) | fedmpq-offset (the paper's offset-binary "
                     "planes) | aqfl | fpq8 (default: fedmpq aqfl fpq8)")
    alloc = sub.add_parser("allocate", help="per-layer weight bits of a trained backbone checkpoint under an average "
                           "bit budget (FedMPQ's pruning-growing), with the fake-quantized model's accuracy")
    alloc.add_argument("--checkpoint", required=True, help="backbone checkpoint (contract 1), e.g. build/backbone.pt")
    alloc.add_argument("--budget", type=float, required=True, help="average bits per weight, 2..8")
    alloc.add_argument("--mode", default="strict", help="Alg. 2: strict (never over budget) | literal (default: strict)")
    alloc.add_argument("--eps", type=float, default=0.03, help="MSB pruning threshold of the importance pass "
                       "(default: 0.03)")
    alloc.add_argument("--representation", default="sign-magnitude", help="sign-magnitude | literal")
    alloc.add_argument("--act-bits", type=int, default=0, help="activation bits of the evaluation (0 = float)")
    alloc.add_argument("--shots", type=int, default=1, help="shots of the few-shot evaluation (default: 1)")
    alloc.add_argument("--episodes", type=int, default=500, help="few-shot episodes (default: 500)")
    alloc.add_argument("--data-root", default="", help="folder of an on-disk dataset (default: the checkpoint's)")
    alloc.add_argument("--out", default=None, help="also write the report as JSON to this file")
    alloc.add_argument("--json", action="store_true", help="print JSON instead of a table")


def main(args: argparse.Namespace, config: Callable[[argparse.Namespace], object]) -> int:
    import torch

    torch.set_num_threads(1)  # reproducible figures, fair to other jobs
    if args.command == "fedmpq-compare":
        from fl_bridge.fedmpq.compare import compare

        print(compare(config(args), list(args.variants)))
        return 0
    from fl_bridge.fedmpq.checkpoint import AllocateConfig, allocate_checkpoint, markdown

    cfg = AllocateConfig(args.checkpoint, args.budget, args.mode, args.eps, args.representation, args.act_bits,
                         args.shots, args.episodes, args.data_root)
    if args.out:
        from safeio import UsageError, check_output

        from fl_bridge.errors import FLError

        try:
            check_output("--out", args.out, "file")
        except UsageError as e:
            raise FLError(str(e)) from None
    report = allocate_checkpoint(cfg)
    if args.out:
        from fl_bridge.rundir import write_json

        write_json(Path(args.out), report)
    print(json.dumps(report, indent=1) if args.json else markdown(report))
    return 0
