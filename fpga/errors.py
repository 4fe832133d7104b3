"""The exceptions of the fpga stage: each carries one line the CLI prints as is."""

from __future__ import annotations


class FpgaError(RuntimeError):
    """Base of every user-facing error of `python -m fpga`."""


class ClockError(FpgaError):
    """A requested accelerator clock that the PYNQ-Z1 clocking cannot make."""


class RtlError(FpgaError):
    """Tensil RTL missing, unreadable, or generated for another architecture."""


class PynqCheckoutError(FpgaError):
    """The PYNQ repository checkout lacks the video IP the HDMI output needs."""


class VivadoError(FpgaError):
    """Vivado is absent, failed, or produced no bitstream."""


class TimingError(FpgaError):
    """The implemented design misses timing by more than the allowed margin."""


class StandinError(FpgaError):
    """Generated Tcl that fails in the Vivado stand-in (it references something that does not exist)."""
