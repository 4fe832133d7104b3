"""The robustness matrix: for each CLI and each class of bad input, the exit status is 2, stderr
is exactly one line `<prog>: error: ...` naming the culprit, there is no traceback, and the
workspace (inputs and output folder) holds nothing new or changed.

Cases run in-process (one interpreter for the whole matrix); `test_one_line_in_a_real_process`
runs one case per CLI in a fresh interpreter to check the literal stderr.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from robustness_support import DAMAGES, TINY_FIT
from safeio import OutputLock

ROOT = Path(__file__).resolve().parents[2]
UNWRITABLE = "/proc/robustness/out"   # cannot be created, even by root


def _mains() -> dict:
    from board.cli import main as board
    from export.cli import main as export
    from fl_bridge.cli import main as fl_bridge
    from fpga.__main__ import main as fpga
    from tensil.cli import main as tensil
    from train.cli import main as train

    return {"train": train, "export": export, "tensil": tensil, "board": board, "fpga": fpga, "fl_bridge": fl_bridge}


# Good arguments of each command; a case adds or overrides one thing.
BASE = {
    "train fit": ["fit", *TINY_FIT, "--out", "{ws}/new/model.pt"],
    "train evaluate": ["evaluate", "--checkpoint", "{ws}/backbone/tiny.pt", "--episodes", "5"],
    "train sample-images": ["sample-images", "--classes", "2", "--per-class", "2", "--image-size", "16",
                            "--out", "{ws}/s.npz"],
    "export": ["--checkpoint", "{ws}/backbone/tiny.pt", "--out", "{ws}/export2", "--random-inputs", "1",
               "--real-inputs", "0"],
    "export check": ["check", "--onnx", "{ws}/export/tiny.onnx"],
    "tensil compile": ["compile", "--onnx", "{ws}/export/tiny.onnx", "--out", "{ws}/tensil2", "--samples", "1"],
    "tensil emulate": ["emulate", "--tmodel", "{ws}/tensil/tiny_custom_perf.tmodel", "--input", "{ws}/x.npy",
                       "--out", "{ws}/emulated/y.npy"],
    "tensil inspect": ["inspect", "--tmodel", "{ws}/tensil/tiny_custom_perf.tmodel", "--estimate"],
    "board bundle": ["bundle", "--onnx", "{ws}/export/tiny.onnx", "--tensil", "{ws}/tensil", "--fpga", "none",
                     "--out", "{ws}/bundle2", "--verify-samples", "0"],
    "board video": ["video", "--samples", "{ws}/samples.npz", "--out", "{ws}/video2", "--classes", "2", "--shots", "1",
                    "--test-frames", "2", "--width", "64", "--height", "48"],
    "board demo": ["demo", "--bundle", "{ws}/bundle", "--video", "{ws}/video", "--out", "{ws}/demo",
                   "--backend", "emulator", "--max-frames", "3"],
    "board deploy": ["deploy", "--bundle", "{ws}/bundle", "--board", "xilinx@pynq", "--dry-run"],
    "fpga project": ["project", "--rtl-dir", "{ws}/rtl", "--pynq-dir", "{ws}/PYNQ", "--out", "{ws}/fpga"],
    "fl_bridge run": ["run", "--out", "{ws}/fl", "--image-size", "16", "--feature-maps", "4", "--clients", "4",
                      "--per-round", "2", "--rounds", "1", "--samples-per-client", "8", "--batch-size", "8"],
}


@dataclass(frozen=True)
class Case:
    command: str            # a key of BASE
    klass: str              # the class of bad input
    args: tuple = ()        # flags appended (argparse: the last value of a flag wins)
    damage: tuple | None = None   # (path relative to the workspace, a DAMAGES key)
    lock: str | None = None       # output (relative to the workspace) held locked by "another writer"
    expect: str = ""        # what the one line must mention
    extra: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        what = self.damage[0] if self.damage else " ".join(self.args) or self.lock or ""
        return f"{self.command}|{self.klass}|{what}"


def _file_cases(command: str, flag_path: str, expect: str) -> list[Case]:
    return [Case(command, kind, damage=(flag_path, kind), expect=expect) for kind in DAMAGES]


CASES: list[Case] = [
    # train fit
    Case("train fit", "nan", ("--lr", "nan"), expect="--lr"),
    Case("train fit", "negative", ("--epochs", "-1"), expect="epochs"),
    Case("train fit", "out-of-range", ("--gamma", "2"), expect="--gamma"),
    Case("train fit", "out-of-range", ("--momentum", "1.5"), expect="--momentum"),
    Case("train fit", "unknown-name", ("--device", "tpu"), expect="--device"),
    Case("train fit", "unknown-name", ("--dataset", "nosuch"), expect="nosuch"),
    Case("train fit", "unknown-name", ("--backbone", "resnet99"), expect="resnet99"),
    Case("train fit", "not-a-number", ("--lr", "fast"), expect="--lr"),
    Case("train fit", "out-is-file", ("--out", "{ws}/samples.npz/model.pt"), expect="is a file"),
    Case("train fit", "out-is-folder", ("--out", "{ws}/backbone"), expect="folder"),
    Case("train fit", "out-unwritable", ("--out", UNWRITABLE + "/m.pt"), expect="cannot write"),
    Case("train fit", "out-locked", ("--out", "{ws}/backbone/tiny.pt", "--force"), lock="backbone/tiny.pt",
         expect="another process"),
    Case("train fit", "finished-other-config", ("--out", "{ws}/backbone/tiny.pt", "--epochs", "2"),
         expect="--force"),
    # train evaluate
    *_file_cases("train evaluate", "backbone/tiny.pt", "tiny.pt"),
    Case("train evaluate", "out-of-range", ("--ways", "1"), expect="--ways"),
    Case("train evaluate", "negative", ("--episodes", "-3"), expect="--episodes"),
    Case("train evaluate", "negative", ("--shots", "0"), expect="--shots"),
    Case("train evaluate", "unknown-name", ("--split", "nosuch"), expect="--split"),
    Case("train evaluate", "unknown-name", ("--device", "tpu"), expect="--device"),
    # train sample-images
    Case("train sample-images", "out-of-range", ("--image-size", "0"), expect="--image-size"),
    Case("train sample-images", "negative", ("--classes", "-1"), expect="--classes"),
    Case("train sample-images", "out-of-range", ("--per-class", "0"), expect="--per-class"),
    Case("train sample-images", "unknown-name", ("--split", "nosuch"), expect="nosuch"),
    Case("train sample-images", "unknown-name", ("--dataset", "nosuch"), expect="nosuch"),
    Case("train sample-images", "out-is-file", ("--out", "{ws}/samples.npz/s.npz"), expect="is a file"),
    Case("train sample-images", "out-unwritable", ("--out", UNWRITABLE + "/s.npz"), expect="cannot write"),
    # export
    *_file_cases("export", "backbone/tiny.pt", "tiny.pt"),
    Case("export", "out-of-range", ("--opset", "13"), expect="--opset"),
    Case("export", "nan", ("--atol", "nan"), expect="--atol"),
    Case("export", "out-of-range", ("--min-cosine", "2"), expect="--min-cosine"),
    Case("export", "negative", ("--batch", "-1"), expect="--batch"),
    Case("export", "out-is-file", ("--out", "{ws}/samples.npz"), expect="is a file"),
    Case("export", "out-unwritable", ("--out", UNWRITABLE), expect="cannot write"),
    Case("export", "out-locked", ("--out", "{ws}/export",), lock="export/tiny.onnx", expect="another process"),
    # export check
    *_file_cases("export check", "export/tiny.onnx", "tiny.onnx"),
    Case("export check", "wrong-kind", ("--onnx", "{ws}/backbone/tiny.pt"), expect="tiny.pt"),
    # tensil compile
    *_file_cases("tensil compile", "export/tiny.onnx", "tiny.onnx"),
    Case("tensil compile", "unknown-name", ("--arch", "nosuch"), expect="nosuch"),
    Case("tensil compile", "negative", ("--samples", "-1"), expect="--samples"),
    Case("tensil compile", "out-is-file", ("--out", "{ws}/samples.npz"), expect="samples.npz"),
    Case("tensil compile", "out-unwritable", ("--out", UNWRITABLE), expect="/proc"),
    Case("tensil compile", "out-locked", ("--out", "{ws}/tensil",), lock="tensil/tiny_custom_perf.tmodel",
         expect="another process"),
    # tensil emulate / inspect
    *_file_cases("tensil emulate", "tensil/tiny_custom_perf.tmodel", "tiny_custom_perf.tmodel"),
    *_file_cases("tensil emulate", "tensil/tiny_custom_perf.tprog", "tiny_custom_perf"),
    *_file_cases("tensil emulate", "tensil/tiny_custom_perf.tdata", "tiny_custom_perf"),
    *[Case("tensil emulate", kind, damage=("x.npy", kind), expect="x.npy") for kind in DAMAGES if kind != "bitflip"],
    Case("tensil emulate", "unknown-name", ("--arch", "nosuch"), expect="nosuch"),
    Case("tensil emulate", "out-is-file", ("--out", "{ws}/samples.npz/y.npy"), expect="samples.npz"),
    Case("tensil emulate", "out-unwritable", ("--out", UNWRITABLE + "/y.npy"), expect="/proc"),
    *_file_cases("tensil inspect", "tensil/tiny_custom_perf.tprog", "tiny_custom_perf"),
    Case("tensil inspect", "nan", ("--mhz", "nan"), expect="--mhz"),
    Case("tensil inspect", "negative", ("--mhz", "-5"), expect="--mhz"),
    Case("tensil inspect", "unknown-name", ("--arch", "nosuch"), expect="nosuch"),
    # board bundle
    *_file_cases("board bundle", "export/tiny.onnx", "tiny.onnx"),
    Case("board bundle", "missing", damage=("tensil", "missing"), expect="tensil"),
    Case("board bundle", "truncated", damage=("tensil/tiny_custom_perf.tmodel", "truncated"), expect="tmodel"),
    Case("board bundle", "negative", ("--verify-samples", "-1"), expect="--verify-samples"),
    Case("board bundle", "nan", ("--min-cosine", "nan"), expect="--min-cosine"),
    Case("board bundle", "unknown-name", ("--arch", "nosuch"), expect="nosuch"),
    Case("board bundle", "out-is-file", ("--out", "{ws}/samples.npz"), expect="is a file"),
    Case("board bundle", "out-unwritable", ("--out", UNWRITABLE), expect="cannot write"),
    Case("board bundle", "out-locked", ("--out", "{ws}/bundle",), lock="bundle", expect="another process"),
    # board video
    *_file_cases("board video", "samples.npz", "samples.npz"),
    Case("board video", "out-of-range", ("--shots", "0"), expect="--shots"),
    Case("board video", "nan", ("--fps", "nan"), expect="--fps"),
    Case("board video", "negative", ("--width", "-5"), expect="--width"),
    Case("board video", "out-is-file", ("--out", "{ws}/samples.npz"), expect="is a file"),
    Case("board video", "out-unwritable", ("--out", UNWRITABLE), expect="cannot write"),
    # board demo
    Case("board demo", "missing", damage=("bundle", "missing"), expect="bundle"),
    Case("board demo", "wrong-kind", damage=("bundle", "wrong-kind"), expect="bundle"),
    Case("board demo", "empty", damage=("bundle/model.json", "empty"), expect="model.json"),
    Case("board demo", "truncated", damage=("bundle/model.json", "truncated"), expect="model.json"),
    Case("board demo", "bitflip", damage=("bundle/tiny_custom_perf.tdata", "bitflip"), expect="tdata"),
    Case("board demo", "bitflip", damage=("bundle/model.onnx", "bitflip"), expect="model.onnx"),
    Case("board demo", "truncated", damage=("bundle/tiny_custom_perf.tprog", "truncated"), expect="tprog"),
    Case("board demo", "missing", damage=("video", "missing"), expect="video"),
    Case("board demo", "out-of-range", ("--frames-per-shot", "0"), expect="--frames-per-shot"),
    Case("board demo", "negative", ("--temperature", "-1"), expect="--temperature"),
    Case("board demo", "nan", ("--smoothing", "nan"), expect="--smoothing"),
    Case("board demo", "negative", ("--timeout", "-2"), expect="--timeout"),
    Case("board demo", "unknown-name", ("--backend", "nosuch"), expect="nosuch"),
    Case("board demo", "unknown-name", ("--display", "window"), expect="--display file"),
    Case("board demo", "no-camera", ("--camera", "7"), expect="camera"),
    Case("board demo", "out-is-file", ("--out", "{ws}/samples.npz"), expect="is a file"),
    Case("board demo", "out-unwritable", ("--out", UNWRITABLE), expect="cannot write"),
    # board deploy
    Case("board deploy", "bitflip", damage=("bundle/tiny_custom_perf.tdata", "bitflip"), expect="tdata"),
    Case("board deploy", "missing", damage=("bundle/model.json", "missing"), expect="model.json"),
    Case("board deploy", "unknown-name", ("--tool", "ftp"), expect="ftp"),
    # fpga project
    Case("fpga project", "out-of-range", ("--jobs", "0"), expect="--jobs"),
    Case("fpga project", "nan", ("--mhz", "nan"), expect="--mhz"),
    Case("fpga project", "negative", ("--mhz", "-50"), expect="--mhz"),
    Case("fpga project", "out-of-range", ("--pmod-buttons", "9"), expect="--pmod-buttons"),
    Case("fpga project", "unknown-name", ("--arch", "nosuch"), expect="nosuch"),
    Case("fpga project", "missing", expect="PYNQ"),
    Case("fpga project", "out-is-file", ("--out", "{ws}/samples.npz"), expect="is a file"),
    # fl_bridge run (every case fails before Ray starts)
    Case("fl_bridge run", "unknown-name", ("--dataset", "fashion-mnist"), expect="fashionmnist"),
    Case("fl_bridge run", "unknown-name", ("--method", "nosuch"), expect="method"),
    Case("fl_bridge run", "nan", ("--lr", "nan"), expect="--lr"),
    Case("fl_bridge run", "out-of-range", ("--prune-rate", "1.5"), expect="pruning rate"),
    Case("fl_bridge run", "negative", ("--rounds", "-1"), expect="rounds"),
    Case("fl_bridge run", "negative", ("--client-cpus", "-1"), expect="--client-cpus"),
    Case("fl_bridge run", "missing", ("--data-root", "{ws}/nodata"), expect="--data-root"),
    Case("fl_bridge run", "out-is-file", ("--out", "{ws}/samples.npz"), expect="is a file"),
    Case("fl_bridge run", "out-unwritable", ("--out", UNWRITABLE), expect="cannot write"),
    Case("fl_bridge run", "out-locked", lock="fl", expect="another process"),
]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` (hidden ones included) with its size and mtime."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def argv_of(case: Case, ws: Path) -> list[str]:
    return [a.replace("{ws}", str(ws)) for a in (*BASE[case.command], *case.args)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_one_line_exit_2_and_nothing_new(case: Case, workspace: Path, capsys, caplog):
    if case.damage:
        DAMAGES[case.damage[1]](workspace / case.damage[0])
    lock = OutputLock(workspace / case.lock).acquire() if case.lock else None
    before = snapshot(workspace)
    caplog.set_level(logging.WARNING)
    try:
        code = _mains()[case.command.split()[0]](argv_of(case, workspace))
    except SystemExit as e:  # argparse
        code = e.code
    finally:
        if lock:
            lock.release()
            before.pop(f".{Path(case.lock).name}.lock" if "/" not in case.lock else
                       str(Path(case.lock).parent / f".{Path(case.lock).name}.lock"), None)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    prog = case.command.split()[0]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    assert "Traceback" not in err and "weights_only" not in err
    assert case.expect in lines[0], lines[0]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert snapshot(workspace) == before, "the failed command left or changed files"


@pytest.mark.parametrize("command, args", [
    ("train fit", ("--lr", "nan")), ("export", ("--atol", "-1")), ("tensil compile", ("--arch", "nosuch")),
    ("board demo", ("--temperature", "-1")), ("fpga project", ("--jobs", "0")),
    ("fl_bridge run", ("--dataset", "cifar-fs")),
])
def test_one_line_in_a_real_process(command, args, workspace):
    argv = argv_of(Case(command, "", args), workspace)
    module = command.split()[0]
    done = subprocess.run([sys.executable, "-m", module, *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith(f"{module}: error: "), done.stderr


def test_matrix_covers_every_cli_and_class():
    commands = {c.command for c in CASES}
    assert commands == set(BASE)
    classes = {c.klass for c in CASES}
    assert {"missing", "empty", "truncated", "bitflip", "wrong-kind", "nan", "negative", "out-of-range",
            "out-is-file", "out-unwritable", "out-locked", "unknown-name"} <= classes
