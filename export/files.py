"""Atomic file writes and content hashes for the export artifacts."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import stat
from pathlib import Path

from safeio import make_folder, remove_stale_temps


_PUBLIC_FILE_MODE = stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH  # 0644
# A JSON list of scalars (no nested containers, no strings) printed on one line.
_SCALAR_LIST = re.compile(r"\[\s+([^\[\]{}\"]*?)\s+\]")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_temp(path: Path, data: bytes) -> Path:
    """Write `data` to a hidden temp file next to `path` (same filesystem, so `os.replace` is atomic),
    mode 0644, named like `safeio`'s temps so leftovers of a killed writer are removed later."""
    make_folder(path.parent)
    remove_stale_temps(path.parent, path.name)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, _PUBLIC_FILE_MODE)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def commit_files(contents: dict[Path, bytes]) -> None:
    """Write every file to a temp file first, then rename them all into place.

    Nothing is renamed unless every temp file was written, so a failure leaves no partial artifact.
    """
    temps: dict[Path, Path] = {}
    try:
        for path, data in contents.items():
            temps[path] = write_temp(path, data)
        for path, tmp in temps.items():
            os.replace(tmp, path)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


def _jsonable(value: object) -> object:
    """Tensors and numpy values found in checkpoint metrics become plain numbers or lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def json_bytes(obj: object) -> bytes:
    """Indented JSON whose number lists stay on one line (a base mean is hundreds of numbers)."""
    text = json.dumps(obj, indent=2, default=_jsonable)
    return (_SCALAR_LIST.sub(lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n").encode()
