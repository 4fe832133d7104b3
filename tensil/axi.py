"""How the TCU's DRAM ports cut a DataMove into AXI bursts, and which bursts cross 4 KiB.

Measured on Tensil's generated RTL (64-bit AXI, `custom_perf`):

* A DataMove with DRAM stride code 0 is one request, pre-cut into pieces of at most 255 beats
  (85 vectors of 24 bytes); each piece is then cut at 4 KiB boundaries at beat granularity,
  so a vector may straddle two bursts.
* Exception: when a burst's *last* beat starts exactly on a 4 KiB boundary, it is not cut and
  crosses the boundary, which the AXI specification forbids. With 24-byte vectors that is a
  piece ending on vector 170 (mod 512): its third beat starts on the boundary.
* A DataMove with a non-zero DRAM stride is one burst per vector.
* DRAM byte address = region base + vector * vector_bytes, and the drivers (ours and Tensil's)
  put both DRAM regions on 64 KiB boundaries, so 4 KiB arithmetic on the offset is exact.

The data were correct with ideal memories; what the Zynq HP ports do with such a burst is
unknown, so the compiler avoids them (`safe_move_chunks`) and the report counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

from tensil.arch import Arch
from tensil.isa import DataFlow, DataMove, Instruction

AXI_BEAT_BYTES = 8  # the TCU's DRAM ports are 64 bits wide
MAX_BURST_BEATS = 255  # AxLEN <= 254: requests are pre-cut into pieces of 255 beats
PAGE_BYTES = 4096  # AXI bursts must not cross a 4 KiB boundary


@dataclass(frozen=True)
class BurstGeometry:
    """The burst arithmetic of one architecture."""

    vector_bytes: int

    @classmethod
    def of(cls, arch: Arch) -> "BurstGeometry":
        return cls(arch.vector_bytes)

    @property
    def beats_per_vector(self) -> int:
        return -(-self.vector_bytes // AXI_BEAT_BYTES)

    @property
    def piece_vectors(self) -> int:
        """Vectors in one pre-cut piece (85 for 24-byte vectors)."""
        return max(1, MAX_BURST_BEATS // self.beats_per_vector)

    def piece_crosses(self, first: int, last: int) -> bool:
        """True when the piece of vectors first..last ends with a burst crossing 4 KiB."""
        beats = (last - first + 1) * self.beats_per_vector
        last_beat = first * self.vector_bytes + (beats - 1) * AXI_BEAT_BYTES
        return beats > 1 and last_beat % PAGE_BYTES == 0

    def pieces(self, addr: int, n: int, step: int = 1) -> Iterator[tuple[int, int]]:
        """(first, last) DRAM vector of every piece of a move of n vectors from `addr`."""
        if step != 1:
            for i in range(n):
                yield addr + i * step, addr + i * step
            return
        for start in range(0, n, self.piece_vectors):
            yield addr + start, addr + min(n, start + self.piece_vectors) - 1

    def crossings(self, addr: int, n: int, step: int = 1) -> int:
        """Bursts of this move that would cross a 4 KiB boundary."""
        return sum(self.piece_crosses(a, b) for a, b in self.pieces(addr, n, step))

    def safe_chunks(self, addr: int, n: int, max_n: int) -> list[tuple[int, int]]:
        """Cut a stride-1 move of n vectors into (offset, count) moves of at most max_n vectors
        so that no piece ends on a crossing vector, except the move's own last vector (a move
        that ends there crosses however it is cut: only data placement avoids that)."""
        chunks: list[tuple[int, int]] = []
        done = 0
        while done < n:
            k = min(max_n, n - done)
            for first, last in self.pieces(addr + done, k):
                if last != addr + n - 1 and self.piece_crosses(first, last):
                    k = max(1, last - (addr + done))  # end this move one vector earlier
                    break
            chunks.append((done, k))
            done += k
        return chunks


def move_crossings(ins: DataMove, geometry: BurstGeometry) -> int:
    """Crossing bursts of one DataMove (0 for moves that do not touch DRAM)."""
    if not DataFlow(ins.flow).is_dram:
        return 0
    return geometry.crossings(ins.addr, ins.size + 1, 1 << ins.stride)


def count_4k_crossings(instrs: Sequence[Instruction], arch: Arch) -> int:
    """Bursts of a program that would cross a 4 KiB boundary under the RTL's burst splitting."""
    geometry = BurstGeometry.of(arch)
    return sum(move_crossings(i, geometry) for i in instrs if isinstance(i, DataMove))
