"""Checks of a block design recorded by the Vivado stand-in, against a catalog of the pins
each IP needs (names from the IPs' Vivado interfaces and the PYNQ base overlay's base.tcl).

`check_design` returns the list of problems (empty = good): every required clock, reset and
interface connected, no pin unknown to the catalog, address segments assigned and
non-overlapping, the names the board app binds to, the TCU wired to the right DMA and HP
ports, the requested accelerator clock, and XDC constraints on every external port.
"""

from __future__ import annotations

import re
from pathlib import Path

from fpga import board
from fpga.clocking import ClockPlan

# kind: "clk" / "rst" = clock / reset input, "in" = other input or interface that must be
# connected, "out" = output the design must use, "opt" = may stay unconnected.
_AXI_DMA = {"s_axi_lite_aclk": "clk", "m_axi_mm2s_aclk": "clk", "axi_resetn": "rst", "S_AXI_LITE": "in",
            "M_AXI_MM2S": "in", "M_AXIS_MM2S": "in", "mm2s_introut": "out"}  # fmt: skip
_HLS = {"ap_clk": "clk", "control": "clk", "ap_rst_n": "rst", "ap_rst_n_control": "rst", "s_axi_control": "in"}


def _catalog(vlnv: str, config: dict) -> dict[str, str] | None:
    name = vlnv.split(":")[2] if vlnv.count(":") == 3 else vlnv
    if name == "processing_system7":
        pins = {"DDR": "in", "FIXED_IO": "in", "FCLK_RESET0_N": "opt", "IRQ_F2P": "opt"}
        for i in range(4):
            pins[f"FCLK_CLK{i}"] = "opt"
        for gp in ("GP0", "GP1"):
            if str(config.get(f"PCW_USE_M_AXI_{gp}")) == "1":
                pins |= {f"M_AXI_{gp}": "in", f"M_AXI_{gp}_ACLK": "clk"}
        for i in range(4):
            if str(config.get(f"PCW_USE_S_AXI_HP{i}")) == "1":
                pins |= {f"S_AXI_HP{i}": "in", f"S_AXI_HP{i}_ACLK": "clk"}
        return pins
    if name == "proc_sys_reset":
        return {"slowest_sync_clk": "clk", "ext_reset_in": "rst", "aux_reset_in": "opt", "dcm_locked": "opt",
                "interconnect_aresetn": "opt", "peripheral_aresetn": "opt", "peripheral_reset": "opt"}  # fmt: skip
    if name == "axi_interconnect":
        pins = {"ACLK": "clk", "ARESETN": "rst", "S00_AXI": "in", "S00_ACLK": "clk", "S00_ARESETN": "rst"}
        for i in range(int(config.get("NUM_MI", 1))):
            pins |= {f"M{i:02d}_AXI": "in", f"M{i:02d}_ACLK": "clk", f"M{i:02d}_ARESETN": "rst"}
        return pins
    if name == "smartconnect":
        pins = {"aclk": "clk", "aresetn": "rst"}
        pins |= {f"S{i:02d}_AXI": "in" for i in range(int(config.get("NUM_SI", 1)))}
        return pins | {f"M{i:02d}_AXI": "in" for i in range(int(config.get("NUM_MI", 1)))}
    if name == "axi_dma":
        return dict(_AXI_DMA)
    if name == "axi_vdma":
        return dict(_AXI_DMA) | {"m_axis_mm2s_aclk": "clk"}
    if name == "axi_gpio":
        pins = {"s_axi_aclk": "clk", "s_axi_aresetn": "rst", "S_AXI": "in", "GPIO": "in", "ip2intc_irpt": "opt"}
        return pins | ({"GPIO2": "in"} if str(config.get("C_IS_DUAL")) == "1" else {})
    if name == "axi_intc":
        return {"s_axi_aclk": "clk", "s_axi_aresetn": "rst", "s_axi": "in", "intr": "in", "irq": "out"}
    if name == "xlconcat":
        return {"dout": "out"} | {f"In{i}": "in" for i in range(int(config.get("NUM_PORTS", 2)))}
    if name == "clk_wiz":
        return {"clk_in1": "clk", "resetn": "rst", "clk_out1": "out", "locked": "out"}
    if name == "pixel_unpack":
        return _HLS | {"stream_in_32": "in", "stream_out_24": "in"}
    if name == "color_convert":
        return _HLS | {"stream_in_24": "in", "stream_out_24": "in"}
    if name == "axis_register_slice":
        return {"aclk": "clk", "aresetn": "rst", "S_AXIS": "in", "M_AXIS": "in"}
    if name == "v_tc":
        return {"clk": "clk", "s_axi_aclk": "clk", "s_axi_aresetn": "rst", "ctrl": "in", "vtiming_out": "in",
                "gen_clken": "in", "irq": "out"}  # fmt: skip
    if name == "axi_dynclk":
        return {"REF_CLK_I": "clk", "s00_axi_aclk": "clk", "s00_axi_aresetn": "rst", "s00_axi": "in",
                "PXL_CLK_O": "out", "PXL_CLK_5X_O": "out", "LOCKED_O": "out"}  # fmt: skip
    if name == "v_axi4s_vid_out":
        return {"aclk": "clk", "aresetn": "rst", "vid_io_out_clk": "clk", "video_in": "in", "vtiming_in": "in",
                "vid_io_out": "in", "vtg_ce": "out"}  # fmt: skip
    if name == "color_swap":
        return {"pixel_input": "in", "pixel_output": "in"}
    if name == "rgb2dvi":
        return {"PixelClk": "clk", "SerialClk": "clk", "aRst_n": "rst", "RGB": "in", "TMDS": "in"}
    if vlnv.startswith("module_ref:"):
        return {"clock": "clk", "reset": "rst", "instruction": "in", "m_axi_dram0": "in", "m_axi_dram1": "in"}
    return None


