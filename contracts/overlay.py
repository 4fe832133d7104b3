"""The PYNQ instance names of our bitstream: what `fpga` builds and the board binds to.

`fpga project` records them in `project.json`, `board bundle` copies them into the bundle's
manifest, and the board reads them from there; a bundle without the record gets these defaults.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from contracts.errors import ContractError


@dataclass(frozen=True)
class Instances:
    dma: str = "axi_dma_0"                 # the instruction DMA (MM2S) feeding the TCU
    buttons_gpio: str = "btns_gpio"        # AXI GPIO: ch1 = BTN0..3, ch2 = PMOD JA buttons
    hdmi_out: str = "video/hdmi_out"       # PYNQ's HDMI output hierarchy (base-overlay layout)

    @property
    def video(self) -> str:
        """The video hierarchy that holds the HDMI output (and its VDMA)."""
        return self.hdmi_out.rsplit("/", 1)[0]

    @classmethod
    def from_dict(cls, d: dict | None) -> "Instances":
        """From a manifest's `instances` record; missing names take the defaults, others are kept aside."""
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise ContractError(f"instances record {d!r} is not a mapping")
        values = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        bad = [k for k, v in values.items() if not isinstance(v, str) or not v]
        if bad:
            raise ContractError(f"instance name {bad[0]} = {values[bad[0]]!r} is not a name")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)
