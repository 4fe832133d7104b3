"""Run generated project Tcl in `tclsh` against the Vivado stand-in and load what it recorded."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from fpga.errors import StandinError

STANDIN_TCL = Path(__file__).resolve().parent / "standin" / "vivado_standin.tcl"


def record_design(create_tcl: str | Path) -> dict:
    """Execute `create_tcl` with the stand-in's commands; return the recorded design."""
    tclsh = shutil.which("tclsh")
    if tclsh is None:
        raise StandinError("tclsh is not on PATH (apt-get install tcl): it runs the Vivado stand-in")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "design.json"
        driver = Path(tmp) / "driver.tcl"
        driver.write_text(
            f"source {{{STANDIN_TCL}}}\nsource {{{Path(create_tcl).resolve()}}}\nstandin_dump {{{out}}}\n"
        )
        done = subprocess.run([tclsh, str(driver)], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
            raise StandinError(f"{create_tcl} fails in the Vivado stand-in: {lines[0] if lines else 'tclsh failed'}")
        design = json.loads(out.read_text())
    for table in [c["config"] for c in design["cells"].values()] + list(design["pin_properties"].values()):
        for key in [k for k in table if k.startswith("CONFIG.")]:
            table[key.removeprefix("CONFIG.")] = table.pop(key)
    return design
