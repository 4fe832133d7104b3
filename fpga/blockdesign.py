"""The block design of the PYNQ-Z1 + Tensil overlay, written as Vivado IP-integrator Tcl.

Clock domains: FCLK0 100 MHz (AXI-Lite control on M_AXI_GP0, HDMI pixel-clock reference),
FCLK1 142.857 MHz (video data path, S_AXI_HP0), and the accelerator clock (PS7 FCLK3 or a
clocking wizard on FCLK0) for the Tensil TCU, `axi_dma_0`, M_AXI_GP1 and S_AXI_HP1-3.
Data paths as in PEFSL: instructions from DDR via `axi_dma_0` (MM2S only, no scatter-gather,
on HP2) into the TCU's `instruction` stream; TCU `m_axi_dram0` on HP1 and `m_axi_dram1` on
HP3; the VDMA of the HDMI output on HP0. Interrupts reach IRQ_F2P[0] through one `axi_intc`.
"""

from __future__ import annotations

from dataclasses import dataclass

from fpga import board
from fpga.clocking import ClockPlan
from fpga.pynq_ip import PynqIp
from fpga.rtl import RtlInfo
from fpga.tcl import TclWriter

PS = "ps7_0"
GP0_IC = "ps7_0_axi_periph"
GP1_SC = "accel_ctrl_smc"
INTC = "system_interrupts"
IRQ_CONCAT = "concat_interrupts"
VDMA = "video/axi_vdma"
VDMA_SC = "video/vdma_smc"
UNPACK = "video/hdmi_out/pixel_unpack"
REGSLICE = "video/hdmi_out/axis_register_slice_0"
CCONV = "video/hdmi_out/color_convert"
FRONT = "video/hdmi_out/frontend"
VTC = f"{FRONT}/vtc_out"
DYNCLK = f"{FRONT}/axi_dynclk"
VIDOUT = f"{FRONT}/v_axi4s_vid_out_0"
SWAP = f"{FRONT}/color_swap_0"
RGB2DVI = f"{FRONT}/rgb2dvi_0"
CLK_WIZ = "accel_clk_wiz"
RST = {"fclk0": "rst_ps7_0_fclk0", "fclk1": "rst_ps7_0_fclk1", "accel": "rst_accel"}
DDR_SIZE = 0x2000_0000
LITE_SIZE = 0x1_0000

# (slave interface pin, its address segment as Vivado names it under the cell, offset, clock
# domain) of each AXI-Lite slave on GP0. The segment follows the IP's memory map, not the pin:
# axi_intc's interface is `s_axi` but its segment `S_AXI/Reg` (as in PYNQ's base overlay).
GP0_SLAVES = (
    (f"{board.BUTTONS_GPIO}/S_AXI", "S_AXI/Reg", 0x4120_0000, "fclk0"),
    (f"{INTC}/s_axi", "S_AXI/Reg", 0x4180_0000, "fclk0"),
    (f"{VDMA}/S_AXI_LITE", "S_AXI_LITE/Reg", 0x4300_0000, "fclk0"),
    (f"{VTC}/ctrl", "ctrl/Reg", 0x4002_0000, "fclk0"),
    (f"{DYNCLK}/s00_axi", "s00_axi/reg0", 0x43C1_0000, "fclk0"),
    (f"{CCONV}/s_axi_control", "s_axi_control/Reg", 0x43C6_0000, "fclk1"),
    (f"{UNPACK}/s_axi_control", "s_axi_control/Reg", 0x43C7_0000, "fclk1"),
)
DMA_LITE_OFFSET = 0x8040_0000


@dataclass(frozen=True)
class DesignSpec:
    """Everything the block design depends on."""

    bd_name: str
    rtl: RtlInfo
    clock: ClockPlan
    pynq: PynqIp
    pmod_buttons: int = 6

    @property
    def tcu(self) -> str:
        return f"{self.rtl.top}_0"

    @property
    def accel_clock_pin(self) -> str:
        return f"{PS}/FCLK_CLK3" if self.clock.source == "fclk" else f"{CLK_WIZ}/clk_out1"


