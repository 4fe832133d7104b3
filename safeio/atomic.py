"""Atomic writes: a temp file (or folder) next to the target, renamed into place in one step.

Temp names carry the writer's pid (`.NAME.<pid>.<random>.tmp`), so a later writer can tell the
leftovers of a killed process (pid gone) from a live writer's temp and remove them.
"""

from __future__ import annotations

import ctypes
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ARTIFACT_MODE = 0o644   # every artifact file (mkstemp would give 0600)
FOLDER_MODE = 0o755     # every artifact folder (mkdtemp would give 0700)
_TEMP = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<pid>\d+)\.)?[A-Za-z0-9_]+\.(?P<kind>tmp|old)(?:\.[A-Za-z0-9]+)?$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folder: str | Path, name: str | None = None) -> list[Path]:
    """Remove temp files/folders of writers that no longer run (of `name` only, when given)."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        m = _TEMP.match(entry.name)
        if not m or (name is not None and m["name"] != name):
            continue
        pid = m["pid"]
        if pid is not None and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        if pid is not None and int(pid) == os.getpid():
            continue
        target = folder / m["name"]
        if m["kind"] == "old" and not target.exists():
            os.replace(entry, target)  # a kill between the two renames of replace_folder
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def make_folders(path: str | Path) -> list[Path]:
    """`mkdir -p` with mode 0755 for every folder it creates; returns those, outermost first."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for p in reversed(missing):
        p.mkdir(exist_ok=True)
        os.chmod(p, FOLDER_MODE)
    return list(reversed(missing))


def make_folder(path: str | Path) -> Path:
    """`mkdir -p` with mode 0755 for every folder it creates."""
    make_folders(path)
    return Path(path)


def _temp_name(path: Path) -> Path:
    return path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def temp_path(path: str | Path, suffix: str = "") -> Path:
    """A fresh temp name next to `path` that `remove_stale_temps` recognises (`suffix`, e.g.
    ".avi", for writers that choose the format by extension); the caller renames or removes it."""
    path = Path(path)
    make_folder(path.parent)
    remove_stale_temps(path.parent, path.name)
    return _temp_name(path).with_name(_temp_name(path).name + suffix)


def save_figure(fig, path: str | Path, **savefig: object) -> Path:
    """Lay out a matplotlib figure (tight, unless it has a layout engine of its own) and write it
    as a PNG atomically; the caller closes it (matplotlib itself is not imported here)."""
    path = Path(path)
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", **savefig)
    return path


@contextmanager
def atomic_path(path: str | Path, mode: int = ARTIFACT_MODE) -> Iterator[Path]:
    """Yield a temp path next to `path`; on success it replaces `path` in one rename (mode 0644),
    on failure (or a signal) it is removed, so `path` is never half-written. Stale temps of
    killed writers of the same file are removed first."""
    path = Path(path)
    make_folder(path.parent)
    remove_stale_temps(path.parent, path.name)
    tmp = _temp_name(path)
    try:
        tmp.touch(mode=0o600)
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


@contextmanager
def temp_folder(path: str | Path) -> Iterator[Path]:
    """Yield an empty temp folder next to `path` (mode 0755) and remove it if the block fails;
    the caller moves it into place with `replace_folder`."""
    path = Path(path)
    make_folder(path.parent)
    remove_stale_temps(path.parent, path.name)
    tmp = _temp_name(path)
    tmp.mkdir()
    os.chmod(tmp, FOLDER_MODE)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def replace_folder(tmp: str | Path, path: str | Path) -> Path:
    """Move the finished folder `tmp` to `path`. An old `path` is swapped with `tmp` in one step
    (then removed), so at every instant a complete folder is under `path`; where the kernel cannot
    swap, the old folder is renamed aside as `.NAME.<pid>.<random>.old`, which
    `remove_stale_temps` puts back if a kill left `path` missing."""
    tmp, path = Path(tmp), Path(path)
    if not path.exists():
        os.replace(tmp, path)
        return path
    if _exchange(tmp, path):
        shutil.rmtree(tmp, ignore_errors=True)
        return path
    old = _temp_name(path).with_suffix(".old")
    os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    return path