def _segments(vlnv: str) -> dict[str, str]:
    """{slave interface pin: its address segment} as Vivado names them (the segment takes the IP's
    memory-map name, which may differ in case from the pin: axi_intc's `s_axi` maps `S_AXI/Reg`)."""
    name = vlnv.split(":")[2] if vlnv.count(":") == 3 else vlnv
    if name == "processing_system7":
        return {f"S_AXI_HP{i}": f"S_AXI_HP{i}/HP{i}_DDR_LOWOCM" for i in range(4)}
    return {
        "axi_gpio": {"S_AXI": "S_AXI/Reg"},
        "axi_intc": {"s_axi": "S_AXI/Reg"},
        "axi_dma": {"S_AXI_LITE": "S_AXI_LITE/Reg"},
        "axi_vdma": {"S_AXI_LITE": "S_AXI_LITE/Reg"},
        "v_tc": {"ctrl": "ctrl/Reg"},
        "axi_dynclk": {"s00_axi": "s00_axi/reg0"},
        "pixel_unpack": {"s_axi_control": "s_axi_control/Reg"},
        "color_convert": {"s_axi_control": "s_axi_control/Reg"},
    }.get(name, {})


def _spaces(vlnv: str) -> set[str]:
    """Address spaces (of AXI masters) as Vivado names them."""
    name = vlnv.split(":")[2] if vlnv.count(":") == 3 else vlnv
    if vlnv.startswith("module_ref:"):
        return {"m_axi_dram0", "m_axi_dram1"}
    return {"processing_system7": {"Data"}, "axi_dma": {"Data_MM2S"}, "axi_vdma": {"Data_MM2S"}}.get(name, set())


def _reference_problems(design: dict) -> list[str]:
    """Every pin, interface pin, segment and space the Tcl names must exist, spelled exactly as
    the IP spells it (Vivado's object queries are case-sensitive)."""
    problems = []
    for ref in design.get("refs", []):
        kind, path = ref["kind"], ref["path"]
        depth = 2 if kind == "segment" else 1
        parts = path.split("/")
        cell_path, name = "/".join(parts[:-depth]), "/".join(parts[-depth:])
        cell = design["cells"].get(cell_path)
        if cell is None or cell["type"] == "hier":
            problems.append(f"{path}: {cell_path} is not an IP cell")
            continue
        if kind in ("pin", "intf_pin"):
            known = set(_catalog(cell["vlnv"], cell["config"]) or {})
        elif kind == "segment":
            known = set(_segments(cell["vlnv"]).values())
        else:
            known = _spaces(cell["vlnv"])
        if name not in known:
            close = [k for k in known if k.lower() == name.lower()]
            hint = f" (Vivado spells it {close[0]})" if close else ""
            problems.append(f"{path}: no {kind.replace('_', ' ')} {name} on {cell['vlnv']}{hint}")
    return problems


def _connected(design: dict) -> tuple[dict[str, str], dict[str, str]]:
    """{pin: net name} of every plain net, {intf end: other end} of every interface net."""
    pin_net = {p: n["name"] for n in design["nets"] for p in n["pins"]}
    peer = {}
    for a, b in design["intf_nets"]:
        peer[a.split(":", 1)[1]] = b.split(":", 1)[1]
        peer[b.split(":", 1)[1]] = a.split(":", 1)[1]
    return pin_net, peer


