"""`python -m board <command>`: bundle, video, demo, deploy. Errors: one line, exit status 2."""

from __future__ import annotations

import argparse
import logging
import sys

from board.errors import BoardError
from safeio import OneLineParser, UsageError, add_dataclass_flags, config_from_args


def build_parser() -> argparse.ArgumentParser:
    from board.backends import BACKENDS
    from board.bundle import BundleConfig
    from board.demo import DemoConfig
    from board.deploy import DeployConfig
    from board.synthvideo import VideoConfig

    parser = OneLineParser(prog="python -m board", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add_dataclass_flags(sub.add_parser("bundle", help="assemble build/bundle/<name>/ (contract 5)"), BundleConfig, helps={
        "onnx": "exported ONNX (its .json sidecar next to it)",
        "tensil": "folder of the compiled <name>_<arch>.tmodel; 'none' to skip",
        "fpga": "folder with design.bit/.hwh; 'none' to skip"})
    add_dataclass_flags(sub.add_parser("video", help="generate a camera-like video, events and ground truth"),
                        VideoConfig, helps={"samples": "npz from `python -m train sample-images`"})
    add_dataclass_flags(sub.add_parser("demo", help="run the few-shot demo"), DemoConfig, helps={
        "backend": "backbone runtime", "display": "file = headless: annotated.avi + log.json in --out",
        "video": "video file, or a folder from `python -m board video`", "camera": "live camera index (overrides --video)",
        "events": "scripted events '<frame> <action> [class]'", "truth": "ground truth json (per-frame class)",
        "buttons": "PYNQ push/PMOD buttons (AXI GPIO)", "frames_per_shot": "frames averaged into one shot",
        "temperature": "softmax(-T * distance)", "smoothing": "EMA weight of past scores",
        "unknown_distance": "answer 'unknown' beyond this distance (0 = never)",
        "classes_file": "taught classes, saved after every change (default <out>/classes.npz)",
        "restore": "start from the saved classes", "timeout": "accelerator timeout in seconds",
        "max_frames": "stop after this many frames (0 = all)",
        "web_host": "--display web: address to listen on (no authentication: keep 127.0.0.1 or a trusted network)",
        "web_port": "--display web: port", "unsure_margin": "answers closer than this to the runner-up look unsure"},
        choices={"backend": BACKENDS, "display": ("file", "window", "hdmi", "web")})
    add_dataclass_flags(sub.add_parser("deploy", help="copy the bundle and board/ to the PYNQ board"), DeployConfig, helps={
        "board": "user@host", "dest": "folder on the board", "dry_run": "print the commands only"},
        choices={"tool": ("auto", "rsync", "scp")})
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        if args.command == "bundle":
            from board.bundle import BundleConfig, assemble_bundle

            assemble_bundle(config_from_args(BundleConfig, args))
        elif args.command == "video":
            from board.synthvideo import VideoConfig, generate_video

            generate_video(config_from_args(VideoConfig, args))
        elif args.command == "demo":
            from board.demo import DemoConfig, run_demo

            config = config_from_args(DemoConfig, args)
            report = run_demo(config)
            accuracy = "n/a (no frame with ground truth)" if report.accuracy is None else f"{report.accuracy:.1%}"
            print(f"board: {report.frames} frames, live accuracy {accuracy} on {report.evaluated} frames, "
                  f"{report.fps:.1f} FPS, backbone {report.backbone_ms:.1f} ms/frame ({config.backend})")
            if report.error:
                raise BoardError(report.error)
        elif args.command == "deploy":
            from board.deploy import DeployConfig, board_command, deploy

            config = config_from_args(DeployConfig, args)
            deploy(config)
            done = "would copy (dry run)" if config.dry_run else "copied"
            print(f"board: {done} to {config.board}:{config.dest}; run there:\n  {board_command(config)}")
    except (BoardError, UsageError) as exc:
        print(f"board: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("board: interrupted", file=sys.stderr)
        return 130
    return 0
