"""Shell commands that rebuild a point stage by stage, and that deploy it to the board."""

from __future__ import annotations

import shlex
from pathlib import Path

import contracts
from dse.config import Point, Sweep
from dse.layout import PointPaths
from dse.stages import fit_config
from safeio import dataclass_flags


def _rel(path: Path | str) -> str:
    """A path relative to the working directory when it is under it (shorter commands)."""
    p = Path(path)
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _line(*words: str) -> str:
    return " ".join(shlex.quote(w) for w in words)


def rebuild_commands(sweep: Sweep, point: Point, paths: PointPaths) -> list[str]:
    """The stage CLIs, in order, that rebuild this point's artifacts and figures."""
    fit = fit_config(sweep, point, paths)
    cmds = [_line("python", "-m", "train", "fit", *dataclass_flags(fit, skip=("out",)), "--out", _rel(paths.train_checkpoint))]
    if paths.checkpoint != paths.train_checkpoint:
        cmds.append(_line("python", "-m", "dse", "retarget", "--checkpoint", _rel(paths.train_checkpoint),
                          "--image-size", str(point.test_size), "--out", _rel(paths.checkpoint)))
    cmds.append(_line("python", "-m", "export", "--checkpoint", _rel(paths.checkpoint), "--out",
                      _rel(paths.export_dir), "--name", paths.export_name))
    cmds.append(_line("python", "-m", "tensil", "compile", "--onnx", _rel(paths.onnx), "--arch", _rel(point.arch)
                      if point.arch.endswith(".tarch") else point.arch, "--out", _rel(paths.tensil_dir)))
    cmds.append(_line("python", "-m", "tensil", "inspect", "--tmodel", _rel(paths.tmodel), "--estimate", "--mhz",
                      f"{point.mhz:g}"))
    return cmds


def deploy_commands(point: Point, paths: PointPaths, board: str = "xilinx@pynq") -> list[str]:
    """Bitstream, bundle and copy to the board for this point (Vivado needed for the first)."""
    arch = _rel(point.arch) if point.arch.endswith(".tarch") else point.arch
    fpga_dir = contracts.fpga_dir(paths.compiled_name[len(paths.export_name) + 1:], point.mhz)
    bundle = contracts.bundle_dir(paths.export_name)
    return [
        _line("python", "-m", "fpga", "build", "--arch", arch, "--mhz", f"{point.mhz:g}", "--out", fpga_dir,
              "--rtl-dir", "DIR", "--pynq-dir", "PYNQ"),
        _line("python", "-m", "board", "bundle", "--onnx", _rel(paths.onnx), "--tensil", _rel(paths.tensil_dir),
              "--arch", arch, "--fpga", fpga_dir, "--out", bundle),
        _line("python", "-m", "board", "deploy", "--bundle", bundle, "--board", board),
    ]


def rerun_command(sweep_file: str, point_id: str, out: str) -> str:
    return _line("python", "-m", "dse", "run", "--sweep", _rel(sweep_file or "SWEEP.toml"), "--out",
                 _rel(out), "--only", point_id)


def shell_join(cmds: list[str]) -> str:
    return " && ".join(cmds)

