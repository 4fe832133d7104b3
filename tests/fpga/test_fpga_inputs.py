"""Bad input: one clear line from the CLI, exit status 2, nothing half written."""

from __future__ import annotations

import pytest
from fpga_fixtures import a16_arch, write_fake_rtl

from fpga.__main__ import main
from fpga.clocking import plan_clock
from fpga.errors import ClockError
from tensil.arch import from_dict, load_arch, save_arch
from tensil.resources import XC7Z020, estimate_tcu, plan_fit


def _run(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


def _args(rtl, pynq, out, *extra):
    return ["project", "--rtl-dir", str(rtl), "--pynq-dir", str(pynq), "--out", str(out), *extra]


def test_missing_rtl_and_pynq_folders(tmp_path, capsys, fake_pynq, rtl_factory):
    rtl = rtl_factory(load_arch("custom_perf"))
    code, line = _run(capsys, *_args(tmp_path / "nope", fake_pynq, tmp_path / "out"))
    assert code == 2 and line.startswith("fpga: error: RTL folder") and "does not exist" in line
    code, line = _run(capsys, *_args(rtl, tmp_path / "nope", tmp_path / "out"))
    assert code == 2 and "PYNQ checkout" in line
    (fake_pynq / "boards" / "ip" / "rgb2dvi_v1_2" / "component.xml").unlink()
    code, line = _run(capsys, *_args(rtl, fake_pynq, tmp_path / "out"))
    assert code == 2 and "rgb2dvi_v1_2" in line
    assert not (tmp_path / "out").exists()


def test_rtl_of_another_architecture(tmp_path, capsys, fake_pynq):
    pynqz1_rtl = write_fake_rtl(load_arch("pynqz1"), tmp_path / "rtl")
    (pynqz1_rtl / "top_pynqz1.v").rename(pynqz1_rtl / "top_custom_perf.v")
    text = (pynqz1_rtl / "top_custom_perf.v").read_text().replace("top_pynqz1", "top_custom_perf")
    (pynqz1_rtl / "top_custom_perf.v").write_text(text)
    code, line = _run(capsys, *_args(pynqz1_rtl, fake_pynq, tmp_path / "out"))
    assert code == 2 and "bram_dp_192x8192.v missing (found bram_dp_128x2048, bram_dp_128x8192)" in line


def test_rtl_with_wrong_top_or_params(tmp_path, capsys, fake_pynq, rtl_factory):
    arch = load_arch("custom_perf")
    code, line = _run(capsys, *_args(rtl_factory(load_arch("pynqz1")), fake_pynq, tmp_path / "out"))
    assert code == 2 and "top_custom_perf.v missing (found top_pynqz1.v)" in line
    rtl = rtl_factory(arch)
    params = rtl / "architecture_params.h"
    params.write_text(params.read_text().replace("LOCAL_DEPTH                  8192", "LOCAL_DEPTH                  4096"))
    code, line = _run(capsys, *_args(rtl, fake_pynq, tmp_path / "out"))
    assert code == 2 and "TENSIL_ARCHITECTURE_LOCAL_DEPTH is 4096" in line


@pytest.mark.parametrize("mhz", [5, 300, 0, -50])
def test_frequency_the_clocking_cannot_make(tmp_path, capsys, fake_pynq, rtl_factory, mhz):
    code, line = _run(capsys, *_args(rtl_factory(load_arch("custom_perf")), fake_pynq, tmp_path / "o", "--mhz", str(mhz)))
    assert code == 2 and ("cannot" in line or "outside" in line or "must be in" in line)


def test_clock_plans():
    assert plan_clock(50).source == "fclk" and plan_clock(50).actual_mhz == 50
    assert plan_clock(125).fclk_divisors is not None
    odd = plan_clock(33)
    assert odd.source == "mmcm"
    vco = 100 * odd.mmcm_mult / odd.mmcm_divclk
    assert 600 <= vco <= 1200 and abs(vco / odd.mmcm_out_div - 33) < 0.033
    with pytest.raises(ClockError):
        plan_clock(251)


def test_configuration_that_does_not_fit(tmp_path, capsys, fake_pynq):
    d = load_arch("custom_perf").to_json_dict() | {"array_size": 32}
    save_arch(from_dict(d, "a32"), tmp_path / "a32.tarch")
    rtl = write_fake_rtl(load_arch(tmp_path / "a32.tarch"), tmp_path / "rtl")
    code, line = _run(capsys, *_args(rtl, fake_pynq, tmp_path / "out", "--arch", str(tmp_path / "a32.tarch")))
    assert code == 2 and "does not fit" in line and "BRAM36" in line
    code, _ = _run(capsys, "estimate", "--arch", str(tmp_path / "a32.tarch"))
    assert code == 1


def test_resource_model_reproduces_pefsl_and_scales(tmp_path):
    tcu = estimate_tcu(load_arch("custom_perf"))
    assert (tcu.dsp, tcu.bram36, tcu.lut, tcu.ff) == (159, 59.0, 15667, 9819)
    small = estimate_tcu(load_arch("pynqz1"))
    assert small.dsp < tcu.dsp and small.bram36 < tcu.bram36 and small.lut < tcu.lut
    plan = plan_fit(a16_arch(tmp_path))
    assert plan.fits and plan.lut_multipliers > 0 and plan.max_dsp < XC7Z020.available.dsp


def test_rtl_command_without_docker_engine(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    code, line = _run(capsys, "rtl", "--out", str(tmp_path / "rtl"))
    assert code == 2 and "docker command is not on PATH" in line and "--rtl-dir" in line
    assert not (tmp_path / "rtl").exists()


def test_too_many_pmod_buttons(tmp_path, capsys, fake_pynq, rtl_factory):
    rtl = rtl_factory(load_arch("custom_perf"))
    code, line = _run(capsys, *_args(rtl, fake_pynq, tmp_path / "out", "--pmod-buttons", "9"))
    assert code == 2 and line == "fpga: error: --pmod-buttons 9: must be between 0 and 8"