def _ps7_config(spec: DesignSpec) -> dict:
    config = dict(board.PS7_BASE_CONFIG)
    if spec.clock.source == "fclk":
        config |= {"PCW_FPGA3_PERIPHERAL_FREQMHZ": round(spec.clock.actual_mhz, 6), "PCW_FPGA_FCLK3_ENABLE": 1, "PCW_EN_CLK3_PORT": 1}
    else:
        config |= {"PCW_FPGA_FCLK3_ENABLE": 0, "PCW_EN_CLK3_PORT": 0}
    return config


def _processing_system(t: TclWriter, spec: DesignSpec) -> None:
    t.comment("Zynq PS7 configured as the PYNQ-Z1 base overlay (no board files needed)")
    t.cell(PS, "xilinx.com:ip:processing_system7:5.5", _ps7_config(spec))
    t.intf_port("DDR", "Master", "xilinx.com:interface:ddrx_rtl:1.0")
    t.intf_port("FIXED_IO", "Master", "xilinx.com:display_processing_system7:fixedio_rtl:1.0")
    t.intf("DDR", f"{PS}/DDR", a_is_port=True)
    t.intf("FIXED_IO", f"{PS}/FIXED_IO", a_is_port=True)


def _clocks_and_resets(t: TclWriter, spec: DesignSpec) -> None:
    t.comment(f"Accelerator clock {spec.clock.actual_mhz:.6g} MHz from {spec.clock.source}, and one reset per domain")
    if spec.clock.source == "mmcm":
        t.cell(
            CLK_WIZ,
            "xilinx.com:ip:clk_wiz:6.0",
            {
                "PRIM_IN_FREQ": 100,
                "PRIM_SOURCE": "Global_buffer",
                "CLKOUT1_REQUESTED_OUT_FREQ": round(spec.clock.actual_mhz, 6),
                "USE_LOCKED": "true",
                "USE_RESET": "true",
                "RESET_TYPE": "ACTIVE_LOW",
                "RESET_PORT": "resetn",
                "MMCM_DIVCLK_DIVIDE": spec.clock.mmcm_divclk,
                "MMCM_CLKFBOUT_MULT_F": spec.clock.mmcm_mult,
                "MMCM_CLKOUT0_DIVIDE_F": spec.clock.mmcm_out_div,
            },
        )
    for name in RST.values():
        t.cell(name, "xilinx.com:ip:proc_sys_reset:5.0")
    t.net("ps7_fclk_reset0_n", f"{PS}/FCLK_RESET0_N", *(f"{r}/ext_reset_in" for r in RST.values()),
          *([f"{CLK_WIZ}/resetn"] if spec.clock.source == "mmcm" else []))  # fmt: skip
    if spec.clock.source == "mmcm":
        t.net("accel_clk_locked", f"{CLK_WIZ}/locked", f"{RST['accel']}/dcm_locked")


def _control_buses(t: TclWriter, spec: DesignSpec) -> None:
    t.comment("AXI-Lite control: GP0 to the board and video peripherals, GP1 to axi_dma_0")
    t.cell(GP0_IC, "xilinx.com:ip:axi_interconnect:2.1", {"NUM_MI": len(GP0_SLAVES)})
    t.intf(f"{PS}/M_AXI_GP0", f"{GP0_IC}/S00_AXI")
    for i, (pin, _, _, _) in enumerate(GP0_SLAVES):
        t.intf(f"{GP0_IC}/M{i:02d}_AXI", pin)
    t.cell(GP1_SC, "xilinx.com:ip:smartconnect:1.0", {"NUM_SI": 1, "NUM_MI": 1})
    t.intf(f"{PS}/M_AXI_GP1", f"{GP1_SC}/S00_AXI")
    t.intf(f"{GP1_SC}/M00_AXI", f"{board.DMA}/S_AXI_LITE")


