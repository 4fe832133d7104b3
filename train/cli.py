"""`python -m train fit | evaluate | sample-images`; flags map one-to-one onto the config
dataclasses' fields and default to the embedded default. User errors print
`train: error: <one line>` and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from train.backbones import BackboneError
from train.checkpoint import CheckpointError
from train.datasets import DatasetError
from train.easy import FitConfig, TrainError, fit
from train.evaluate import EvaluateConfig, evaluate_checkpoint
from train.fewshot import FewShotError
from train.samples import SampleConfig, write_samples
from safeio import OneLineParser, UsageError, add_dataclass_flags, config_from_args

USER_ERRORS = (DatasetError, FewShotError, CheckpointError, BackboneError, TrainError, UsageError)

HELP = {
    "dataset": "synthetic (default), miniimagenet, cifarfs, fc100, tieredimagenet, cub, cifar10, cifar100, "
               "cinic10, folder, fashionmnist",
    "data_root": "folder of an on-disk dataset (nothing is downloaded)",
    "backbone": "resnet9, resnet12, resnet8 or resnet18",
    "strided": "strided convolutions instead of max-pooling (EASY families)",
    "norm": "batch or group (GroupNorm for the CIFAR families)",
    "epochs": "training epochs per ensemble member",
    "cycle_epochs": "epochs per cosine cycle; each restart multiplies the peak lr by gamma",
    "rotations": "rotation self-supervision pass",
    "mixup": "manifold mixup pass",
    "ensemble": "members trained with seeds seed, seed+1, ...; features concatenated",
    "val_episodes": "5-way 1-shot validation episodes per epoch (checkpoint selection)",
    "episodes": "few-shot episodes",
    "compare_untrained": "also report an untrained backbone of the same architecture",
    "device": "cpu, cuda, cuda:N (fit: auto = cuda when available)",
    "threads": "CPU threads for torch (0: torch's default); 1 is fastest on a shared 2-core machine",
    "out": "output path",
    "force": "replace a finished checkpoint at --out (it stays until the new run finishes)",
    "split": "base, val, novel or base_test",
    "classes": "number of classes",
    "per_class": "images per class",
    "checkpoint": "contract-1 backbone checkpoint",
}


def run_fit(args: argparse.Namespace) -> None:
    config = config_from_args(FitConfig, args)
    checkpoint = fit(config)
    if os.environ.get("RANK", "0") == "0":      # under torchrun, rank 0 reports
        report_fit(checkpoint.metrics, config.out)


def report_fit(metrics: dict, out: str) -> None:
    """Training curves next to the checkpoint, then one summary line (a plotting failure only warns)."""
    from train.plots import curves_png_path, plot_training, summary_line

    try:
        png = plot_training(metrics, curves_png_path(out), title=os.path.basename(out))
    except (ImportError, OSError, ValueError, KeyError) as e:
        print(f"train: warning: no training curves ({type(e).__name__}: {e})", file=sys.stderr)
        png = None
    print(summary_line(metrics, out, png), file=sys.stderr)


def run_evaluate(args: argparse.Namespace) -> None:
    result = evaluate_checkpoint(config_from_args(EvaluateConfig, args))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['ways']}-way {result['shots']}-shot {result['split']} accuracy "
              f"{100 * result['accuracy']:.2f}% +- {100 * result['ci95']:.2f} (95% CI, {result['episodes']} episodes)")


def run_sample_images(args: argparse.Namespace) -> None:
    config = config_from_args(SampleConfig, args)
    out = write_samples(config)
    print(f"train: wrote {config.classes} x {config.per_class} {config.split} images of {config.dataset} to {out}",
          file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="train", description="EASY backbones, datasets and few-shot evaluation")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fit", help="train a backbone (or ensemble) with EASY's routine")
    add_dataclass_flags(p, FitConfig, helps=HELP)
    p.set_defaults(run=run_fit)
    p = sub.add_parser("evaluate", help="few-shot accuracy of a checkpoint (fraction in [0, 1] with ci95)")
    add_dataclass_flags(p, EvaluateConfig, helps=HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_evaluate)
    p = sub.add_parser("sample-images", help="write a few labelled images of a split to an npz")
    add_dataclass_flags(p, SampleConfig, helps=HELP)
    p.set_defaults(run=run_sample_images)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except USER_ERRORS as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("train: interrupted (run the same command again to resume)", file=sys.stderr)
        return 130
    return 0
