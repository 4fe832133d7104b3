"""Row bands of a planar padded buffer: which padded rows a band covers, which vectors are real.

A layer is computed band by band (all output rows at once when they fit). A band's accumulator
region is the contiguous run of the output buffer's padded rows it covers (the first band also
covers the top border rows, the last one the bottom rows), so one acc->local move stores it,
borders included, once the border vectors have been cleared.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tensil.compiler.memory import Buffer


@dataclass
class Band:
    """Output rows [r0, r1) and the padded rows [pr0, pr1) of the output buffer they cover."""

    r0: int
    r1: int
    pr0: int
    pr1: int


def band_of(buf: Buffer, r0: int, r1: int) -> Band:
    pr0 = 0 if r0 == 0 else r0 + buf.pad
    pr1 = buf.hp if r1 == buf.height else r1 + buf.pad
    return Band(r0, r1, pr0, pr1)


def split_bands(buf: Buffer, rows: int) -> list[Band]:
    """The buffer's rows in bands of `rows` output rows (the last one may be shorter)."""
    return [band_of(buf, r, min(r + rows, buf.height)) for r in range(0, buf.height, rows)]


def valid_mask(buf: Buffer, band: Band) -> np.ndarray:
    """(padded rows, Wp) booleans: which vectors of the band's region hold real values."""
    rows = np.arange(band.pr0, band.pr1)[:, None]
    cols = np.arange(buf.wp)[None, :]
    return ((rows >= band.r0 + buf.pad) & (rows < band.r1 + buf.pad)
            & (cols >= buf.pad) & (cols < buf.pad + buf.width))


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of the runs of True in a mask, flattened row-major."""
    m = np.concatenate([[False], mask.ravel(), [False]])
    d = np.diff(m.astype(np.int8))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return [(int(s), int(e - s)) for s, e in zip(starts, ends)]