def _accelerator(t: TclWriter, spec: DesignSpec) -> None:
    t.comment(f"Tensil TCU {spec.rtl.top}, its instruction DMA and its two DRAM masters")
    t.module(spec.tcu, spec.rtl.top)
    t.pin_property(f"{spec.tcu}/reset", {"POLARITY": "ACTIVE_LOW"})
    t.pin_property(
        f"{spec.tcu}/clock",
        {"ASSOCIATED_BUSIF": "instruction:m_axi_dram0:m_axi_dram1", "ASSOCIATED_RESET": "reset"},
    )
    t.cell(
        board.DMA,
        "xilinx.com:ip:axi_dma:7.1",
        {
            "c_include_sg": 0,
            "c_include_s2mm": 0,
            "c_include_mm2s": 1,
            "c_sg_length_width": 26,
            "c_m_axi_mm2s_data_width": spec.rtl.instruction_width,
            "c_m_axis_mm2s_tdata_width": spec.rtl.instruction_width,
            "c_mm2s_burst_size": 256,
            "c_addr_width": 32,
        },
    )
    t.intf(f"{board.DMA}/M_AXIS_MM2S", f"{spec.tcu}/instruction")
    for master, smc, hp in (
        (f"{board.DMA}/M_AXI_MM2S", "dma_smc", "S_AXI_HP2"),
        (f"{spec.tcu}/m_axi_dram0", "dram0_smc", "S_AXI_HP1"),
        (f"{spec.tcu}/m_axi_dram1", "dram1_smc", "S_AXI_HP3"),
    ):
        t.cell(smc, "xilinx.com:ip:smartconnect:1.0", {"NUM_SI": 1, "NUM_MI": 1})
        t.intf(master, f"{smc}/S00_AXI")
        t.intf(f"{smc}/M00_AXI", f"{PS}/{hp}")


def _buttons(t: TclWriter, spec: DesignSpec) -> None:
    t.comment("Buttons: channel 1 = BTN0-3, channel 2 = PMOD JA buttons; inputs, interrupt on change")
    config = {"C_ALL_INPUTS": 1, "C_GPIO_WIDTH": len(board.BUTTON_PINS), "C_INTERRUPT_PRESENT": 1}
    if spec.pmod_buttons:
        config |= {"C_IS_DUAL": 1, "C_ALL_INPUTS_2": 1, "C_GPIO2_WIDTH": spec.pmod_buttons}
    t.cell(board.BUTTONS_GPIO, "xilinx.com:ip:axi_gpio:2.0", config)
    t.intf_port("btns_4bits", "Master", "xilinx.com:interface:gpio_rtl:1.0")
    t.intf("btns_4bits", f"{board.BUTTONS_GPIO}/GPIO", a_is_port=True)
    if spec.pmod_buttons:
        t.intf_port("pmoda_btns", "Master", "xilinx.com:interface:gpio_rtl:1.0")
        t.intf("pmoda_btns", f"{board.BUTTONS_GPIO}/GPIO2", a_is_port=True)


def _video(t: TclWriter, spec: DesignSpec) -> None:
    t.comment("HDMI out: the PYNQ v3.0.1 base-overlay pipeline under video/hdmi_out (output only)")
    for path in (board.VIDEO, board.HDMI_OUT, FRONT):
        t.hier(path)
    t.cell(
        VDMA,
        "xilinx.com:ip:axi_vdma:6.3",
        {
            "c_include_s2mm": 0,
            "c_m_axi_mm2s_data_width": 32,
            "c_m_axis_mm2s_tdata_width": 32,
            "c_mm2s_genlock_mode": 1,
            "c_mm2s_linebuffer_depth": 512,
            "c_mm2s_max_burst_length": 32,
            "c_num_fstores": 4,
            "c_addr_width": 32,
        },
    )
    t.cell(VDMA_SC, "xilinx.com:ip:smartconnect:1.0", {"NUM_SI": 1, "NUM_MI": 1})
    t.intf(f"{VDMA}/M_AXI_MM2S", f"{VDMA_SC}/S00_AXI")
    t.intf(f"{VDMA_SC}/M00_AXI", f"{PS}/S_AXI_HP0")
    t.cell(UNPACK, "xilinx.com:hls:pixel_unpack:1.0")
    t.cell(REGSLICE, "xilinx.com:ip:axis_register_slice:1.1")
    t.cell(CCONV, "xilinx.com:hls:color_convert:1.0")
    t.cell(VTC, "xilinx.com:ip:v_tc:6.2", {"enable_detection": "false"})
    t.cell(DYNCLK, "digilentinc.com:ip:axi_dynclk:1.0")
    t.cell(
        VIDOUT,
        "xilinx.com:ip:v_axi4s_vid_out:4.0",
        {"C_ADDR_WIDTH": 11, "C_HAS_ASYNC_CLK": 1, "C_HYSTERESIS_LEVEL": 1024, "C_VTG_MASTER_SLAVE": 1},
    )
    t.cell(SWAP, "xilinx.com:user:color_swap:1.1")
    t.cell(RGB2DVI, "digilentinc.com:ip:rgb2dvi:1.2", {"kClkRange": 2, "kGenerateSerialClk": "false", "kRstActiveHigh": "false"})
    t.intf(f"{VDMA}/M_AXIS_MM2S", f"{UNPACK}/stream_in_32")
    t.intf(f"{UNPACK}/stream_out_24", f"{REGSLICE}/S_AXIS")
    t.intf(f"{REGSLICE}/M_AXIS", f"{CCONV}/stream_in_24")
    t.intf(f"{CCONV}/stream_out_24", f"{VIDOUT}/video_in")
    t.intf(f"{VTC}/vtiming_out", f"{VIDOUT}/vtiming_in")
    t.intf(f"{VIDOUT}/vid_io_out", f"{SWAP}/pixel_input")
    t.intf(f"{SWAP}/pixel_output", f"{RGB2DVI}/RGB")
    t.intf_port("hdmi_out", "Master", "digilentinc.com:interface:tmds_rtl:1.0")
    t.intf("hdmi_out", f"{RGB2DVI}/TMDS", a_is_port=True)
    t.net("pixel_clk", f"{DYNCLK}/PXL_CLK_O", f"{RGB2DVI}/PixelClk", f"{VIDOUT}/vid_io_out_clk", f"{VTC}/clk")
    t.net("pixel_clk_5x", f"{DYNCLK}/PXL_CLK_5X_O", f"{RGB2DVI}/SerialClk")
    t.net("pixel_clk_locked", f"{DYNCLK}/LOCKED_O", f"{RGB2DVI}/aRst_n")
    t.net("vtg_ce", f"{VIDOUT}/vtg_ce", f"{VTC}/gen_clken")


