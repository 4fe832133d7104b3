"""Atomic file writes, the one implementation every stage that may import `train` uses."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ARTIFACT_MODE = 0o644  # mkstemp creates 0600; artifacts are ordinary files


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp file next to `path`; when the block succeeds it replaces `path` in one rename,
    when it fails the temp file is removed, so `path` is never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, ARTIFACT_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
