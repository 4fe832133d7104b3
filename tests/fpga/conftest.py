"""Fixtures of the fpga tests (the data they build lives in fpga_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fpga_fixtures import write_fake_pynq, write_fake_rtl
from tensil.arch import Arch


@pytest.fixture
def fake_pynq(tmp_path: Path) -> Path:
    return write_fake_pynq(tmp_path / "PYNQ")


@pytest.fixture
def rtl_factory(tmp_path: Path):
    def make(arch: Arch, axi_width: int = 64) -> Path:
        return write_fake_rtl(arch, tmp_path / f"rtl_{arch.name}_{axi_width}", axi_width)

    return make
