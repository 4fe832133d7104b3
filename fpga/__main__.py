"""CLI: `python -m fpga project|build|estimate|rtl|doctor` (defaults: custom_perf at 50 MHz)."""

from __future__ import annotations

import argparse
import json
import sys

from fpga.bdcheck import check_design
from fpga.build import BuildConfig, run_build
from fpga.errors import FpgaError
from fpga.project import ProjectConfig, write_project
from fpga.rtl import generate_rtl
from fpga.standin import record_design
from safeio import OneLineParser, config_from_args
from contracts import DEFAULT_ARCH, DEFAULT_MHZ, bundle_dir, rtl_dir
from tensil.arch import ArchError, load_arch
from tensil.resources import ResourceError, plan_fit


def _project_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default=DEFAULT_ARCH, help="shipped arch name or .tarch path (default %(default)s)")
    p.add_argument("--mhz", type=float, default=DEFAULT_MHZ, help="accelerator clock in MHz (default %(default)g)")
    p.add_argument("--rtl-dir", default=None, help="folder with `tensil rtl` output (default: run it in Docker)")
    p.add_argument("--pynq-dir", default="PYNQ", help="PYNQ v3.0.1 repository checkout (default ./PYNQ)")
    p.add_argument("--out", default=None, help="output folder (default build/fpga/<arch>_<MHz>MHz)")
    p.add_argument("--pmod-buttons", type=int, default=6, help="buttons on PMOD JA, 0..8 (default 6)")
    p.add_argument("--jobs", type=int, default=4, help="Vivado parallel jobs (default 4)")


def _project(args: argparse.Namespace) -> int:
    project = write_project(config_from_args(ProjectConfig, args))
    print(f"fpga: wrote {project.create_tcl}, {project.build_tcl}, design.xdc and project.json", file=sys.stderr)
    if args.check:
        design = record_design(project.create_tcl)
        problems = check_design(design, f"{project.rtl.top}_0", project.clock)
        result = {"cells": len(design["cells"]), "nets": len(design["nets"]), "intf_nets": len(design["intf_nets"]),
                  "addresses": len(design["addresses"]), "problems": problems}  # fmt: skip
        (project.out / "standin_check.json").write_text(json.dumps(result, indent=2) + "\n")
        if problems:
            raise FpgaError(f"block design check found {len(problems)} problem(s), first: {problems[0]}")
        print(f"fpga: stand-in check passed ({result['cells']} cells, {result['nets']} nets, "
              f"{result['intf_nets']} interface nets, {result['addresses']} address segments)", file=sys.stderr)  # fmt: skip
    print(f"fpga: next, on a machine with Vivado 2022.1: cd {project.out} && vivado -mode batch -source build.tcl")
    return 0


def _build(args: argparse.Namespace) -> int:
    report = run_build(config_from_args(BuildConfig, args))
    print(json.dumps(report, indent=2))
    return 0


def _estimate(args: argparse.Namespace) -> int:
    plan = plan_fit(load_arch(args.arch))
    print(plan.table())
    return 0 if plan.fits else 1


def _rtl(args: argparse.Namespace) -> int:
    arch = load_arch(args.arch)
    out = args.out or rtl_dir(arch.name)
    info = generate_rtl(arch, out, args.axi_width)
    print(f"fpga: wrote the checked Tensil RTL of {arch.name} to {info.directory}", file=sys.stderr)
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from fpga.doctor import DoctorConfig, diagnose

    print(diagnose(config_from_args(DoctorConfig, args)).text())
    return 0


def parser() -> argparse.ArgumentParser:
    ap = OneLineParser(prog="python -m fpga", description="Vivado project and bitstream for PYNQ-Z1 + Tensil")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("project", help="check inputs and write the Vivado project scripts")
    _project_flags(p)
    p.add_argument("--check", action="store_true", help="run the Tcl in tclsh against the Vivado stand-in and check it")
    p.set_defaults(run=_project)
    b = sub.add_parser("build", help="write the project and run Vivado in batch mode (needs vivado on PATH)")
    _project_flags(b)
    b.add_argument("--max-violation-ns", type=float, default=0.0, help="accepted negative slack (default 0)")
    b.add_argument("--bundle", default=None, help="also copy design.bit/.hwh into this bundle folder")
    b.set_defaults(run=_build)
    e = sub.add_parser("estimate", help="print the FPGA resource estimate of an architecture")
    e.add_argument("--arch", default=DEFAULT_ARCH)
    e.set_defaults(run=_estimate)
    r = sub.add_parser("rtl", help="generate the Tensil RTL with `tensil rtl` in Docker")
    r.add_argument("--arch", default=DEFAULT_ARCH)
    r.add_argument("--out", default=None, help="output folder (default build/fpga/rtl_<arch>)")
    r.add_argument("--axi-width", type=int, default=64, choices=(32, 64, 128, 256, 512, 1024))
    r.set_defaults(run=_rtl)
    d = sub.add_parser("doctor", help="which prerequisites of a bitstream and a board are here, and what to run next")
    d.add_argument("--arch", default=DEFAULT_ARCH)
    d.add_argument("--mhz", type=float, default=DEFAULT_MHZ, help="accelerator clock in MHz (default %(default)g)")
    d.add_argument("--rtl-dir", default=None, help="Tensil RTL folder (default build/fpga/rtl_<arch>)")
    d.add_argument("--pynq-dir", default="PYNQ", help="PYNQ v3.0.1 checkout (default ./PYNQ)")
    d.add_argument("--bundle", default=bundle_dir(), help="board bundle folder (default %(default)s)")
    d.set_defaults(run=_doctor)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (FpgaError, ArchError, ResourceError, OSError) as e:
        print(f"fpga: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
