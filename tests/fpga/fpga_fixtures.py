"""Test data of the fpga tests: fake `tensil rtl` output and a fake PYNQ checkout, laid out
with the real file and module names."""

from __future__ import annotations

from pathlib import Path

from tensil.arch import Arch, from_dict, load_arch, save_arch

AXI_CHANNELS = {
    "aw": [("valid", 1, "output"), ("ready", 1, "input"), ("id", 6, "output"), ("addr", 32, "output"),
           ("len", 8, "output"), ("size", 3, "output"), ("burst", 2, "output"), ("lock", 2, "output"),
           ("cache", 4, "output"), ("prot", 3, "output"), ("qos", 4, "output")],
    "w": [("valid", 1, "output"), ("ready", 1, "input"), ("id", 6, "output"), ("data", None, "output"),
          ("strb", None, "output"), ("last", 1, "output")],
    "b": [("valid", 1, "input"), ("ready", 1, "output"), ("id", 6, "input"), ("resp", 2, "input")],
    "ar": [("valid", 1, "output"), ("ready", 1, "input"), ("id", 6, "output"), ("addr", 32, "output"),
           ("len", 8, "output"), ("size", 3, "output"), ("burst", 2, "output"), ("lock", 2, "output"),
           ("cache", 4, "output"), ("prot", 3, "output"), ("qos", 4, "output")],
    "r": [("valid", 1, "input"), ("ready", 1, "output"), ("id", 6, "input"), ("data", None, "input"),
          ("resp", 2, "input"), ("last", 1, "input")],
}  # fmt: skip


def _decl(direction: str, width: int, name: str) -> str:
    return f"  {direction:<6} {f'[{width - 1}:0]' if width > 1 else '':<7} {name}"


def write_fake_rtl(arch: Arch, directory: Path, axi_width: int = 64) -> Path:
    """What `tensil rtl -a <arch>.tarch -d <axi_width>` writes, reduced to the facts checked."""
    directory.mkdir(parents=True, exist_ok=True)
    bits = arch.array_size * arch.dtype.bits
    depths = sorted({arch.local_depth, arch.accumulator_depth}, reverse=True)
    ports = [_decl("input", 1, "clock"), _decl("input", 1, "reset"), _decl("input", axi_width, "instruction_tdata"),
             _decl("input", 1, "instruction_tvalid"), _decl("output", 1, "instruction_tready"),
             _decl("input", 1, "instruction_tlast")]  # fmt: skip
    for bus in ("dram0", "dram1"):
        for channel, fields in AXI_CHANNELS.items():
            for field, width, direction in fields:
                w = axi_width if field == "data" else axi_width // 8 if field == "strb" else width
                ports.append(_decl(direction, w, f"m_axi_{bus}_{channel}{field}"))
    body = "\n".join(f"  bram_dp_{bits}x{d} mem_{i} (.clka(clock));" for i, d in enumerate(depths))
    (directory / f"top_{arch.name}.v").write_text(
        f"module Decoder(\n  input clock\n);\nendmodule\nmodule top_{arch.name}(\n" + ",\n".join(ports)
        + f"\n);\n{body}\nendmodule\n"
    )
    for depth in depths:
        aw = max(1, (depth - 1).bit_length())
        name = f"bram_dp_{bits}x{depth}"
        (directory / f"{name}.v").write_text(
            f"module {name} (clka,clkb,ena,enb,wea,web,addra,addrb,dia,dib,doa,dob);\n"
            f"input clka,clkb,ena,enb,wea,web;\ninput [{aw - 1}:0] addra,addrb;\n"
            f"input [{bits - 1}:0] dia,dib;\noutput [{bits - 1}:0] doa,dob;\n"
            f"reg [{bits - 1}:0] ram [{depth - 1}:0];\nendmodule\n"
        )
    params = ["#pragma once", ""] + [
        f"#define TENSIL_ARCHITECTURE_{k.upper():<28} {('TENSIL_DATA_TYPE_' + v) if k == 'data_type' else v}"
        for k, v in arch.to_json_dict().items()
    ]
    (directory / "architecture_params.h").write_text("\n".join(params) + "\n")
    return directory


def write_fake_pynq(root: Path) -> Path:
    ip = root / "boards" / "ip"
    for name in ("rgb2dvi_v1_2", "axi_dynclk_v1_0", "color_swap_1.1"):
        (ip / name).mkdir(parents=True, exist_ok=True)
        (ip / name / "component.xml").write_text("<spirit:component/>\n")
    (ip / "if" / "tmds_v1_0").mkdir(parents=True, exist_ok=True)
    for name in ("color_convert", "pixel_unpack"):
        (ip / "hls" / name).mkdir(parents=True, exist_ok=True)
        (ip / "hls" / name / "script.tcl").write_text(f"open_project {name}\n")
    return root


def a16_arch(tmp: Path) -> Arch:
    """A custom A=16 architecture (8-bit data so that it fits the XC7Z020)."""
    d = load_arch("custom_perf").to_json_dict() | {"array_size": 16, "data_type": "FP8BP4", "local_depth": 4096}
    path = tmp / "a16.tarch"
    save_arch(from_dict(d, "a16"), path)
    return load_arch(path)
