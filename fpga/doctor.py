"""`python -m fpga doctor`: what a bitstream and a board need, what is here, and the next command.

Looks only at this machine: tools on PATH (and Vivado's version), the Tensil RTL folder, the PYNQ
checkout, the built bitstream and the board bundle. The board itself is never probed over the
network; the report says how to check it by hand.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from fpga.errors import FpgaError
from fpga.pynq_ip import PYNQ_VERSION, check_pynq_checkout
from fpga.rtl import check_rtl, docker_engine_error
from contracts import DEFAULT_ARCH, DEFAULT_MHZ, bundle_dir, fpga_dir, rtl_dir
from tensil.arch import load_arch

VIVADO_VERSION = "2022.1"
TIMING_RISK_MHZ = 125.0          # PEFSL reports negative slack there


@dataclass
class DoctorConfig:
    arch: str = DEFAULT_ARCH
    mhz: float = DEFAULT_MHZ
    rtl_dir: str | None = None           # default build/fpga/rtl_<arch> (the Makefile's RTL_DIR)
    pynq_dir: str = "PYNQ"
    bundle: str = bundle_dir()


@dataclass(frozen=True)
class Finding:
    """One prerequisite: present (True), absent (False) or not checked from here (None)."""

    what: str
    ok: bool | None
    detail: str


@dataclass(frozen=True)
class Diagnosis:
    findings: list[Finding]
    warnings: list[str]
    next_command: str

    def text(self) -> str:
        mark = {True: "ok  ", False: "MISSING", None: "check"}
        lines = [f"  {mark[f.ok]:<7} {f.what:<22} {f.detail}" for f in self.findings]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(["fpga doctor: prerequisites of a bitstream and a board", *lines,
                          f"next: {self.next_command}"])


def timing_warning(mhz: float) -> str | None:
    """The warning a build at `mhz` gets before it starts, or None."""
    if mhz < TIMING_RISK_MHZ:
        return None
    return (f"at {mhz:g} MHz PEFSL's design of the same accelerator misses timing (negative slack), and "
            f"`fpga build` fails on any violated timing after about an hour of Vivado: build at 50 or 100 MHz, "
            f"or accept a measured violation with --max-violation-ns")


def vivado_version(which: Callable[[str], str | None] = shutil.which) -> str | None:
    """`2022.1` from `vivado -version`, '' when it does not say, None when vivado is not on PATH."""
    if which("vivado") is None:
        return None
    try:
        out = subprocess.run(["vivado", "-version"], capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    match = re.search(r"Vivado v(\d{4}\.\d)", out)
    return match.group(1) if match else ""


def diagnose(config: DoctorConfig, which: Callable[[str], str | None] = shutil.which) -> Diagnosis:
    """Check every prerequisite; ArchError only for a bad --arch."""
    arch = load_arch(config.arch)        # ArchError: one line from the CLI
    rtl = Path(config.rtl_dir or rtl_dir(arch.name))
    fpga = Path(fpga_dir(arch.name, config.mhz))
    make_vars = f"ARCH={arch.name} MHZ={config.mhz:g} RTL_DIR={rtl} PYNQ_DIR={config.pynq_dir}"
    findings: list[Finding] = []
    docker: str | None = None

    version = vivado_version(which)
    if version is None:
        findings.append(Finding("Vivado", False, f"vivado is not on PATH (Vivado {VIVADO_VERSION}: "
                                                 "source <Xilinx>/Vivado/2022.1/settings64.sh)"))
    else:
        same = version == VIVADO_VERSION
        findings.append(Finding("Vivado", True, f"{which('vivado')}, version {version or 'unknown'}"
                                + ("" if same else f" (the project targets {VIVADO_VERSION}: IP versions may differ)")))
    hls = which("vitis_hls")
    findings.append(Finding("vitis_hls", bool(hls), hls or "not on PATH (needed once, to build PYNQ's two HLS IP)"))

    try:
        info = check_rtl(arch, rtl)
        findings.append(Finding("Tensil RTL", True, f"{rtl} ({info.top}.v, {info.dram_data_width}-bit AXI)"))
        rtl_ok = True
    except FpgaError as e:
        docker = docker_engine_error()
        rtl_how = ("`python -m fpga rtl` can make it here (Docker answers)" if docker is None
               else f"no Docker here ({docker}): run `tensil rtl -a {arch.name}.tarch -d 64` elsewhere and give RTL_DIR")
        findings.append(Finding("Tensil RTL", False, f"{e}; {rtl_how}"))
        rtl_ok = False

    try:
        check_pynq_checkout(config.pynq_dir)
        findings.append(Finding(f"PYNQ {PYNQ_VERSION} checkout", True, str(Path(config.pynq_dir).resolve())))
        pynq_ok = True
    except FpgaError as e:
        findings.append(Finding(f"PYNQ {PYNQ_VERSION} checkout", False, str(e)))
        pynq_ok = False

    findings.append(Finding("tclsh", bool(which("tclsh")),
                            which("tclsh") or "not on PATH (Debian package tcl: checks the project without Vivado)"))
    bit = (fpga / "design.bit").is_file() and (fpga / "design.hwh").is_file()
    findings.append(Finding("bitstream", bit, str(fpga / "design.bit") if bit else f"none in {fpga}"))
    bundle = Path(config.bundle)
    has_model = (bundle / "model.json").is_file()
    bundled_bit = (bundle / "design.bit").is_file()
    findings.append(Finding("board bundle", has_model and bundled_bit,
                            f"{bundle}" + (" with design.bit" if bundled_bit else
                                           " without a bitstream (onnx and emulator backends only)" if has_model
                                           else " missing")))
    findings.append(Finding("board", None, "not probed from here: `ssh xilinx@<board> "
                                           "\"python3 -c 'import pynq; print(pynq.__version__)'\"` should print 3.0.1"))

    if not rtl_ok:
        step = (f"python -m fpga rtl --arch {arch.name} --out {rtl}" if docker is None
                else f"copy the output of `tensil rtl -a {arch.name}.tarch -d 64` (tensilai/tensil image) to {rtl}")
    elif not pynq_ok:
        step = f"git clone -b {PYNQ_VERSION} --depth 1 https://github.com/Xilinx/PYNQ {config.pynq_dir}"
    elif not bit and version is None:
        step = (f"make fpga-project {make_vars}   (checks the project here), then on a machine with Vivado "
                f"{VIVADO_VERSION}: make bitstream {make_vars}")
    elif not bit:
        step = f"make bitstream {make_vars}"
    elif not bundled_bit:
        step = f"make bundle ARCH={arch.name} MHZ={config.mhz:g}"
    else:
        step = "make deploy BOARD=xilinx@<board>   (then run the command it prints, on the board)"
    warning = timing_warning(config.mhz)
    return Diagnosis(findings, [warning] if warning else [], step)
