"""`python -m board deploy`: copy the bundle, `board/`, the stdlib-only `safeio/` and `contracts/`
and the numpy-only `tensil/` modules to a PYNQ board with rsync (or scp + ssh), then print the
command to run there."""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from board.bundle import load_bundle
from board.errors import BoardError
from contracts import bundle_dir

log = logging.getLogger("board")
REPO = Path(__file__).resolve().parent.parent
# What the board imports from tensil/ (docs/architecture.md: numpy and the standard library only).
TENSIL_MODULES = ("__init__.py", "arch.py", "fixed.py", "isa.py", "tmodel.py", "layout.py")
TENSIL_OPTIONAL = ("emulator.py",)


@dataclass
class DeployConfig:
    bundle: str = bundle_dir()
    board: str = ""                          # user@host
    dest: str = "/home/xilinx/fsl_demo"
    tool: str = "auto"                       # auto | rsync | scp
    dry_run: bool = False                    # print the commands only


def _stage(bundle_dir: Path, stage: Path) -> None:
    shutil.copytree(REPO / "board", stage / "board", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for package in ("safeio", "contracts"):    # stdlib-only
        shutil.copytree(REPO / package, stage / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (stage / "tensil").mkdir()
    for name in TENSIL_MODULES + TENSIL_OPTIONAL:
        src = REPO / "tensil" / name
        if src.is_file():
            shutil.copy2(src, stage / "tensil" / name)
        elif name in TENSIL_MODULES:
            raise BoardError(f"tensil/{name} is missing: the board driver needs it")
    shutil.copytree(REPO / "tensil" / "archs", stage / "tensil" / "archs")
    shutil.copytree(bundle_dir, stage / "bundle")


def board_command(config: DeployConfig) -> str:
    """What to run on the board: as root in a login shell, which sources PYNQ's venv and XRT
    environment (/etc/profile.d); plain `sudo python3` finds no device."""
    demo = ("python3 board/demo.py --bundle bundle --backend tensil --camera 0 --display hdmi --buttons "
            "--classes-file classes.npz --restore")
    return f"ssh -t {config.board} \"sudo bash -lc 'cd {config.dest} && {demo}'\""


def deploy(config: DeployConfig) -> list[list[str]]:
    """Copy everything; returns the commands run (or that would run with `dry_run`)."""
    if not config.board:
        raise BoardError("give the board as --board user@host")
    bundle = load_bundle(config.bundle, check_hashes=True)
    if "tensil" not in bundle.backends():
        log.warning("board: bundle %s has no bitstream: on the board only --backend onnx/emulator will work",
                    bundle.root)
    tool = config.tool if config.tool != "auto" else ("rsync" if shutil.which("rsync") else "scp")
    if shutil.which(tool) is None and not config.dry_run:
        raise BoardError(f"{tool} is not on PATH")
    with tempfile.TemporaryDirectory(prefix="board-deploy-") as tmp:
        stage = Path(tmp)
        _stage(bundle.root, stage)
        parts = [str(stage / p) for p in ("board", "safeio", "tensil", "bundle")]
        dest = shlex.quote(config.dest)
        # only these four folders are replaced: the saved classes next to them survive a redeploy
        commands = [["ssh", config.board, f"mkdir -p {dest}" + ("" if tool == "rsync" else
                                                                f" && cd {dest} && rm -rf board safeio tensil bundle")]]
        if tool == "rsync":
            commands.append(["rsync", "-a", "--delete", *parts, f"{config.board}:{config.dest}/"])
        else:
            commands.append(["scp", "-r", "-q", *parts, f"{config.board}:{config.dest}/"])
        for cmd in commands:
            log.info("board: %s", " ".join(shlex.quote(c) for c in cmd))
            if not config.dry_run:
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    raise BoardError(f"{cmd[0]} failed ({done.returncode}): {done.stderr.strip()[:200]}")
    return commands
