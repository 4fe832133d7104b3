"""`python -m fpga build`: write the project, run Vivado in batch mode, check the result and
hand `design.bit`/`design.hwh` over to the output folder (and a bundle folder if given)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from fpga.errors import TimingError, VivadoError
from fpga.project import Project, ProjectConfig, write_atomic, write_project
from fpga.pynq_ip import HLS_IP
from fpga.reports import utilisation, worst_slack_ns


@dataclass
class BuildConfig(ProjectConfig):
    """Flags of `build`: those of `project`, plus the timing margin and the bundle folder."""

    max_violation_ns: float = 0.0
    bundle: str | None = None


def first_error(log: str) -> str | None:
    for line in log.splitlines():
        if line.startswith("ERROR:"):
            return line.strip()
    return None


def _run(command: list[str], cwd: Path, log: Path, what: str) -> None:
    with open(log, "w") as fh:
        done = subprocess.run(command, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
    text = log.read_text(errors="replace")
    error = first_error(text)
    if done.returncode != 0 or error:
        reason = error or f"exit status {done.returncode}"
        raise VivadoError(f"{what} failed: {reason} (log: {log})")


def _run_log_error(out: Path) -> str | None:
    """The first ERROR line of the synthesis/implementation run logs, where Vivado puts the cause."""
    for log in sorted(out.glob("vivado/*.runs/*/runme.log")):
        error = first_error(log.read_text(errors="replace"))
        if error:
            return f"{error} ({log})"
    return None


def _build_hls_ip(project: Project) -> None:
    """Build PYNQ's HLS video IP with vitis_hls when it is not built yet."""
    hls_root = Path(project.pynq.ip_repo) / "hls"
    for name in HLS_IP:
        if (hls_root / name / "solution1" / "impl" / "ip" / "component.xml").is_file():
            continue
        if shutil.which("vitis_hls") is None:
            raise VivadoError(
                f"PYNQ HLS IP {name} is not built and vitis_hls is not on PATH: run "
                f"`vitis_hls -f {name}/script.tcl` in {hls_root}"
            )
        print(f"fpga: building HLS IP {name} with vitis_hls", file=sys.stderr)
        _run(["vitis_hls", "-f", f"{name}/script.tcl"], hls_root, project.out / f"vitis_hls_{name}.log", f"vitis_hls {name}")


def run_build(config: BuildConfig) -> dict:
    """Write the project; without Vivado stop with VivadoError saying what to run where."""
    from fpga.doctor import timing_warning

    warning = timing_warning(config.mhz)
    if warning:
        print(f"fpga: warning: {warning}", file=sys.stderr)
    project = write_project(config)
    print(f"fpga: wrote the Vivado project scripts to {project.out}", file=sys.stderr)
    if shutil.which("vivado") is None:
        raise VivadoError(
            f"vivado is not on PATH: on a machine with Vivado 2022.1 run "
            f"`cd {project.out.resolve()} && vivado -mode batch -source build.tcl`"
        )
    _build_hls_ip(project)
    staging = project.out / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    print("fpga: running Vivado (synthesis, implementation, bitstream): this takes tens of minutes", file=sys.stderr)
    log = project.out / "vivado.log"
    try:
        _run(["vivado", "-mode", "batch", "-nojournal", "-log", str(log.resolve()), "-source", "build.tcl"],
             project.out, project.out / "vivado.stdout.log", "Vivado")  # fmt: skip
    except VivadoError as e:
        cause = _run_log_error(project.out)
        raise VivadoError(f"Vivado failed: {cause}") if cause else e
    for name in ("design.bit", "design.hwh"):
        if not (staging / name).is_file():
            raise VivadoError(f"Vivado finished without writing {staging / name}")
    wns = worst_slack_ns((project.out / "reports" / "timing_summary.rpt").read_text())
    used = utilisation((project.out / "reports" / "utilization.rpt").read_text())
    report = {
        "config": asdict(config),
        "clock": project.clock.to_json_dict(),
        "worst_negative_slack_ns": wns,
        "utilisation": used,
        "estimate": project.fit.to_json_dict()["total"],
        "bitstream": str(project.out / "design.bit"),
        "hwh": str(project.out / "design.hwh"),
    }
    if wns < -config.max_violation_ns:
        write_atomic(project.out / "build_report.json", json.dumps(report | {"failed": "timing"}, indent=2) + "\n")
        raise TimingError(
            f"timing violated: worst negative slack {wns:.3f} ns at {project.clock.actual_mhz:.6g} MHz "
            f"(allowed -{config.max_violation_ns:g} ns); lower --mhz or raise --max-violation-ns"
        )
    for name in ("design.bit", "design.hwh"):
        os.replace(staging / name, project.out / name)
    if config.bundle:
        bundle = Path(config.bundle)
        bundle.mkdir(parents=True, exist_ok=True)
        for name in ("design.bit", "design.hwh"):
            shutil.copy2(project.out / name, bundle / f".{name}.tmp")
            os.replace(bundle / f".{name}.tmp", bundle / name)
        report["bundle"] = str(bundle)
    write_atomic(project.out / "build_report.json", json.dumps(report, indent=2) + "\n")
    print(f"fpga: wrote {project.out / 'design.bit'} and design.hwh (WNS {wns:.3f} ns)", file=sys.stderr)
    return report
