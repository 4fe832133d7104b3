"""`python -m bench [stage ...]`: run every `bench/bench_<stage>.py` (or the named ones) in turn."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in Path(__file__).parent.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("stages", nargs="*", help=f"stages to run (default: all of {', '.join(available())})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.stages) - set(available()))
    if unknown:
        print(f"bench: error: unknown stage(s) {', '.join(unknown)}; available: {', '.join(available())}", file=sys.stderr)
        return 2
    for stage in args.stages or available():
        print(f"\n===== bench: {stage} =====", flush=True)
        start = time.perf_counter()
        importlib.import_module(f"bench.bench_{stage}").main()
        print(f"===== {stage} done in {time.perf_counter() - start:.1f} s =====", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
