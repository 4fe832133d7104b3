"""Paths and names of every artifact (docs/architecture.md, "Artifact contracts").

Each function takes the artifact's name (and arch, clock) and the build folder, and returns the
path as a string, so that dataclass defaults and CLI defaults can use it directly.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from contracts.errors import ContractError

BUILD = "build"
DEFAULT_NAME = "default"          # `<name>` of the embedded default
DEFAULT_ARCH = "custom_perf"      # PEFSL's accelerator (tensil/archs/custom_perf.tarch)
DEFAULT_MHZ = 50.0                # accelerator clock of the embedded default
BUNDLE_MANIFEST = "model.json"    # contract 5's manifest, inside the bundle folder

_FPGA_DIR = re.compile(r"^(?P<arch>[A-Za-z0-9_]+)_(?P<mhz>\d+(?:\.\d+)?)MHz$")


def _join(build: str | Path, *parts: str) -> str:
    return str(Path(build).joinpath(*parts))


def backbone_path(name: str = DEFAULT_NAME, build: str | Path = BUILD) -> str:
    """Contract 1: `build/backbone/<name>.pt`."""
    return _join(build, "backbone", f"{name}.pt")


def export_dir(build: str | Path = BUILD) -> str:
    return _join(build, "export")


def onnx_path(name: str = DEFAULT_NAME, build: str | Path = BUILD) -> str:
    """Contract 2: `build/export/<name>.onnx` (its sidecar `<name>.json` next to it)."""
    return _join(build, "export", f"{name}.onnx")


def safe_model_name(text: str) -> str:
    """Upstream Tensil's rule for model names: every character outside ASCII letters, digits,
    whitespace and `:` becomes `_`."""
    return "".join(ch if ch.isalnum() and ch.isascii() or ch.isspace() or ch == ":" else "_" for ch in text)


def compiled_name(name: str, arch: str) -> str:
    """Contract 3's model name: `<name>_<arch>` (the name under upstream's character rule)."""
    return f"{safe_model_name(name)}_{arch}"


def tensil_dir(build: str | Path = BUILD) -> str:
    return _join(build, "tensil")


def tmodel_path(name: str = DEFAULT_NAME, arch: str = DEFAULT_ARCH, build: str | Path = BUILD) -> str:
    """Contract 3: `build/tensil/<name>_<arch>.tmodel` (with `.tprog`, `.tdata`, `.report.json`)."""
    return _join(build, "tensil", f"{compiled_name(name, arch)}.tmodel")


def fpga_dir_name(arch: str = DEFAULT_ARCH, mhz: float = DEFAULT_MHZ) -> str:
    """Contract 4's folder name: `<arch>_<MHz>MHz` (`custom_perf_50MHz`, `pynqz1_142.857MHz`)."""
    return f"{arch}_{mhz:g}MHz"


def parse_fpga_dir_name(folder_name: str) -> tuple[str, float] | None:
    """`(arch, MHz)` of a folder named by `fpga_dir_name`, None for any other name."""
    m = _FPGA_DIR.match(folder_name)
    return (m["arch"], float(m["mhz"])) if m else None


def fpga_dir(arch: str = DEFAULT_ARCH, mhz: float = DEFAULT_MHZ, build: str | Path = BUILD) -> str:
    """Contract 4: `build/fpga/<arch>_<MHz>MHz`."""
    return _join(build, "fpga", fpga_dir_name(arch, mhz))


def rtl_dir(arch: str = DEFAULT_ARCH, build: str | Path = BUILD) -> str:
    """The Tensil RTL of an architecture: `build/fpga/rtl_<arch>`."""
    return _join(build, "fpga", f"rtl_{arch}")


def bundle_dir(name: str = DEFAULT_NAME, build: str | Path = BUILD) -> str:
    """Contract 5: `build/bundle/<name>`."""
    return _join(build, "bundle", name)


def bundle_file(bundle: str | Path, role: str) -> Path:
    """The file a bundle's manifest names for `role` (`onnx`, `tmodel`, `bitstream`, `hwh`, ...)."""
    manifest = Path(bundle) / BUNDLE_MANIFEST
    try:
        name = json.loads(manifest.read_text())["files"][role]
    except OSError:
        raise ContractError(f"bundle manifest {manifest} is missing") from None
    except (ValueError, KeyError, TypeError):
        raise ContractError(f"bundle manifest {manifest} names no {role} file") from None
    if not isinstance(name, str) or Path(name).name != name:
        raise ContractError(f"bundle manifest {manifest}: the {role} file {name!r} is not a plain file name")
    return Path(bundle) / name


def fl_run_dir(run: str = DEFAULT_NAME, build: str | Path = BUILD) -> str:
    """Contract 6: `build/fl/<run>`."""
    return _join(build, "fl", run)