def _pins_problems(design: dict) -> list[str]:
    problems = []
    pin_net, peer = _connected(design)
    used = set(pin_net) | set(peer)
    for path, cell in design["cells"].items():
        if cell["type"] == "hier":
            continue
        catalog = _catalog(cell["vlnv"], cell["config"])
        if catalog is None:
            problems.append(f"{path}: IP {cell['vlnv']} is not in the checker's catalog")
            continue
        for pin, kind in catalog.items():
            if kind != "opt" and f"{path}/{pin}" not in used:
                problems.append(f"{path}/{pin} ({kind}) is not connected")
        for ref in used:
            if ref.rsplit("/", 1)[0] == path and ref.rsplit("/", 1)[1] not in catalog:
                problems.append(f"{ref}: no such pin on {cell['vlnv']}")
    return problems


def _address_problems(design: dict) -> list[str]:
    problems, spans = [], {}
    for a in design["addresses"]:
        start, size = int(a["offset"], 16), int(a["range"], 16)
        if start % size:
            problems.append(f"{a['segment']} at 0x{start:08X} is not aligned to its range 0x{size:X}")
        for other_start, other_size, other in spans.get(a["space"], []):
            if start < other_start + other_size and other_start < start + size:
                problems.append(f"{a['segment']} overlaps {other} in {a['space']}")
        spans.setdefault(a["space"], []).append((start, size, a["segment"]))
    assigned = {a["segment"] for a in design["addresses"] if a["space"] == "ps7_0/Data"}
    _, peer = _connected(design)
    for path, cell in design["cells"].items():
        if cell["type"] == "hier" or cell["vlnv"].startswith("module_ref:"):
            continue
        for pin, segment in _segments(cell["vlnv"]).items():
            if pin.startswith("S_AXI_HP"):
                continue
            if f"{path}/{pin}" in peer and f"{path}/{segment}" not in assigned:
                problems.append(f"{path}/{pin} has no address in ps7_0/Data ({path}/{segment} is not assigned)")
    return problems


def _follow(peer: dict[str, str], start: str) -> str | None:
    """The PS port reached from interface `start`, through SmartConnects (S00 -> M00)."""
    end = peer.get(start)
    while end is not None and end.endswith("/S00_AXI") and not end.startswith("ps7_0/"):
        end = peer.get(end[: -len("S00_AXI")] + "M00_AXI")
    return end


def _wiring_problems(design: dict, tcu: str) -> list[str]:
    problems = []
    cells = design["cells"]
    _, peer = _connected(design)
    expected = {
        (board.DMA, "axi_dma"): {"c_include_sg": "0", "c_include_s2mm": "0", "c_sg_length_width": "26"},
        (board.BUTTONS_GPIO, "axi_gpio"): {"C_ALL_INPUTS": "1", "C_GPIO_WIDTH": "4", "C_INTERRUPT_PRESENT": "1"},
        (f"{board.HDMI_OUT}/frontend/vtc_out", "v_tc"): {},
        (f"{board.HDMI_OUT}/frontend/axi_dynclk", "axi_dynclk"): {},
        (f"{board.HDMI_OUT}/pixel_unpack", "pixel_unpack"): {},
        (f"{board.HDMI_OUT}/color_convert", "color_convert"): {},
        ("video/axi_vdma", "axi_vdma"): {},
    }
    for (path, ip), config in expected.items():
        if path not in cells or f":{ip}:" not in cells[path]["vlnv"]:
            problems.append(f"no {ip} instance named {path}")
            continue
        for key, value in config.items():
            if str(cells[path]["config"].get(key)) != value:
                problems.append(f"{path}: CONFIG.{key} is {cells[path]['config'].get(key)}, expected {value}")
    for start, want in (
        (f"{tcu}/instruction", f"{board.DMA}/M_AXIS_MM2S"),
        (f"{board.DMA}/M_AXI_MM2S", "ps7_0/S_AXI_HP2"),
        (f"{tcu}/m_axi_dram0", "ps7_0/S_AXI_HP1"),
        (f"{tcu}/m_axi_dram1", "ps7_0/S_AXI_HP3"),
        ("video/axi_vdma/M_AXI_MM2S", "ps7_0/S_AXI_HP0"),
    ):
        got = _follow(peer, start)
        if got != want:
            problems.append(f"{start} reaches {got}, expected {want}")
    return problems


