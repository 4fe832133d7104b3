"""XDC constraints for every external port of the block design (pins from `fpga.board`)."""

from __future__ import annotations

from fpga import board


def _pin(port: str, package_pin: str, standard: str, extra: str = "") -> list[str]:
    lines = [
        f"set_property PACKAGE_PIN {package_pin} [get_ports {{{port}}}]",
        f"set_property IOSTANDARD {standard} [get_ports {{{port}}}]",
    ]
    if extra:
        lines.append(f"set_property {extra} [get_ports {{{port}}}]")
    return lines


def xdc(pmod_buttons: int) -> str:
    """Pins and I/O standards of the buttons, PMOD JA buttons and HDMI-out TMDS lanes."""
    lines = ["# PYNQ-Z1 pins (from the PYNQ v3.0.1 base overlay's base.xdc)", "", "# BTN0-3 (active high)"]
    for i, pin in enumerate(board.BUTTON_PINS):
        lines += _pin(f"btns_4bits_tri_i[{i}]", pin, "LVCMOS33")
    if pmod_buttons:
        lines += ["", "# Buttons on PMOD JA (pins 1-4, 7-10), pulled down: a press drives 3.3 V"]
    for i, pin in enumerate(board.PMOD_JA_PINS[:pmod_buttons]):
        lines += _pin(f"pmoda_btns_tri_i[{i}]", pin, "LVCMOS33", "PULLDOWN TRUE")
    lines += ["", "# HDMI out (TMDS)"]
    for suffix, pin in board.HDMI_OUT_PINS.items():
        lines += _pin(f"hdmi_out_{suffix}", pin, "TMDS_33")
    return "\n".join(lines) + "\n"
