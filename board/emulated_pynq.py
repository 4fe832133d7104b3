"""An emulated PYNQ-Z1 with a Tensil TCU, so `board.tcu.TcuDriver` runs end to end off the board.

It mimics exactly the pynq surface the driver uses:
* `allocate(shape, dtype)` -> contiguous buffers with a `physical_address` (CMA-like, 4 KiB
  aligned addresses in one physical address space), `flush`/`invalidate`/`freebuffer`;
* `axi_dma_0.sendchannel.transfer(buffer, start, nbytes)` / `.idle` / `.wait()`, with PYNQ's
  checks (contiguous buffer, size limit, channel not idle);
* the TCU behind the DMA decodes the instruction stream for ITS architecture (the "bitstream"),
  applies Configure (DRAM offsets in 64 KiB units) by mapping DRAM0/DRAM1 onto the buffers found
  at those physical addresses, and runs everything else on `tensil.emulator.Machine`.
A program the TCU cannot execute (another architecture's encoding, addresses outside memory,
stalling instructions) leaves it faulted: like the real hardware it then never completes, and the
driver's timeout is what reports it. `hung=True` models an accelerator that never finishes.
"""

from __future__ import annotations

import logging

import numpy as np

from tensil.arch import Arch
from tensil.emulator import Dram, EmulatorError, Machine, build_plan
from tensil.isa import ConfigRegister, Configure, Layout, ProgramError, decode

log = logging.getLogger("board")
PAGE = 4096
DRAM_WINDOW = 1 << 16


class EmulatedBuffer(np.ndarray):
    """A numpy array standing for a `pynq.allocate` buffer (views keep the methods)."""

    memory: "PhysicalMemory"

    def __array_finalize__(self, obj):
        self.memory = getattr(obj, "memory", None)

    @property
    def physical_address(self) -> int:
        return self.memory.physical_address(self)

    def flush(self) -> None:        # CPU cache -> DDR: only flushed bytes reach the PL
        self.memory.cache_maintenance.append(("flush", self.nbytes))
        self.memory.sync(self, to_device=True)

    def invalidate(self) -> None:   # DDR -> CPU: the PL's writes are seen only after this
        self.memory.cache_maintenance.append(("invalidate", self.nbytes))
        self.memory.sync(self, to_device=False)

    def freebuffer(self) -> None:
        self.memory.free(self)