def _clock_nets(t: TclWriter, spec: DesignSpec) -> None:
    t.comment("Clock nets")
    lite = {"fclk0": [], "fclk1": []}
    for i, (_, _, _, domain) in enumerate(GP0_SLAVES):
        lite[domain] += [f"{GP0_IC}/M{i:02d}_ACLK"]
    t.net(
        "clk_100mhz", f"{PS}/FCLK_CLK0", f"{PS}/M_AXI_GP0_ACLK", f"{GP0_IC}/ACLK", f"{GP0_IC}/S00_ACLK", *lite["fclk0"],
        f"{board.BUTTONS_GPIO}/s_axi_aclk", f"{INTC}/s_axi_aclk", f"{VDMA}/s_axi_lite_aclk", f"{VTC}/s_axi_aclk",
        f"{DYNCLK}/s00_axi_aclk", f"{DYNCLK}/REF_CLK_I", f"{RST['fclk0']}/slowest_sync_clk",
        *([f"{CLK_WIZ}/clk_in1"] if spec.clock.source == "mmcm" else []),
    )  # fmt: skip
    t.net(
        "clk_142mhz", f"{PS}/FCLK_CLK1", f"{PS}/S_AXI_HP0_ACLK", *lite["fclk1"], f"{VDMA}/m_axi_mm2s_aclk",
        f"{VDMA}/m_axis_mm2s_aclk", f"{VDMA_SC}/aclk", f"{UNPACK}/ap_clk", f"{UNPACK}/control", f"{REGSLICE}/aclk",
        f"{CCONV}/ap_clk", f"{CCONV}/control", f"{VIDOUT}/aclk", f"{RST['fclk1']}/slowest_sync_clk",
    )  # fmt: skip
    t.net(
        "accel_clk", spec.accel_clock_pin, f"{spec.tcu}/clock", f"{PS}/M_AXI_GP1_ACLK", f"{PS}/S_AXI_HP1_ACLK",
        f"{PS}/S_AXI_HP2_ACLK", f"{PS}/S_AXI_HP3_ACLK", f"{GP1_SC}/aclk", f"{board.DMA}/s_axi_lite_aclk",
        f"{board.DMA}/m_axi_mm2s_aclk", "dma_smc/aclk", "dram0_smc/aclk", "dram1_smc/aclk",
        f"{RST['accel']}/slowest_sync_clk",
    )  # fmt: skip