def _clock_problems(design: dict, tcu: str, clock: ClockPlan) -> list[str]:
    pin_net, _ = _connected(design)
    nets = {n["name"]: n["pins"] for n in design["nets"]}
    tcu_net = nets.get(pin_net.get(f"{tcu}/clock", ""), [])
    ps = design["cells"]["ps7_0"]["config"]
    if clock.source == "fclk":
        if "ps7_0/FCLK_CLK3" not in tcu_net:
            return [f"{tcu}/clock is not driven by ps7_0/FCLK_CLK3"]
        made = float(ps.get("PCW_FPGA3_PERIPHERAL_FREQMHZ", "nan"))
    else:
        if "accel_clk_wiz/clk_out1" not in tcu_net:
            return [f"{tcu}/clock is not driven by accel_clk_wiz/clk_out1"]
        made = float(design["cells"]["accel_clk_wiz"]["config"].get("CLKOUT1_REQUESTED_OUT_FREQ", "nan"))
    problems = [] if abs(made - clock.requested_mhz) <= 1e-3 * clock.requested_mhz else [
        f"accelerator clock is set to {made} MHz, {clock.requested_mhz} MHz was requested"
    ]  # fmt: skip
    for pin in ("ps7_0/S_AXI_HP1_ACLK", "ps7_0/S_AXI_HP2_ACLK", "ps7_0/S_AXI_HP3_ACLK", f"{board.DMA}/m_axi_mm2s_aclk"):
        if pin not in tcu_net:
            problems.append(f"{pin} is not on the accelerator clock")
    reset_net = nets.get(pin_net.get(f"{tcu}/reset", ""), [])
    if "rst_accel/peripheral_aresetn" not in reset_net:
        problems.append(f"{tcu}/reset is not driven by rst_accel/peripheral_aresetn")
    if design.get("pin_properties", {}).get(f"{tcu}/reset", {}).get("POLARITY") != "ACTIVE_LOW":
        problems.append(f"{tcu}/reset is not declared active low")
    return problems


def external_pins(design: dict) -> list[str]:
    """Top-level pin names Vivado's wrapper gets for each external port needing constraints."""
    _, peer = _connected(design)
    pins = []
    for name, port in design["ports"].items():
        vlnv = port["vlnv"]
        if ":gpio_rtl:" in vlnv:
            gpio = peer[name]
            cell, intf = gpio.rsplit("/", 1)
            width = int(design["cells"][cell]["config"]["C_GPIO2_WIDTH" if intf == "GPIO2" else "C_GPIO_WIDTH"])
            pins += [f"{name}_tri_i[{i}]" for i in range(width)]
        elif ":tmds_rtl:" in vlnv:
            pins += [f"{name}_clk_p", f"{name}_clk_n"] + [f"{name}_data_{s}[{i}]" for s in "pn" for i in range(3)]
        elif ":ddrx_rtl:" in vlnv or ":fixedio_rtl:" in vlnv:
            continue  # dedicated PS pins: placed by the PS7, never in an XDC
        else:
            pins.append(name)
    return pins


def _constraint_problems(design: dict) -> list[str]:
    problems = []
    xdc_files = [f["path"] for f in design["files"] if f["fileset"] == "constrs_1"]
    if not xdc_files:
        return ["no constraint file is added to constrs_1"]
    text = "\n".join(Path(p).read_text() for p in xdc_files if Path(p).is_file())
    constrained: dict[str, set[str]] = {}
    for prop, port in re.findall(r"set_property\s+(PACKAGE_PIN|IOSTANDARD)\s+\S+\s+\[get_ports\s+\{([^}]+)\}\]", text):
        constrained.setdefault(port.strip(), set()).add(prop)
    for pin in external_pins(design):
        missing = {"PACKAGE_PIN", "IOSTANDARD"} - constrained.get(pin, set())
        if missing:
            problems.append(f"external pin {pin} lacks {', '.join(sorted(missing))}")
    return problems


def check_design(design: dict, tcu: str, clock: ClockPlan) -> list[str]:
    """Every problem found in a recorded design; an empty list means it passed."""
    problems = [] if design["flags"].get("validated") == "1" else ["validate_bd_design is never called"]
    for part in (_reference_problems(design), _pins_problems(design), _address_problems(design), _wiring_problems(design, tcu),
                 _clock_problems(design, tcu, clock), _constraint_problems(design)):  # fmt: skip
        problems += part
    return problems
