"""`python -m train <command>`: sample-images (more commands register in `COMMANDS`).

Defaults are the embedded default. User errors print `train: error: <one line>` and exit 2.
"""

from __future__ import annotations

import argparse
import sys

from train.backbones import BackboneError
from train.checkpoint import CheckpointError
from train.datasets import DatasetError
from train.fewshot import FewShotError
from train.samples import SampleConfig, write_samples

USER_ERRORS = (DatasetError, FewShotError, CheckpointError, BackboneError)


def add_data_args(p: argparse.ArgumentParser, image_size: int) -> None:
    p.add_argument("--dataset", default="synthetic", help="dataset name (default: synthetic)")
    p.add_argument("--data-root", default=None, help="folder of an on-disk dataset (never downloaded)")
    p.add_argument("--image-size", type=int, default=image_size, help=f"network input side (default {image_size})")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def sample_images(args: argparse.Namespace) -> None:
    config = SampleConfig(args.dataset, args.data_root, args.split, args.classes, args.per_class,
                          args.image_size, args.seed, args.out)
    out = write_samples(config)
    print(f"train: wrote {args.classes} x {args.per_class} {args.split} images of {args.dataset} to {out}",
          file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train", description="EASY backbones, datasets and few-shot evaluation")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample-images", help="write a few labelled images of a split to an npz")
    add_data_args(p, image_size=96)
    p.add_argument("--split", default="novel", help="base, val, novel or base_test (default novel)")
    p.add_argument("--classes", type=int, default=5, help="number of classes (default 5)")
    p.add_argument("--per-class", type=int, default=20, help="images per class (default 20)")
    p.add_argument("--out", default=SampleConfig.out, help=f"npz path (default {SampleConfig.out})")
    p.set_defaults(run=sample_images)

    for register in COMMANDS:
        register(sub)
    return parser


COMMANDS: list = []


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except USER_ERRORS as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("train: interrupted", file=sys.stderr)
        return 130
    return 0
