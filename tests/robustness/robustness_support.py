"""Shared by the robustness tests: the tiny training flags, and the ways to damage an input file
(the 'bad file' classes of the matrix)."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

TINY_FIT = ["--feature-maps", "4", "--image-size", "16", "--epochs", "1", "--cycle-epochs", "1",
            "--batch-size", "512", "--val-episodes", "10", "--episodes", "20", "--no-compare-untrained",
            "--device", "cpu"]


def missing(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() else path.unlink()


def empty(path: Path) -> None:
    path.write_bytes(b"")


def truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


def bitflip(path: Path) -> None:
    """One flipped bit inside the payload: in the largest tensor record of a torch zip, else in
    the middle of the file."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            info = max(z.infolist(), key=lambda i: i.file_size)
        with open(path, "rb") as f:
            f.seek(info.header_offset + 26)
            name_len, extra_len = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
        _flip(path, info.header_offset + 30 + name_len + extra_len + info.file_size // 2)
    else:
        _flip(path, path.stat().st_size // 2)


def wrong_kind(path: Path) -> None:
    """A file of another kind under the expected name (here: a short text)."""
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    path.write_text("this is a text file, not the artifact you expect\n")


DAMAGES = {"missing": missing, "empty": empty, "truncated": truncated, "bitflip": bitflip, "wrong-kind": wrong_kind}