class PhysicalMemory:
    """Contiguous allocations at increasing physical addresses, found back by address.

    Each allocation has a host copy (what the CPU sees through its cache) and a DDR copy (what the
    PL sees): like a cacheable `pynq.allocate` buffer, data moves between them only on `flush`
    and `invalidate`, so a driver that forgets either gets stale data here too.
    """

    def __init__(self, base: int = 0x1800_0000):
        self._next = base
        self._blocks: list = []          # (physical start, host address, nbytes, array, DDR bytes)
        self.cache_maintenance: list = []   # (operation, bytes) the driver asked for

    def allocate(self, shape, dtype=np.uint32) -> EmulatedBuffer:
        array = np.zeros(shape, dtype=dtype)
        buf = array.view(EmulatedBuffer)
        buf.memory = self
        self._blocks.append((self._next, array.ctypes.data, array.nbytes, array, np.zeros(array.nbytes, np.uint8)))
        self._next += -(-array.nbytes // PAGE) * PAGE + PAGE
        return buf

    def free(self, buf: np.ndarray) -> None:
        host = buf.ctypes.data
        self._blocks = [b for b in self._blocks if not b[1] <= host < b[1] + max(b[2], 1)]

    def physical_address(self, buf: np.ndarray) -> int:
        host = buf.ctypes.data
        for phys, start, nbytes, *_ in self._blocks:
            if start <= host < start + max(nbytes, 1):
                return phys + host - start
        raise ValueError("buffer was not allocated by this device")

    def sync(self, buf: np.ndarray, to_device: bool) -> None:
        host = buf.ctypes.data
        for _, start, nbytes, _array, ddr in self._blocks:
            if start <= host < start + max(nbytes, 1):
                cpu = np.asarray(buf).reshape(-1).view(np.uint8)
                dev = ddr[host - start:host - start + cpu.size]
                if to_device:
                    dev[:] = cpu
                else:
                    cpu[:] = dev
                return
        raise ValueError("buffer was not allocated by this device")

    def window(self, phys: int) -> memoryview | None:
        """Bytes from physical address `phys` to the end of the allocation holding it."""
        for start, _, nbytes, _array, ddr in self._blocks:
            if start <= phys < start + nbytes:
                return memoryview(ddr)[phys - start:]
        return None


class EmulatedTcu:
    """The accelerator: an instruction-stream consumer over the emulated physical memory."""

    def __init__(self, arch: Arch, memory: PhysicalMemory, hung: bool = False):
        self.arch, self.memory, self.hung = arch, memory, hung
        self.layout = Layout.from_arch(arch)
        tiny = bytearray(arch.vector_bytes)
        self.machine = Machine(arch, dram0=tiny, dram1=bytearray(arch.vector_bytes))
        self.fault: str | None = None
        self.instructions = 0
        self._plans: dict = {}

    @property
    def busy(self) -> bool:
        return self.hung or self.fault is not None

    def consume(self, stream: bytes) -> None:
        if self.busy:
            return
        try:
            plan = self._plans.get(stream)
            if plan is None:
                plan = self._plans[stream] = self._cut(decode(stream, self.layout))
            for kind, payload in plan:
                if kind == "configure":
                    self._configure(payload)
                else:
                    self.machine.execute(payload)
            self.instructions += len(stream) // self.layout.instruction_bytes
        except (EmulatorError, ProgramError, ValueError) as exc:
            self.fault = str(exc)
            log.debug("board: emulated TCU faulted: %s", exc)

    def _cut(self, instrs: list) -> list:
        """Segments: Configure instructions apart, runs of other instructions as emulator plans."""
        out, run = [], []
        for instr in instrs:
            if isinstance(instr, Configure):
                if run:
                    out.append(("plan", build_plan(run, self.arch)))
                    run = []
                out.append(("configure", instr))
            else:
                run.append(instr)
        if run:
            out.append(("plan", build_plan(run, self.arch)))
        return out

    def _configure(self, instr: Configure) -> None:
        if instr.register not in (ConfigRegister.DRAM0_OFFSET, ConfigRegister.DRAM1_OFFSET):
            self.machine.config[instr.register] = instr.value
            return
        phys = (instr.value * DRAM_WINDOW) & 0xFFFF_FFFF
        window = self.memory.window(phys)
        if window is None:
            raise EmulatorError(f"DRAM offset {phys:#x} points at no memory")
        dram0 = instr.register == ConfigRegister.DRAM0_OFFSET
        depth = self.arch.dram0_depth if dram0 else self.arch.dram1_depth
        dram = Dram(self.arch, depth, window[:depth * self.arch.vector_bytes])
        if dram0:
            self.machine.dram0 = dram
        else:
            self.machine.dram1 = dram


class _SendChannel:
    """The MM2S channel of `axi_dma_0` in simple mode."""

    def __init__(self, tcu: EmulatedTcu, max_size: int):
        self._tcu, self._max_size = tcu, max_size
        self._stuck = False          # a transfer the accelerator never accepted
        self.error = False           # DMASR internal/slave/decode error bits (pynq's `error`)

    @property
    def idle(self) -> bool:
        return not self._stuck

    def transfer(self, array, start: int = 0, nbytes: int = 0) -> None:
        if not isinstance(array, EmulatedBuffer):
            raise RuntimeError("DMA transfers need a buffer from allocate()")
        if self._stuck:
            raise RuntimeError("DMA channel not idle")
        array.flush()                 # as pynq's send channel does before every transfer
        data = self._tcu.memory.window(array.physical_address)
        nbytes = nbytes or len(data) - start
        if nbytes > self._max_size:
            raise ValueError(f"transfer of {nbytes} bytes exceeds the DMA's {self._max_size}")
        self._tcu.consume(bytes(data[start:start + nbytes]))
        self._stuck = self._tcu.busy

    def wait(self) -> None:
        if self._stuck:
            raise RuntimeError("emulated DMA would wait forever: the accelerator does not accept instructions")


class EmulatedDma:
    def __init__(self, tcu: EmulatedTcu, buffer_max_size: int = (1 << 26) - 1):
        self.buffer_max_size = buffer_max_size
        self.sendchannel = _SendChannel(tcu, buffer_max_size)
        self.recvchannel = None


class EmulatedPynq:
    """What the driver needs of `pynq` + the overlay: `allocate` and `axi_dma_0`."""

    def __init__(self, arch: Arch, hung: bool = False, buffer_max_size: int = (1 << 26) - 1):
        self.memory = PhysicalMemory()
        self.tcu = EmulatedTcu(arch, self.memory, hung)
        self.axi_dma_0 = EmulatedDma(self.tcu, buffer_max_size)

    def allocate(self, shape, dtype=np.uint32) -> EmulatedBuffer:
        return self.memory.allocate(shape, dtype)
