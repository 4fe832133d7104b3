"""`python -m export`: export a checkpoint, or `python -m export check` an ONNX file."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from export.config import ExportConfig
from export.errors import ExportError
from export.files import sha256_file
from export.graph_check import check_graph, load_onnx
from tensil.compiler.errors import CompileError
from tensil.compiler.frontend import FLATTEN_ORDERS, FrontendOptions
from export.pipeline import export_checkpoint
from export.sidecar import read_sidecar, verify_sidecar
from safeio import OneLineParser, add_dataclass_flags, config_from_args
from train.backbones import BackboneError
from train.checkpoint import CheckpointError

PROG = "python -m export"
STAGE_ERRORS = (ExportError, CheckpointError, BackboneError, CompileError)

HELP = {
    "checkpoint": "backbone checkpoint (contract 1) to export",
    "out": "output folder for <name>.onnx and <name>.json",
    "name": "artifact name (default: the checkpoint's file stem)",
    "opset": "ONNX opset (Tensil accepts 9 or 10)",
    "batch": "fixed batch size of the graph's input",
    "input_name": "name of the graph input",
    "output_name": "name of the graph output (the tensor `tensil compile -o` needs)",
    "random_inputs": "random inputs for the parity check",
    "real_inputs": "dataset images for the parity check (0: none)",
    "data_root": "folder of the checkpoint's dataset (default: the one in its training config)",
    "seed": "seed of the parity inputs",
    "atol": "parity: allowed max |onnxruntime - torch|, relative to max(1, max |feature|)",
    "min_cosine": "parity: smallest allowed cosine similarity per input",
}


def export_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description="Export a backbone checkpoint to ONNX for Tensil, verified against torch. "
        f"Use `{PROG} check --onnx M.onnx` to check any ONNX file.",
    )
    add_dataclass_flags(parser, ExportConfig, helps=HELP)  # empty defaults are explained in HELP
    return parser


def check_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=f"{PROG} check",
        description="Check that `python -m tensil compile` accepts an ONNX file: runs the compiler's own front end "
        "(every operator and attribute rule, static shapes, batch 1) without lowering; prints its warnings and where "
        "upstream Tensil v1.0.15 would differ.",
    )
    parser.add_argument("--onnx", required=True, help="ONNX file to check")
    parser.add_argument(
        "--sidecar", help="sidecar to verify against the file (default: <onnx stem>.json beside it, if present)"
    )
    parser.add_argument("--json", action="store_true", help="print the graph summary as JSON")
    parser.add_argument("--drop-softmax", action="store_true",
                        help="as `tensil compile --drop-softmax`: a Softmax at the output is dropped without a warning")
    parser.add_argument("--flatten-order", choices=FLATTEN_ORDERS, default="nhwc",
                        help="as `tensil compile --flatten-order`: order of a flattened spatial map at the output")
    return parser


def run_export(argv: list[str]) -> None:
    args = export_parser().parse_args(argv)
    result = export_checkpoint(config_from_args(ExportConfig, args))
    print(f"{result.onnx_path}\n{result.sidecar_path}")


def run_check(argv: list[str]) -> None:
    args = check_parser().parse_args(argv)
    options = FrontendOptions(drop_softmax=args.drop_softmax, flatten_order=args.flatten_order)
    summary = check_graph(load_onnx(args.onnx), options)
    for warning in summary.warnings:
        print(f"export: warning: {warning}", file=sys.stderr)
    for note in summary.upstream:
        print(f"export: note: upstream Tensil v1.0.15 differs: {note}", file=sys.stderr)
    sidecar_path = Path(args.sidecar) if args.sidecar else Path(args.onnx).with_suffix(".json")
    checked_sidecar = args.sidecar is not None or sidecar_path.is_file()
    if checked_sidecar:
        verify_sidecar(read_sidecar(sidecar_path), sha256_file(args.onnx), summary, str(sidecar_path), args.onnx)
    if args.json:
        print(json.dumps({**summary.to_dict(), "sidecar": str(sidecar_path) if checked_sidecar else None}, indent=2))
        return
    ops = ", ".join(f"{op} x{n}" for op, n in summary.operators.items())
    print(
        f"{args.onnx}: accepted for Tensil: opset {summary.opset}, input {summary.input_name!r} "
        f"{list(summary.input_shape)} -> output {summary.output_name!r} {list(summary.output_shape)}; {ops}"
        + (f"; sidecar {sidecar_path} matches" if checked_sidecar else "")
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="export: %(message)s", stream=sys.stderr)
    try:
        if argv[:1] == ["check"]:
            run_check(argv[1:])
        else:
            run_export(argv)
    except STAGE_ERRORS as e:
        print(f"export: error: {e}", file=sys.stderr)
        return 2
    return 0
