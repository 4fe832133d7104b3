"""`python -m fpga doctor`: what is present for a bitstream and a board, and the next command;
a 125 MHz build warns before it starts."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fpga.__main__ import main
from tensil.arch import load_arch


def _vivado(bin_dir: Path, version: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / "vivado"
    tool.write_text(f"#!/bin/sh\necho 'Vivado v{version} (64-bit)'\necho 'Tool Version Limit: 2022.04'\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)


def _doctor(capsys, *argv) -> tuple[int, dict[str, str], str]:
    code = main(["doctor", *argv])
    out = capsys.readouterr().out.splitlines()
    rows = {line[10:32].strip(): line[:9].strip() + " | " + line[32:] for line in out[1:] if line.startswith("  ")
            and not line.startswith("  warning")}
    return code, rows, "\n".join(out)


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A clean working folder and a PATH with no Vivado and no Docker."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/usr/bin:/bin")
    if Path("/usr/bin/docker").exists():
        pytest.skip("a docker command in /usr/bin would be asked for its engine")
    return tmp_path


def test_nothing_here_says_where_to_get_the_rtl(here, capsys):
    code, rows, text = _doctor(capsys)
    assert code == 0
    assert rows["Vivado"].startswith("MISSING") and rows["Tensil RTL"].startswith("MISSING")
    assert rows["PYNQ v3.0.1 checkout"].startswith("MISSING") and rows["board"].startswith("check")
    assert text.splitlines()[-1].startswith("next: copy the output of `tensil rtl -a custom_perf.tarch -d 64`")


def test_rtl_and_pynq_without_vivado_checks_the_project_here_first(here, capsys, rtl_factory, fake_pynq):
    rtl = rtl_factory(load_arch("custom_perf"))
    code, rows, text = _doctor(capsys, "--rtl-dir", str(rtl), "--pynq-dir", str(fake_pynq))
    assert rows["Tensil RTL"].startswith("ok") and rows["PYNQ v3.0.1 checkout"].startswith("ok")
    last = text.splitlines()[-1]
    assert last.startswith(f"next: make fpga-project ARCH=custom_perf MHZ=50 RTL_DIR={rtl} PYNQ_DIR={fake_pynq}")
    assert "then on a machine with Vivado 2022.1: make bitstream" in last


@pytest.mark.parametrize("version,same", [("2022.1", True), ("2023.2", False)])
def test_vivado_version_and_then_make_bitstream(here, capsys, rtl_factory, fake_pynq, version, same):
    _vivado(here / "bin", version)
    rtl = rtl_factory(load_arch("custom_perf"))
    _, rows, text = _doctor(capsys, "--rtl-dir", str(rtl), "--pynq-dir", str(fake_pynq))
    assert rows["Vivado"].startswith("ok") and f"version {version}" in rows["Vivado"]
    assert ("targets 2022.1" in rows["Vivado"]) is not same
    assert text.splitlines()[-1] == f"next: make bitstream ARCH=custom_perf MHZ=50 RTL_DIR={rtl} PYNQ_DIR={fake_pynq}"


def test_after_the_bitstream_bundle_then_deploy(here, capsys, rtl_factory, fake_pynq):
    _vivado(here / "bin", "2022.1")
    rtl = rtl_factory(load_arch("custom_perf"))
    flags = ["--rtl-dir", str(rtl), "--pynq-dir", str(fake_pynq)]
    fpga_dir = here / "build/fpga/custom_perf_50MHz"
    fpga_dir.mkdir(parents=True)
    (fpga_dir / "design.bit").write_bytes(b"bit")
    (fpga_dir / "design.hwh").write_text("hwh")
    bundle = here / "build/bundle/default"
    bundle.mkdir(parents=True)
    (bundle / "model.json").write_text("{}")
    _, rows, text = _doctor(capsys, *flags)
    assert rows["bitstream"].startswith("ok") and "without a bitstream" in rows["board bundle"]
    assert text.splitlines()[-1] == "next: make bundle ARCH=custom_perf MHZ=50"
    (bundle / "design.bit").write_bytes(b"bit")
    _, rows, text = _doctor(capsys, *flags)
    assert rows["board bundle"].startswith("ok")
    assert text.splitlines()[-1].startswith("next: make deploy BOARD=xilinx@<board>")


def test_125_mhz_warns_in_doctor_and_before_a_build(here, capsys, rtl_factory, fake_pynq):
    _, _, text = _doctor(capsys, "--mhz", "125")
    assert "warning: at 125 MHz PEFSL's design of the same accelerator misses timing" in text
    _, _, text = _doctor(capsys, "--mhz", "100")
    assert "warning" not in text
    rtl = rtl_factory(load_arch("custom_perf"))
    code = main(["build", "--mhz", "125", "--rtl-dir", str(rtl), "--pynq-dir", str(fake_pynq), "--out", "out"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and err[0].startswith("fpga: warning: at 125 MHz") and "vivado is not on PATH" in err[-1]
