"""`python -m dse [run] | pick | plot | retarget`.

User errors (a bad sweep file or option) print `dse: error: <one line>` and exit with status 2
before any work; a sweep with failed points exits 1 after writing the table of the others.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dse.errors import DseError
from dse.layout import DEFAULT_OUT

DEFAULT_SWEEP = Path(__file__).resolve().parent / "sweeps" / "default.toml"
COMMANDS = ("run", "pick", "plot", "retarget")


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class _Parser(argparse.ArgumentParser):
    """argparse with the project's one-line error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"dse: error: {message}", file=sys.stderr)
        sys.exit(2)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m dse", description="design-space exploration: accuracy vs FPGA latency")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    run = sub.add_parser("run", help="run (or resume) a sweep; the default command")
    run.add_argument("--sweep", default=_rel(DEFAULT_SWEEP), help="sweep TOML file (default: %(default)s)")
    run.add_argument("--out", default=DEFAULT_OUT, help="results go to OUT/<sweep name>/ (default: %(default)s)")
    run.add_argument("--workers", type=int, default=1, help="points run in parallel processes (default: 1)")
    run.add_argument("--ray", metavar="ADDRESS", help="run the points as tasks on the Ray cluster at ADDRESS")
    run.add_argument("--ray-gpus", type=float, default=0.0, metavar="N",
                     help="GPUs each Ray task asks for (default: 0; e.g. 1 to train on the cluster's GPUs)")
    run.add_argument("--only", nargs="+", default=[], metavar="ID", help="run only these point ids (or prefixes)")
    run.add_argument("--no-plots", action="store_true", help="write the table only")
    run.add_argument("--list", action="store_true", help="print the points and their ids, run nothing")
    for name, helptext in (("pick", "best finished point within a frame-rate budget, and how to deploy it"),
                           ("plot", "redraw the plots from the finished points")):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("--sweep", default=_rel(DEFAULT_SWEEP), help="sweep TOML file (default: %(default)s)")
        q.add_argument("--out", default=DEFAULT_OUT, help="results folder parent (default: %(default)s)")
        if name == "pick":
            q.add_argument("--fps", type=float, default=30.0, help="frame-rate budget of the backbone (default: 30)")
            q.add_argument("--shots", type=int, default=1, help="judge on 5-way N-shot accuracy (default: 1)")
            q.add_argument("--any-fit", action="store_true", help="also consider points that do not fit the FPGA")
            q.add_argument("--json", action="store_true", help="print the chosen row as JSON")
    r = sub.add_parser("retarget", help="a checkpoint's weights at another test image size (base mean re-measured)")
    r.add_argument("--checkpoint", required=True)
    r.add_argument("--image-size", type=int, required=True)
    r.add_argument("--out", required=True)
    return p


def _load(args: argparse.Namespace):
    from dse.config import load_sweep
    from dse.layout import SweepLayout

    sweep = load_sweep(args.sweep)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise DseError(f"--out {args.out} is a file, not a folder")
    return sweep, SweepLayout.for_sweep(sweep, args.out)


def cmd_run(args: argparse.Namespace) -> int:
    from dse.runner import RunOptions, run_sweep, selected

    options = RunOptions(args.workers, args.ray, args.ray_gpus, tuple(args.only), not args.no_plots).check()
    sweep, layout = _load(args)
    if args.list:
        for p in selected(sweep, layout, options.only):
            paths = layout.paths(sweep, p)
            print(f"{paths.point_id}\t{'finished' if paths.row.is_file() else 'to do'}")
        return 0
    rows, failed = run_sweep(sweep, layout, options, args.out)
    print(f"dse: {len(rows)} finished point(s) in {_rel(layout.results_csv)}, {_rel(layout.results_json)} "
          f"and {_rel(layout.plots_dir)}/", file=sys.stderr)
    for row in (r for r in rows if r["pareto"]):
        print(f"dse: Pareto front: {row['id']} {row['latency_ms']:.2f} ms", file=sys.stderr)
    if failed:
        print(f"dse: {len(failed)} point(s) failed: " + "; ".join(f"{o.point.label()}: {o.error}" for o in failed),
              file=sys.stderr)
        return 1
    return 0


