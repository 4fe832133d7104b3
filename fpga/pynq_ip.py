"""The PYNQ repository checkout that provides the HDMI-out video IP (`--pynq-dir`).

Folders of `boards/ip` at PYNQ v3.0.1 that the HDMI-out path needs:
packaged IP `rgb2dvi_v1_2`, `axi_dynclk_v1_0`, `color_swap_1.1`, the TMDS interface
definition `if/tmds_v1_0`, and the Vitis HLS sources `hls/color_convert`, `hls/pixel_unpack`
(built into `solution1/impl/ip` by `vitis_hls -f <ip>/script.tcl` before Vivado sees them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from fpga.errors import PynqCheckoutError

PYNQ_VERSION = "v3.0.1"
PACKAGED_IP = ("rgb2dvi_v1_2", "axi_dynclk_v1_0", "color_swap_1.1")
INTERFACE_DIR = "if/tmds_v1_0"
HLS_IP = ("color_convert", "pixel_unpack")


@dataclass(frozen=True)
class PynqIp:
    """Paths inside a checked PYNQ checkout."""

    root: str
    ip_repo: str
    hls_dirs: tuple[str, ...]

    def hls_ip_dir(self, name: str) -> str:
        return str(Path(self.ip_repo) / "hls" / name / "solution1" / "impl" / "ip")

    def to_json_dict(self) -> dict:
        return asdict(self)


def check_pynq_checkout(pynq_dir: str | Path) -> PynqIp:
    """Check that `pynq_dir` is a PYNQ checkout with the video IP; PynqCheckoutError otherwise."""
    root = Path(pynq_dir)
    if not root.is_dir():
        raise PynqCheckoutError(
            f"PYNQ checkout {root} does not exist (git clone -b {PYNQ_VERSION} https://github.com/Xilinx/PYNQ)"
        )
    ip_repo = root / "boards" / "ip"
    if not ip_repo.is_dir():
        raise PynqCheckoutError(f"{root} is not a PYNQ checkout: boards/ip is missing")
    missing = [name for name in PACKAGED_IP if not (ip_repo / name / "component.xml").is_file()]
    missing += [INTERFACE_DIR] if not (ip_repo / INTERFACE_DIR).is_dir() else []
    missing += [f"hls/{name}/script.tcl" for name in HLS_IP if not (ip_repo / "hls" / name / "script.tcl").is_file()]
    if missing:
        raise PynqCheckoutError(
            f"{ip_repo} lacks {', '.join(missing)} (the HDMI-out IP of PYNQ {PYNQ_VERSION})"
        )
    return PynqIp(
        root=str(root.resolve()),
        ip_repo=str(ip_repo.resolve()),
        hls_dirs=tuple(str((ip_repo / "hls" / name).resolve()) for name in HLS_IP),
    )
