"""One lock per output: a second writer of the same output fails at once with one line.

The lock is `flock` on a hidden file next to the output (`.NAME.lock`), released by the kernel
when the holder exits or is killed, and removed by the holder when it is done.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from safeio.atomic import make_folders
from safeio.checks import UsageError


def lock_path(output: str | Path) -> Path:
    output = Path(output)
    return output.parent / f".{output.name}.lock"


@dataclass
class OutputLock:
    """Exclusive, non-blocking lock on `output` (a file or folder that may not exist yet)."""

    output: Path
    what: str = "output"
    _fd: int | None = field(default=None, init=False, repr=False)
    _created: list[Path] = field(default_factory=list, init=False, repr=False)

    def acquire(self) -> "OutputLock":
        path = lock_path(self.output)
        self._created = make_folders(path.parent)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self._remove_created()
                raise UsageError(f"{self.what} {self.output} is being written by another process "
                                 f"(lock {path}); wait for it to finish") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a lock file its previous holder removed while we opened it
                self._fd = fd
                return self
            os.close(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        lock_path(self.output).unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None
        self._remove_created()

    def _remove_created(self) -> None:
        """Folders made for the lock go again if nothing else was written in them."""
        for folder in reversed(self._created):
            try:
                folder.rmdir()
            except OSError:
                break
        self._created = []

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextmanager
def output_lock(output: str | Path, what: str = "output",
                error: type[Exception] = UsageError) -> Iterator[OutputLock]:
    """`with output_lock(path, what, RoomError):` hold the lock of `path` for the block; a second
    writer gets `error` (the room's one-line error type) naming the output and the lock."""
    try:
        lock = OutputLock(Path(output), what).acquire()
    except UsageError as e:
        raise error(str(e)) from None
    try:
        yield lock
    finally:
        lock.release()
