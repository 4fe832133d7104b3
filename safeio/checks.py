"""Flag validation before any work: numbers finite and in range, names known, inputs readable,
outputs writable. Each check raises `UsageError` with one line naming the flag."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


class UsageError(ValueError):
    """A flag or path that cannot work; the message is one line for the user."""


def check_finite(flag: str, value: float) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{flag} {value}: must be a finite number")
    return value


def check_range(flag: str, value: float, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> float:
    """`value` finite and within [low, high] (open ends where asked; None = unbounded)."""
    check_finite(flag, value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        raise UsageError(f"{flag} {value}: must be in {interval}")
    return value


def check_int_range(flag: str, value: int, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{flag} {value!r}: must be an integer")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise UsageError(f"{flag} {value}: must be {bounds}")
    return value


def check_choice(flag: str, value: str, known: Iterable[str]) -> str:
    known = list(known)
    if value not in known:
        raise UsageError(f"{flag} {value!r}: unknown; choose one of {', '.join(known)}")
    return value


def check_input_file(flag: str, path: str | Path, what: str = "file") -> Path:
    """An existing, non-empty, readable regular file."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{flag} {path}: {what} does not exist")
    if not path.is_file():
        raise UsageError(f"{flag} {path}: is not a file")
    if path.stat().st_size == 0:
        raise UsageError(f"{flag} {path}: {what} is empty")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{flag} {path}: {what} is not readable")
    return path


def check_output(flag: str, path: str | Path, kind: str = "file") -> Path:
    """`path` can be written as a `kind` ("file" or "folder") without creating anything now:
    no existing component of it is a file, it is not of the other kind, and the deepest existing
    folder accepts a new file (probed, so it also holds for root and read-only mounts)."""
    path = Path(path)
    if str(path) in ("", "."):
        raise UsageError(f"{flag}: an output path is needed")
    if path.exists():
        if kind == "file" and path.is_dir():
            raise UsageError(f"{flag} {path} is a folder, not a file")
        if kind == "folder" and not path.is_dir():
            raise UsageError(f"{flag} {path} is a file, not a folder")
    parent = path if kind == "folder" and path.is_dir() else path.parent
    probe = parent
    while not probe.exists():
        if probe.is_symlink():
            raise UsageError(f"{flag} {path}: {probe} is a dangling link")
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{flag} {path}: {probe} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        raise UsageError(f"{flag} {path}: cannot write in {probe} ({e.strerror or e})") from None
    return path