def _rows(layout) -> list[dict]:
    from dse.table import read_rows

    if not layout.results_json.is_file():
        raise DseError(f"no results at {_rel(layout.results_json)}: run the sweep first (python -m dse run)")
    return read_rows(layout.results_json)


def cmd_pick(args: argparse.Namespace) -> int:
    from dse.pareto import budget_ms, pick

    if args.fps <= 0:
        raise DseError(f"--fps {args.fps:g}: must be positive")
    _, layout = _load(args)
    rows = _rows(layout)
    fixed, flt = f"fixed_{args.shots}shot", f"float_{args.shots}shot"
    acc = fixed if rows and all(r.get(fixed) is not None for r in rows) else flt
    if not rows or rows[0].get(acc) is None:
        raise DseError(f"--shots {args.shots}: the sweep did not measure {args.shots}-shot accuracy")
    best = pick(rows, args.fps, acc, require_fit=not args.any_fit)
    if best is None:
        fastest = min(rows, key=lambda r: r["latency_ms"])
        print(f"dse: no {'fitting ' if not args.any_fit else ''}point meets {args.fps:g} FPS "
              f"({budget_ms(args.fps):.1f} ms); the fastest is {fastest['id']} at {fastest['latency_ms']:.2f} ms",
              file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(best, indent=2))
        return 0
    print(f"best point within {args.fps:g} FPS ({budget_ms(args.fps):.1f} ms of backbone time per frame), "
          f"judged on {acc}:")
    print(f"  {best['id']}")
    print(f"  {best['backbone']} {'strided' if best['strided'] else 'max-pool'} {best['feature_maps']} feature maps, "
          f"trained at {best['train_size']} px, tested at {best['test_size']} px, {best['epochs']} epochs")
    print(f"  {best['arch']} at {best['mhz']:g} MHz: {best['latency_ms']:.2f} ms ({best['fps']:.1f} FPS), "
          f"{best['tensil_kcycles']:.0f} KCycles, fits the FPGA: {best['fits']}")
    for key in (flt, fixed):
        if best.get(key) is not None:
            print(f"  {key}: {100 * best[key]:.2f}% +- {100 * best[key + '_ci95']:.2f}")
    print("rebuild:")
    for c in best["rebuild"].split(" && "):
        print(f"  {c}")
    print("deploy (bitstream needs Vivado 2022.1 and Tensil's RTL in DIR; then the board bundle and the copy):")
    for c in best["deploy"].split(" && "):
        print(f"  {c}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from dse.runner import finish

    sweep, layout = _load(args)
    rows = finish(sweep, layout)
    if not rows:
        raise DseError(f"no finished point of {sweep.name} under {_rel(layout.root)}")
    print(f"dse: plots of {len(rows)} point(s) in {_rel(layout.plots_dir)}/", file=sys.stderr)
    return 0


def cmd_retarget(args: argparse.Namespace) -> int:
    from dse.stages import retarget_checkpoint

    if args.image_size < 8:
        raise DseError(f"--image-size {args.image_size}: at least 8")
    if not Path(args.checkpoint).is_file():
        raise DseError(f"--checkpoint {args.checkpoint} does not exist")
    retarget_checkpoint(Path(args.checkpoint), args.image_size, Path(args.out))
    print(args.out)
    return 0


def user_errors() -> tuple[type[BaseException], ...]:
    from train.checkpoint import CheckpointError
    from train.datasets import DatasetError

    return (DseError, CheckpointError, DatasetError)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["run", *argv]
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # argparse: --help (0) or a usage error already printed (2)
        return int(e.code or 0)
    handler = {"run": cmd_run, "pick": cmd_pick, "plot": cmd_plot, "retarget": cmd_retarget}[args.command]
    try:
        return handler(args)
    except user_errors() as e:
        print(f"dse: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dse: interrupted; finished points and stages are kept, run the same command to resume",
              file=sys.stderr)
        return 130