def _reset_nets(t: TclWriter, spec: DesignSpec) -> None:
    t.comment("Reset nets (all active low)")
    lite = {"fclk0": [], "fclk1": []}
    for i, (_, _, _, domain) in enumerate(GP0_SLAVES):
        lite[domain] += [f"{GP0_IC}/M{i:02d}_ARESETN"]
    t.net("fclk0_interconnect_aresetn", f"{RST['fclk0']}/interconnect_aresetn", f"{GP0_IC}/ARESETN")
    t.net(
        "fclk0_peripheral_aresetn", f"{RST['fclk0']}/peripheral_aresetn", f"{GP0_IC}/S00_ARESETN", *lite["fclk0"],
        f"{board.BUTTONS_GPIO}/s_axi_aresetn", f"{INTC}/s_axi_aresetn", f"{VDMA}/axi_resetn",
        f"{VTC}/s_axi_aresetn", f"{DYNCLK}/s00_axi_aresetn",
    )  # fmt: skip
    t.net(
        "fclk1_peripheral_aresetn", f"{RST['fclk1']}/peripheral_aresetn", *lite["fclk1"], f"{VDMA_SC}/aresetn",
        f"{UNPACK}/ap_rst_n", f"{UNPACK}/ap_rst_n_control", f"{REGSLICE}/aresetn", f"{CCONV}/ap_rst_n",
        f"{CCONV}/ap_rst_n_control", f"{VIDOUT}/aresetn",
    )  # fmt: skip
    t.net(
        "accel_peripheral_aresetn", f"{RST['accel']}/peripheral_aresetn", f"{spec.tcu}/reset",
        f"{board.DMA}/axi_resetn", f"{GP1_SC}/aresetn", "dma_smc/aresetn", "dram0_smc/aresetn", "dram1_smc/aresetn",
    )  # fmt: skip


IRQ_SOURCES = (f"{VDMA}/mm2s_introut", f"{VTC}/irq", f"{board.BUTTONS_GPIO}/ip2intc_irpt", f"{board.DMA}/mm2s_introut")


def _interrupts(t: TclWriter, spec: DesignSpec) -> None:
    t.comment("Interrupts: 1-bit sources, contiguous from In0, one axi_intc on IRQ_F2P[0] (PYNQ's rule)")
    t.cell(IRQ_CONCAT, "xilinx.com:ip:xlconcat:2.1", {"NUM_PORTS": len(IRQ_SOURCES)})
    t.cell(INTC, "xilinx.com:ip:axi_intc:4.1")
    for i, source in enumerate(IRQ_SOURCES):
        t.net(f"irq_{i}", source, f"{IRQ_CONCAT}/In{i}")
    t.net("irq_vector", f"{IRQ_CONCAT}/dout", f"{INTC}/intr")
    t.net("irq_to_ps", f"{INTC}/irq", f"{PS}/IRQ_F2P")


def _addresses(t: TclWriter, spec: DesignSpec) -> None:
    t.comment("Address map: AXI-Lite slaves (64 KiB each) and 512 MiB of DDR for every master")
    for pin, segment, offset, _ in GP0_SLAVES:
        t.address(f"{PS}/Data", f"{pin.rsplit('/', 1)[0]}/{segment}", offset, LITE_SIZE)
    t.address(f"{PS}/Data", f"{board.DMA}/S_AXI_LITE/Reg", DMA_LITE_OFFSET, LITE_SIZE)
    for space, hp in (
        (f"{VDMA}/Data_MM2S", "HP0"),
        (f"{board.DMA}/Data_MM2S", "HP2"),
        (f"{spec.tcu}/m_axi_dram0", "HP1"),
        (f"{spec.tcu}/m_axi_dram1", "HP3"),
    ):
        t.address(space, f"{PS}/S_AXI_{hp}/{hp}_DDR_LOWOCM", 0, DDR_SIZE)


def block_design_tcl(spec: DesignSpec) -> str:
    """The Tcl that creates, wires, addresses and validates the block design `spec.bd_name`."""
    t = TclWriter()
    t.raw(f"create_bd_design {spec.bd_name}", "current_bd_instance /")
    for part in (
        _processing_system, _clocks_and_resets, _accelerator, _buttons, _video, _interrupts, _control_buses,
        _clock_nets, _reset_nets, _addresses,
    ):  # fmt: skip
        part(t, spec)
    t.comment("Check and save")
    t.raw("validate_bd_design", "save_bd_design")
    return t.text()
