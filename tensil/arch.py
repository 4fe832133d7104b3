"""Tensil architecture files (`.tarch`): parsing, validation and the shipped architectures.

A `.tarch` is a JSON object with exactly eleven keys (Tensil's Scala reader and its PYNQ
driver both break on a missing or an extra key). Numpy-free and torch-free: `board/` uses it
on the PYNQ-Z1 (Python 3.10).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from contracts import DEFAULT_ARCH  # noqa: F401 (the default architecture, re-exported for tensil's users)

ARCH_DIR = Path(__file__).resolve().parent / "archs"


class ArchError(ValueError):
    """A `.tarch` that is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class DataType:
    """A Tensil scalar type: two's-complement fixed point with `frac_bits` fractional bits."""

    name: str
    bits: int
    frac_bits: int
    bytes_per_scalar: int

    @property
    def scale(self) -> int:
        return 1 << self.frac_bits

    @property
    def min_raw(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def max_raw(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def min_value(self) -> float:
        return self.min_raw / self.scale

    @property
    def max_value(self) -> float:
        return self.max_raw / self.scale


DATA_TYPES: dict[str, DataType] = {
    "FP8BP4": DataType("FP8BP4", 8, 4, 1),
    "FP16BP8": DataType("FP16BP8", 16, 8, 2),
    "FP18BP10": DataType("FP18BP10", 18, 10, 4),
    "FP32BP16": DataType("FP32BP16", 32, 16, 4),
}


@dataclass(frozen=True)
class Arch:
    """The eleven keys of a `.tarch`, with the same names and meaning as Tensil's."""

    data_type: str
    array_size: int
    dram0_depth: int
    dram1_depth: int
    local_depth: int
    accumulator_depth: int
    simd_registers_depth: int
    stride0_depth: int
    stride1_depth: int
    number_of_threads: int
    thread_queue_depth: int
    name: str = "custom"

    @property
    def dtype(self) -> DataType:
        return DATA_TYPES[self.data_type]

    @property
    def vector_bytes(self) -> int:
        """Bytes of one vector of `array_size` scalars in DRAM and in the files."""
        return self.array_size * self.dtype.bytes_per_scalar

    def to_json_dict(self) -> dict:
        """The eleven keys only, in Tensil's order (what `.tarch` and `.tmodel` files hold)."""
        d = asdict(self)
        d.pop("name")
        return d

    def same_hardware(self, other: "Arch") -> bool:
        return self.to_json_dict() == other.to_json_dict()


ARCH_KEYS: tuple[str, ...] = tuple(f.name for f in fields(Arch) if f.name != "name")


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def validate(arch: Arch) -> Arch:
    """Raise ArchError naming the first inconsistency; return the arch unchanged otherwise."""
    if arch.data_type not in DATA_TYPES:
        known = ", ".join(DATA_TYPES)
        raise ArchError(f"{arch.name}: data_type {arch.data_type!r} is not one of {known}")
    ints = {k: getattr(arch, k) for k in ARCH_KEYS if k != "data_type"}
    for key, value in ints.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise ArchError(f"{arch.name}: {key} must be an integer, got {value!r}")
    if not 2 <= arch.array_size <= 256:
        raise ArchError(f"{arch.name}: array_size {arch.array_size} is outside 2..256")
    for key in ("dram0_depth", "dram1_depth"):
        if not _is_power_of_two(ints[key]) or ints[key] > 2**32:
            raise ArchError(f"{arch.name}: {key} {ints[key]} must be a power of two up to 2^32")
    for key in ("local_depth", "accumulator_depth"):
        if not 1 <= ints[key] <= 2**16:
            raise ArchError(f"{arch.name}: {key} {ints[key]} is outside 1..65536")
    if not 0 <= arch.simd_registers_depth <= 16:
        raise ArchError(f"{arch.name}: simd_registers_depth {arch.simd_registers_depth} is outside 0..16")
    for key in ("stride0_depth", "stride1_depth"):
        if not 1 <= ints[key] <= 16:
            raise ArchError(f"{arch.name}: {key} {ints[key]} is outside 1..16")
    if arch.number_of_threads not in (1, 2):
        raise ArchError(f"{arch.name}: number_of_threads must be 1 or 2, got {arch.number_of_threads}")
    if arch.thread_queue_depth < 1:
        raise ArchError(f"{arch.name}: thread_queue_depth must be positive")
    if arch.accumulator_depth > arch.local_depth:
        raise ArchError(
            f"{arch.name}: accumulator_depth {arch.accumulator_depth} exceeds local_depth {arch.local_depth}"
        )
    return arch


def from_dict(d: dict, name: str = "custom") -> Arch:
    """Build and validate an Arch from the JSON object of a `.tarch`."""
    if not isinstance(d, dict):
        raise ArchError(f"{name}: a .tarch must be a JSON object")
    missing = [k for k in ARCH_KEYS if k not in d]
    extra = sorted(set(d) - set(ARCH_KEYS))
    if missing:
        raise ArchError(f"{name}: missing key(s) {', '.join(missing)} (a .tarch needs all eleven)")
    if extra:
        raise ArchError(f"{name}: unknown key(s) {', '.join(extra)} (Tensil's tools reject them)")
    return validate(Arch(**{k: d[k] for k in ARCH_KEYS}, name=name))


def shipped_archs() -> list[str]:
    return sorted(p.stem for p in ARCH_DIR.glob("*.tarch"))


def load_arch(name_or_path: str | Path) -> Arch:
    """Load a shipped architecture by name (`custom_perf`, `pynqz1`) or a `.tarch` file by path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = ARCH_DIR / f"{name_or_path}.tarch"
        if not path.exists():
            raise ArchError(
                f"unknown architecture {name_or_path!r}: shipped ones are {', '.join(shipped_archs())}, "
                "or give a path to a .tarch file"
            )
    if not path.is_file():
        raise ArchError(f"architecture file {path} does not exist")
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArchError(f"{path}: not valid JSON ({e})") from None
    return from_dict(d, name=path.stem)


def save_arch(arch: Arch, path: str | Path) -> None:
    """Write a `.tarch` atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(arch.to_json_dict(), indent=4) + "\n")
    tmp.replace(path)
