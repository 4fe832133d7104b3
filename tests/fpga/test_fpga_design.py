"""The generated Tcl, executed by tclsh against the Vivado stand-in, for several archs and clocks."""

from __future__ import annotations

import json
import shutil

import pytest
from fpga_fixtures import a16_arch

from fpga.__main__ import main
from fpga.bdcheck import check_design, external_pins
from fpga.project import ProjectConfig, write_project
from fpga.errors import StandinError
from fpga.standin import record_design
from tensil.arch import load_arch

pytestmark = pytest.mark.skipif(shutil.which("tclsh") is None, reason="tclsh (Debian package tcl) runs the stand-in")


def _build(tmp_path, rtl_factory, fake_pynq, arch_name, mhz):
    """Write the project of `arch_name` (a shipped arch or the custom "a16") and run it in the stand-in."""
    arch = a16_arch(tmp_path) if arch_name == "a16" else load_arch(arch_name)
    config = ProjectConfig(arch=str(tmp_path / "a16.tarch") if arch_name == "a16" else arch_name, mhz=mhz,
                           rtl_dir=str(rtl_factory(arch)), pynq_dir=str(fake_pynq), out=str(tmp_path / "out"))  # fmt: skip
    project = write_project(config)
    return project, record_design(project.create_tcl)


@pytest.mark.parametrize(
    "arch_name, mhz",
    [("custom_perf", 50), ("custom_perf", 100), ("custom_perf", 125), ("pynqz1", 50), ("a16", 125), ("custom_perf", 33)],
)
def test_design_passes_every_check(tmp_path, rtl_factory, fake_pynq, arch_name, mhz):
    project, design = _build(tmp_path, rtl_factory, fake_pynq, arch_name, mhz)
    assert check_design(design, f"top_{arch_name}_0", project.clock) == []
    assert design["project"]["part"] == "xc7z020clg400-1"
    assert design["cells"][f"top_{arch_name}_0"]["vlnv"] == f"module_ref:top_{arch_name}"
    width = project.rtl.instruction_width
    assert design["cells"]["axi_dma_0"]["config"]["c_m_axis_mm2s_tdata_width"] == str(width)


def test_clock_source_follows_the_frequency(tmp_path, rtl_factory, fake_pynq):
    project, design = _build(tmp_path, rtl_factory, fake_pynq, "custom_perf", 125)
    assert float(design["cells"]["ps7_0"]["config"]["PCW_FPGA3_PERIPHERAL_FREQMHZ"]) == 125
    assert "accel_clk_wiz" not in design["cells"]
    project, design = _build(tmp_path, rtl_factory, fake_pynq, "custom_perf", 33)
    assert float(design["cells"]["accel_clk_wiz"]["config"]["CLKOUT1_REQUESTED_OUT_FREQ"]) == 33
    nets = {n["name"]: n["pins"] for n in design["nets"]}
    assert "rst_accel/dcm_locked" in nets["accel_clk_locked"]


def test_board_driver_names_and_addresses(tmp_path, rtl_factory, fake_pynq):
    project, design = _build(tmp_path, rtl_factory, fake_pynq, "custom_perf", 50)
    cells = design["cells"]
    assert cells["axi_dma_0"]["config"]["c_m_axis_mm2s_tdata_width"] == "64"
    assert cells["btns_gpio"]["config"]["C_GPIO2_WIDTH"] == "6"
    for name in ("video/hdmi_out/frontend/vtc_out", "video/hdmi_out/frontend/axi_dynclk",
                 "video/hdmi_out/pixel_unpack", "video/hdmi_out/color_convert"):  # fmt: skip
        assert name in cells
    addresses = {a["segment"]: int(a["offset"], 16) for a in design["addresses"]}
    assert addresses["axi_dma_0/S_AXI_LITE/Reg"] == 0x8040_0000
    spaces = {a["space"] for a in design["addresses"]}
    assert {"top_custom_perf_0/m_axi_dram0", "top_custom_perf_0/m_axi_dram1", "axi_dma_0/Data_MM2S"} <= spaces


def test_checker_catches_broken_designs(tmp_path, rtl_factory, fake_pynq):
    project, design = _build(tmp_path, rtl_factory, fake_pynq, "custom_perf", 50)
    tcu = "top_custom_perf_0"
    broken = dict(design, nets=[n for n in design["nets"] if n["name"] != "accel_clk"])
    assert any("clock" in p for p in check_design(broken, tcu, project.clock))
    rewired = [[a, b.replace("dram0_smc", "dram1_smc")] if b.endswith("dram0_smc/S00_AXI") else [a, b]
               for a, b in design["intf_nets"]]  # fmt: skip
    assert any("m_axi_dram0" in p for p in check_design(dict(design, intf_nets=rewired), tcu, project.clock))
    overlap = design["addresses"] + [dict(design["addresses"][0], segment="extra/S_AXI/Reg")]
    assert any("overlaps" in p for p in check_design(dict(design, addresses=overlap), tcu, project.clock))
    (project.out / "design.xdc").write_text("")
    assert any("lacks" in p for p in check_design(design, tcu, project.clock))


