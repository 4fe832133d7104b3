"""Tensil RTL: acquisition (`tensil rtl` in the tensilai/tensil Docker image, or a user folder)
and the check that a folder holds the RTL of a given `.tarch`.

What `tensil rtl -a <name>.tarch -d <width>` writes (Tensil v1.0.15):
`top_<name>.v` (every Chisel module, top `top_<name>`), one `bram_dp_<bits>x<depth>.v` per
distinct memory shape (local memory and accumulators, bits = array_size * data bits) declaring
`reg [bits-1:0] ram [depth-1:0]`, and `architecture_params.h` (`#define
TENSIL_ARCHITECTURE_<KEY> <value>`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from fpga.errors import RtlError
from tensil.arch import Arch, save_arch

DOCKER_IMAGE = "tensilai/tensil"
DEFAULT_AXI_WIDTH = 64
REQUIRED_TOP_PORTS = ("clock", "reset", "instruction_tdata", "instruction_tvalid", "instruction_tready")
DRAM_PORTS = ("araddr", "arvalid", "rdata", "rvalid", "awaddr", "awvalid", "wdata", "wvalid", "bvalid")

_PORT_RE = re.compile(r"\b(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+)\s*:\s*0\]\s*)?(\w+)")
_RAM_RE = re.compile(r"reg\s*\[(\d+)\s*:\s*0\]\s*ram\s*\[(\d+)\s*:\s*0\]")
_DEFINE_RE = re.compile(r"#define\s+TENSIL_ARCHITECTURE_(\w+)\s+(\S+)")


@dataclass(frozen=True)
class RtlInfo:
    """A checked Tensil RTL folder: its files, top module and bus widths."""

    directory: str
    top: str
    files: tuple[str, ...]
    instruction_width: int
    dram_data_width: int
    dram_addr_width: int
    ports: dict

    def to_json_dict(self) -> dict:
        return asdict(self)


def top_module(arch: Arch) -> str:
    return f"top_{arch.name}"


def memory_modules(arch: Arch) -> list[str]:
    """`bram_dp_<bits>x<depth>` module names the RTL of `arch` must contain (one per shape)."""
    bits = arch.array_size * arch.dtype.bits
    depths = sorted({arch.local_depth, arch.accumulator_depth}, reverse=True)
    return [f"bram_dp_{bits}x{depth}" for depth in depths]


def module_ports(verilog: str, module: str) -> dict[str, tuple[str, int]]:
    """{port: (direction, width)} from the header of `module` in `verilog`."""
    start = re.search(rf"\bmodule\s+{re.escape(module)}\s*\(", verilog)
    if start is None:
        return {}
    end = verilog.find(");", start.end())
    header = verilog[start.end() : end if end >= 0 else len(verilog)]
    return {name: (d, int(msb) + 1 if msb else 1) for d, msb, name in _PORT_RE.findall(header)}


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError as e:
        raise RtlError(f"cannot read {path}: {e.strerror}") from None


def _check_memories(arch: Arch, directory: Path) -> list[Path]:
    found = sorted(p.stem for p in directory.glob("bram_dp_*.v"))
    paths = []
    for module in memory_modules(arch):
        path = directory / f"{module}.v"
        if not path.is_file():
            others = ", ".join(found) or "none"
            raise RtlError(
                f"{directory}: {module}.v missing (found {others}): this RTL was not generated for "
                f"{arch.name} (array_size {arch.array_size}, {arch.data_type}, local {arch.local_depth}, "
                f"accumulators {arch.accumulator_depth})"
            )
        m = _RAM_RE.search(_read(path))
        bits, depth = (int(m.group(1)) + 1, int(m.group(2)) + 1) if m else (None, None)
        want_bits, want_depth = (int(x) for x in module.removeprefix("bram_dp_").split("x"))
        if (bits, depth) != (want_bits, want_depth):
            raise RtlError(f"{path}: declares a {bits}x{depth} RAM, expected {want_bits}x{want_depth}")
        paths.append(path)
    return paths


def _check_params(arch: Arch, path: Path) -> None:
    wanted = {k.upper(): v for k, v in arch.to_json_dict().items()}
    for key, value in _DEFINE_RE.findall(_read(path)):
        if key not in wanted:
            continue
        expected = f"TENSIL_DATA_TYPE_{wanted[key]}" if key == "DATA_TYPE" else str(wanted[key])
        if value != expected:
            raise RtlError(
                f"{path}: TENSIL_ARCHITECTURE_{key} is {value}, but {arch.name} has {key.lower()} {wanted[key]}"
            )


def check_rtl(arch: Arch, rtl_dir: str | Path) -> RtlInfo:
    """Check that `rtl_dir` holds `tensil rtl` output for exactly `arch`; RtlError otherwise."""
    directory = Path(rtl_dir)
    if not directory.is_dir():
        raise RtlError(f"RTL folder {directory} does not exist (give the output folder of `tensil rtl`)")
    top = top_module(arch)
    top_path = directory / f"{top}.v"
    if not top_path.is_file():
        tops = ", ".join(sorted(p.name for p in directory.glob("top_*.v"))) or "no top_*.v at all"
        raise RtlError(f"{directory}: {top}.v missing (found {tops}); run `tensil rtl -a {arch.name}.tarch`")
    verilog = _read(top_path)
    ports = module_ports(verilog, top)
    if not ports:
        raise RtlError(f"{top_path}: no `module {top}(` header found")
    missing = [p for p in REQUIRED_TOP_PORTS if p not in ports]
    missing += [f"m_axi_{bus}_{p}" for bus in ("dram0", "dram1") for p in DRAM_PORTS if f"m_axi_{bus}_{p}" not in ports]
    if missing:
        raise RtlError(f"{top_path}: module {top} lacks port(s) {', '.join(missing)}")
    memories = _check_memories(arch, directory)
    for module in memory_modules(arch):
        if not re.search(rf"\b{module}\b", verilog):
            raise RtlError(f"{top_path}: never instantiates {module}")
    params = directory / "architecture_params.h"
    if params.is_file():
        _check_params(arch, params)
    data_width = ports["m_axi_dram0_wdata"][1]
    if ports["m_axi_dram1_wdata"][1] != data_width:
        raise RtlError(f"{top_path}: dram0 and dram1 data widths differ")
    return RtlInfo(
        directory=str(directory),
        top=top,
        files=tuple(str(p) for p in [top_path, *memories]),
        instruction_width=ports["instruction_tdata"][1],
        dram_data_width=data_width,
        dram_addr_width=ports["m_axi_dram0_araddr"][1],
        ports={name: list(v) for name, v in sorted(ports.items())},
    )


def docker_engine_error() -> str | None:
    """None when a Docker engine answers, else one line saying why not."""
    if shutil.which("docker") is None:
        return "the docker command is not on PATH"
    try:
        done = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return "`docker version` did not answer within 30 s"
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
        return "no Docker engine answers (" + (lines[0] if lines else f"exit status {done.returncode}") + ")"
    return None


def generate_rtl(arch: Arch, out_dir: str | Path, axi_width: int = DEFAULT_AXI_WIDTH) -> RtlInfo:
    """Run `tensil rtl` in the Docker image for `arch`, check the result, move it to `out_dir`."""
    why = docker_engine_error()
    if why is not None:
        raise RtlError(
            f"cannot run `tensil rtl` in Docker: {why}; run `tensil rtl -a {arch.name}.tarch -d {axi_width}` "
            "where Docker works and pass the folder with --rtl-dir"
        )
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".rtl-", dir=out.parent))
    try:
        save_arch(arch, work / f"{arch.name}.tarch")
        command = [
            "docker", "run", "--rm", "-u", f"{os.getuid()}:{os.getgid()}", "-v", f"{work}:/work", "-w", "/work",
            DOCKER_IMAGE, "tensil", "rtl", "-a", f"/work/{arch.name}.tarch", "-d", str(axi_width), "-t", "/work/rtl",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
            raise RtlError(f"`tensil rtl` failed: {lines[-1] if lines else f'exit status {done.returncode}'}")
        check_rtl(arch, work / "rtl")
        (work / "rtl" / "arch.json").write_text(json.dumps(arch.to_json_dict(), indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(work / "rtl", out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return check_rtl(arch, out)
