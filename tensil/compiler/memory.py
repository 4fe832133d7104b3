"""Memory objects of the lowering: activation buffers, a first-fit allocator, the constants image.

Activation layout on chip and in DRAM0 (ours, internal): *planar padded* — channel tile t (A
channels per vector lane), padded row r, padded column c live at
`base + t*Hp*Wp + r*Wp + c`, with Hp = H + 2p, Wp = W + 2p and zero borders of width p.
A stride-1 3x3 convolution then reads, for every kernel tap, input vectors at a constant
offset from its output vectors, and padding taps read the zero border instead of needing
extra instructions. Graph inputs and outputs keep upstream Tensil's host layout (NHWC,
channels padded to A, `((y*W + x)*Ct + t)` vectors, see `tensil.layout`) so the PYNQ driver
and `pack_input`/`unpack_output` work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tensil.arch import Arch
from tensil.compiler.errors import CompileError
from tensil import fixed


def tiles(channels: int, a: int) -> int:
    return -(-channels // a)


@dataclass
class Buffer:
    """One activation in the planar padded layout, resident in `home` ('local' or 'dram0')."""

    tensor: str
    channels: int
    height: int
    width: int
    pad: int
    tiles: int
    home: str = "local"
    base: int = -1

    @property
    def hp(self) -> int:
        return self.height + 2 * self.pad

    @property
    def wp(self) -> int:
        return self.width + 2 * self.pad

    @property
    def plane(self) -> int:
        return self.hp * self.wp

    @property
    def size(self) -> int:
        return self.tiles * self.plane

    def addr(self, tile: int, row: int, col: int) -> int:
        """Address of padded coordinates (row, col) of channel tile `tile`."""
        return self.base + tile * self.plane + row * self.wp + col


@dataclass
class HostRegion:
    """A graph input or output in DRAM0, in upstream Tensil's NHWC vector layout."""

    tensor: str
    channels: int
    height: int
    width: int
    tiles: int
    base: int

    @property
    def size(self) -> int:
        return self.height * self.width * self.tiles

    def addr(self, tile: int, y: int, x: int) -> int:
        return self.base + (y * self.width + x) * self.tiles + tile


class Allocator:
    """First-fit allocator over [0, depth) (lowest free address wins)."""

    def __init__(self, depth: int, what: str):
        self.depth = depth
        self.what = what
        self.used: dict[int, int] = {}  # start -> size
        self.peak = 0

    def alloc(self, size: int) -> int | None:
        start = 0
        for s in sorted(self.used):
            if s - start >= size:
                break
            start = max(start, s + self.used[s])
        if start + size > self.depth:
            return None
        self.used[start] = size
        self.peak = max(self.peak, start + size)
        return start

    def free(self, start: int) -> None:
        del self.used[start]

    def largest_free(self) -> int:
        best, start = 0, 0
        for s in sorted(self.used):
            best = max(best, s - start)
            start = max(start, s + self.used[s])
        return max(best, self.depth - start)


@dataclass
class ConstPool:
    """The DRAM1 image (`.tdata`): raw vectors appended in first-use order."""

    arch: Arch
    dry: bool = False  # planning pass: count vectors only
    chunks: list[np.ndarray] = field(default_factory=list)
    size: int = 0
    overflow: dict[str, int] = field(default_factory=dict)
    count: dict[str, int] = field(default_factory=dict)

    def add_raw(self, vectors: np.ndarray) -> int:
        vectors = np.asarray(vectors, dtype=np.int64).reshape(-1, self.arch.array_size)
        addr = self.size
        if not self.dry:
            self.chunks.append(vectors)
        self.size += len(vectors)
        if self.size > self.arch.dram1_depth:
            raise CompileError(f"the network does not fit the architecture: its constants need more than "
                               f"{self.arch.dram1_depth} DRAM1 vectors")
        return addr

    def reserve(self, n: int) -> int:
        """Planning pass: account for n vectors without building them."""
        addr = self.size
        self.size += n
        if self.size > self.arch.dram1_depth:
            raise CompileError(f"the network does not fit the architecture: its constants need more than "
                               f"{self.arch.dram1_depth} DRAM1 vectors")
        return addr

    def add(self, values: np.ndarray, owner: str) -> int:
        """Quantize float vectors (round half up, saturating, as Tensil's compiler) and append."""
        if self.dry:
            return self.reserve(int(np.asarray(values).size) // self.arch.array_size)
        raw, n_over = fixed.quantize(values, self.arch.dtype, rounding="half_up")
        self.overflow[owner] = self.overflow.get(owner, 0) + n_over
        self.count[owner] = self.count.get(owner, 0) + int(np.asarray(values).size)
        return self.add_raw(raw)

    def raw(self) -> np.ndarray:
        if not self.chunks:
            return np.zeros((0, self.arch.array_size), dtype=np.int64)
        return np.concatenate(self.chunks)

    def to_bytes(self) -> bytes:
        return fixed.to_bytes(self.raw().reshape(-1), self.arch.dtype)
