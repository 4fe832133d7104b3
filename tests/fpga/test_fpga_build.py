"""The build runner against fake `vivado` scripts on PATH (no Vivado here)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from fpga.__main__ import main
from tensil.arch import load_arch

TIMING = """------------------------------------------------------------------------------------------------
| Design Timing Summary
| ---------------------
------------------------------------------------------------------------------------------------

    WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)      THS(ns)
    -------      -------  ---------------------  -------------------      -------      -------
     {wns}        0.000                      0                45678        0.012        0.000
"""
UTILISATION = """| Slice LUTs              | 24001 |     0 |     53200 | 45.11 |
| Slice Registers         | 20011 |     0 |    106400 | 18.81 |
| Block RAM Tile          |  63.5 |     0 |       140 | 45.36 |
| DSPs                    |   159 |     0 |       220 | 72.27 |
"""


def _fake_tool(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _good_vivado(bin_dir: Path, wns: str) -> None:
    _fake_tool(bin_dir, "vivado", f"""mkdir -p reports staging
cat > reports/timing_summary.rpt <<'X'
{TIMING.format(wns=wns)}X
cat > reports/utilization.rpt <<'X'
{UTILISATION}X
echo bit > staging/design.bit
echo hwh > staging/design.hwh
echo "INFO: done" > vivado.log
""")


def _setup(tmp_path, monkeypatch, rtl_factory, fake_pynq):
    bin_dir = tmp_path / "bin"
    _fake_tool(bin_dir, "vitis_hls", "mkdir -p ${2%/script.tcl}/solution1/impl/ip && touch ${2%/script.tcl}/solution1/impl/ip/component.xml\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    rtl = rtl_factory(load_arch("custom_perf"))
    return bin_dir, ["build", "--rtl-dir", str(rtl), "--pynq-dir", str(fake_pynq), "--out", str(tmp_path / "out")]


def test_without_vivado_writes_scripts_and_says_what_to_run(tmp_path, capsys, monkeypatch, rtl_factory, fake_pynq):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    rtl = rtl_factory(load_arch("custom_perf"))
    code = main(["build", "--rtl-dir", str(rtl), "--pynq-dir", str(fake_pynq), "--out", str(tmp_path / "out")])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and "vivado is not on PATH" in line and "vivado -mode batch -source build.tcl" in line
    assert (tmp_path / "out" / "build.tcl").is_file() and not (tmp_path / "out" / "design.bit").exists()


def test_successful_build_hands_over_bit_and_hwh(tmp_path, capsys, monkeypatch, rtl_factory, fake_pynq):
    bin_dir, argv = _setup(tmp_path, monkeypatch, rtl_factory, fake_pynq)
    _good_vivado(bin_dir, "0.412")
    assert main([*argv, "--bundle", str(tmp_path / "bundle")]) == 0
    out = tmp_path / "out"
    assert (out / "design.bit").read_text() == "bit\n" and (tmp_path / "bundle" / "design.hwh").read_text() == "hwh\n"
    report = json.loads((out / "build_report.json").read_text())
    assert report["worst_negative_slack_ns"] == 0.412
    assert report["utilisation"] == {"lut": 24001, "ff": 20011, "bram36": 63.5, "dsp": 159}
    assert (fake_pynq / "boards/ip/hls/color_convert/solution1/impl/ip/component.xml").is_file()


def test_vivado_failure_quotes_the_error_line(tmp_path, capsys, monkeypatch, rtl_factory, fake_pynq):
    bin_dir, argv = _setup(tmp_path, monkeypatch, rtl_factory, fake_pynq)
    _fake_tool(bin_dir, "vivado", "echo 'INFO: starting'\necho 'ERROR: [BD 41-1273] Error running validate_bd_design'\nexit 1\n")
    code = main(argv)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and "ERROR: [BD 41-1273] Error running validate_bd_design" in line
    assert not (tmp_path / "out" / "design.bit").exists()


def test_timing_badly_violated(tmp_path, capsys, monkeypatch, rtl_factory, fake_pynq):
    bin_dir, argv = _setup(tmp_path, monkeypatch, rtl_factory, fake_pynq)
    _good_vivado(bin_dir, "-2.345")
    code = main(argv)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and "worst negative slack -2.345 ns" in line
    assert not (tmp_path / "out" / "design.bit").exists()
    assert main([*argv, "--max-violation-ns", "3"]) == 0


def test_run_failure_quotes_the_run_log(tmp_path, capsys, monkeypatch, rtl_factory, fake_pynq):
    bin_dir, argv = _setup(tmp_path, monkeypatch, rtl_factory, fake_pynq)
    _fake_tool(bin_dir, "vivado", """mkdir -p vivado/tensil_pynq.runs/synth_1
echo "ERROR: [Synth 8-439] module 'bram_dp_192x8192' not found" > vivado/tensil_pynq.runs/synth_1/runme.log
echo 'ERROR: synthesis failed'
exit 1
""")
    code = main(argv)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and "[Synth 8-439] module 'bram_dp_192x8192' not found" in line