def test_every_external_port_is_constrained(tmp_path, rtl_factory, fake_pynq):
    project, design = _build(tmp_path, rtl_factory, fake_pynq, "custom_perf", 50)
    pins = external_pins(design)
    assert len(pins) == 4 + 6 + 8
    xdc = (project.out / "design.xdc").read_text()
    assert all(f"{{{pin}}}" in xdc for pin in pins)


def test_wider_axi_rtl_sets_the_dma_width(tmp_path, rtl_factory, fake_pynq):
    rtl = rtl_factory(load_arch("custom_perf"), axi_width=128)
    project = write_project(ProjectConfig(rtl_dir=str(rtl), pynq_dir=str(fake_pynq), out=str(tmp_path / "out")))
    design = record_design(project.create_tcl)
    assert design["cells"]["axi_dma_0"]["config"]["c_m_axi_mm2s_data_width"] == "128"
    assert check_design(design, "top_custom_perf_0", project.clock) == []


def test_standin_rejects_references_to_missing_cells(tmp_path, rtl_factory, fake_pynq):
    project, _ = _build(tmp_path, rtl_factory, fake_pynq, "custom_perf", 50)
    text = project.create_tcl.read_text().replace("get_bd_pins dram1_smc/aclk", "get_bd_pins dram2_smc/aclk")
    project.create_tcl.write_text(text)
    with pytest.raises(StandinError, match="no block design cell 'dram2_smc'"):
        record_design(project.create_tcl)


def test_project_check_command(tmp_path, rtl_factory, fake_pynq, capsys):
    rtl = rtl_factory(load_arch("pynqz1"))
    argv = ["project", "--arch", "pynqz1", "--mhz", "125", "--rtl-dir", str(rtl), "--pynq-dir", str(fake_pynq),
            "--out", str(tmp_path / "out"), "--check"]  # fmt: skip
    assert main(argv) == 0
    assert "stand-in check passed" in capsys.readouterr().err
    check = json.loads((tmp_path / "out" / "standin_check.json").read_text())
    assert check["problems"] == [] and check["cells"] > 20
    record = json.loads((tmp_path / "out" / "project.json").read_text())
    assert record["clock"]["source"] == "fclk" and record["resources"]["fits"]
    assert record["instances"] == {"dma": "axi_dma_0", "buttons_gpio": "btns_gpio", "hdmi_out": "video/hdmi_out",
                                   "tcu": "top_pynqz1_0"}  # fmt: skip


@pytest.mark.parametrize("pmod_buttons", [0, 8])
def test_pmod_button_count(tmp_path, rtl_factory, fake_pynq, pmod_buttons):
    rtl = rtl_factory(load_arch("custom_perf"))
    config = ProjectConfig(rtl_dir=str(rtl), pynq_dir=str(fake_pynq), out=str(tmp_path / "out"), pmod_buttons=pmod_buttons)
    project = write_project(config)
    design = record_design(project.create_tcl)
    assert check_design(design, "top_custom_perf_0", project.clock) == []
    assert len(external_pins(design)) == 4 + pmod_buttons + 8
    assert ("pmoda_btns" in design["ports"]) == bool(pmod_buttons)


@pytest.mark.parametrize("right, wrong, problem", [
    ("[get_bd_addr_segs system_interrupts/S_AXI/Reg]", "[get_bd_addr_segs system_interrupts/s_axi/Reg]",
     "system_interrupts/s_axi/Reg: no segment s_axi/Reg on xilinx.com:ip:axi_intc:4.1 (Vivado spells it S_AXI/Reg)"),
    ("[get_bd_intf_pins btns_gpio/S_AXI]", "[get_bd_intf_pins btns_gpio/s_axi]",
     "btns_gpio/s_axi: no intf pin s_axi on xilinx.com:ip:axi_gpio:2.0 (Vivado spells it S_AXI)"),
    ("[get_bd_addr_spaces axi_dma_0/Data_MM2S]", "[get_bd_addr_spaces axi_dma_0/data_mm2s]",
     "axi_dma_0/data_mm2s: no space data_mm2s on xilinx.com:ip:axi_dma:7.1 (Vivado spells it Data_MM2S)"),
])
def test_names_must_be_spelled_as_the_ip_spells_them(tmp_path, rtl_factory, fake_pynq, right, wrong, problem):
    """Vivado's object queries are case-sensitive: a name in another case fails the check."""
    project, design = _build(tmp_path, rtl_factory, fake_pynq, "custom_perf", 50)
    assert len(design["refs"]) > 100 and check_design(design, "top_custom_perf_0", project.clock) == []
    text = project.create_tcl.read_text()
    assert right in text
    project.create_tcl.write_text(text.replace(right, wrong))
    problems = check_design(record_design(project.create_tcl), "top_custom_perf_0", project.clock)
    assert problem in problems
