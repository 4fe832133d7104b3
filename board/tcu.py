"""Our Tensil TCU driver for PYNQ (Python 3.10, numpy, pynq objects passed in).

What it does, and what it does better than Tensil's `tcu_pynq` driver (docs/tensil.md):
* DRAM0 (full depth: the completion probe lives at its top) and DRAM1 (only as large as the
  model's constants, not 24 MiB) in 64 KiB-aligned contiguous buffers, allocated once;
* Configure instructions point the TCU at them (offsets in 64 KiB units);
* the program plus the completion probe is copied ONCE into a DMA buffer at load time and every
  frame re-streams that buffer in chunks (no per-frame copy of ~1 MB of instructions);
* completion: the probe vector copied DRAM0 -> local -> DRAM0 after the program, polled with a
  timeout (the upstream driver spins forever, issue #87); DMA idleness is also polled with it;
* the model's architecture must equal the bitstream's (the upstream check is defeated by PEFSL);
* inputs are padded to the array width and converted with saturation (upstream wraps);
* a program that breaks a hardware rule of `tensil.hazards` (one the TCU would hang on or
  compute wrongly, e.g. back-to-back accumulating MatMuls into one address) is refused at load
  time with the instruction index and the rule, whoever compiled it.

`allocate(shape, dtype)` and `dma` are `pynq.allocate` and `overlay.axi_dma_0` on the board, and
the emulated device of `board.emulated_pynq` off the board: the same code runs on both.
"""

from __future__ import annotations

import math
import time
import numpy as np

from board.errors import AcceleratorTimeoutError, ArchMismatchError, BackendError
from tensil.arch import Arch
from tensil.fixed import from_bytes, to_bytes
from tensil.hazards import DriverProbe, HazardError, check_program
from tensil.isa import ConfigRegister, Configure, DataFlow, DataMove, Layout, NoOp, encode, encode_program
from tensil.layout import LayoutError, pack_input
from tensil.tmodel import LoadedModel

BLOCK = 1 << 16                       # DRAM offsets are configured in 64 KiB units
TIMEOUT_REGISTER_VALUE = 100          # the RTL reset value, as Tensil's driver sets it


class TcuDriver:
    """Runs a compiled model on a Tensil TCU reached through `dma` and physical memory."""

    def __init__(self, arch: Arch, dma, allocate, timeout_s: float = 2.0, max_chunk_bytes: int | None = None):
        self.arch = arch
        self.layout = Layout.from_arch(arch)
        self.dtype = arch.dtype
        self.timeout_s = timeout_s
        self._dma = dma
        self._allocate = allocate
        self._vector_bytes = arch.array_size * self.dtype.bytes_per_scalar
        step = math.lcm(self.layout.instruction_bytes, 8)      # whole instructions, whole 64-bit beats
        limit = max_chunk_bytes or int(getattr(dma, "buffer_max_size", (1 << 26) - 1))
        self._chunk = max(step, limit // step * step)
        self._pad_unit = step
        self._buffers: list = []
        self._dram1 = self._dram1_phys = None
        self._program_buffer = None
        self._program_bytes = 0
        self.model: LoadedModel | None = None
        self._dram0, dram0_phys = self._aligned(arch.dram0_depth * self._vector_bytes)
        probe = DriverProbe(arch)
        self._probe_src = probe.source * self._vector_bytes
        self._probe_dst = probe.target * self._vector_bytes
        self._probe_local = probe.local
        self._probe_pattern = np.full(self._vector_bytes, 0xFF, dtype=np.uint8)
        self.saturated_inputs = 0         # input values clipped to the fixed-point range, all runs
        try:
            self._configure((ConfigRegister.DRAM0_OFFSET, dram0_phys // BLOCK),
                            (ConfigRegister.TIMEOUT, TIMEOUT_REGISTER_VALUE))
        except BackendError:
            self.close()            # give the contiguous memory back (CMA is scarce on the board)
            raise

    # ----- memory ------------------------------------------------------------------------------
    def _aligned(self, nbytes: int) -> tuple[np.ndarray, int]:
        """A uint8 view of `nbytes` whose physical address is 64 KiB aligned, and that address."""
        try:
            buf = self._allocate((nbytes + BLOCK,), dtype=np.uint8)
        except Exception as exc:   # pynq raises plain RuntimeError/MemoryError on CMA exhaustion
            raise BackendError(f"cannot allocate {nbytes >> 20} MiB of contiguous memory for the "
                               f"accelerator ({exc}); reboot the board to defragment CMA") from None
        self._buffers.append(buf)
        phys = int(buf.physical_address)
        skip = -phys % BLOCK
        return buf[skip:skip + nbytes], phys + skip

    @staticmethod
    def _flush(view) -> None:
        """Cache clean of just the bytes written (PYNQ flushes whatever range it is given, and a
        24 MiB DRAM0 flush per frame would cost milliseconds on the Cortex-A9)."""
        flush = getattr(view, "flush", None)
        if flush is not None:
            flush()

    @staticmethod
    def _invalidate(view) -> None:
        invalidate = getattr(view, "invalidate", None)
        if invalidate is not None:
            invalidate()

    # ----- instruction stream ------------------------------------------------------------------
    def _probe_instructions(self) -> bytes:
        a, d = self._probe_local, self.arch.dram0_depth
        return encode_program([
            DataMove(DataFlow.DRAM0_TO_LOCAL, a, 0, d - 1, 0, 0),
            DataMove(DataFlow.LOCAL_TO_DRAM0, a, 0, d - 2, 0, 0),
        ], self.layout)

    def _padded(self, stream: bytes) -> bytes:
        noop = encode(NoOp(), self.layout)
        missing = -len(stream) % self._pad_unit
        return stream + noop * (missing // len(noop))

    def _stage(self, stream: bytes):
        buf = self._allocate((len(stream),), dtype=np.uint8)
        buf[:] = np.frombuffer(stream, dtype=np.uint8)
        self._flush(buf)
        self._buffers.append(buf)
        return buf

    def _configure(self, *settings) -> None:
        stream = encode_program([Configure(int(r), int(v)) for r, v in settings], self.layout)
        self._execute_once(self._padded(stream + self._probe_instructions()), what="configuration")

    def _execute_once(self, stream: bytes, what: str) -> None:
        """Stage a one-off stream, run it, and give its buffer back once the TCU has consumed it
        (on failure the DMA may still be reading it: it is then kept until `close`)."""
        buf = self._stage(stream)
        self._execute(buf, what=what)
        self._release(buf)

    def _release(self, buf) -> None:
        for i, b in enumerate(self._buffers):
            if b is buf:
                del self._buffers[i]
                free = getattr(buf, "freebuffer", None)
                if free is not None:
                    free()
                return

    def _execute(self, buffer, nbytes: int | None = None, what: str = "program") -> None:
        """Stream `buffer` through the instruction DMA and wait for the completion probe."""
        nbytes = len(buffer) if nbytes is None else nbytes
        source = self._dram0[self._probe_src:self._probe_src + self._vector_bytes]
        source[:] = self._probe_pattern
        probe = self._dram0[self._probe_dst:self._probe_dst + self._vector_bytes]
        probe[:] = 0
        self._flush(source)
        self._flush(probe)
        deadline = time.monotonic() + self.timeout_s
        channel = self._dma.sendchannel
        def dma_idle() -> bool:
            if getattr(channel, "error", False):   # DMASR internal/slave/decode error: halted for good
                raise BackendError(f"the instruction DMA reported an error during the {what} (DMA or TCU "
                                   f"not reaching DDR in this bitstream?); reload the bitstream")
            return channel.idle

        for start in range(0, nbytes, self._chunk):
            # PYNQ's DMA.wait() has no timeout; idleness is polled instead. (The idle bit is only
            # meaningful after a transfer, which is why it is checked after each one, not before.)
            try:
                channel.transfer(buffer, start=start, nbytes=min(self._chunk, nbytes - start))
            except (RuntimeError, ValueError, MemoryError) as exc:   # pynq's own checks, plain types
                if "not idle" in str(exc):
                    raise AcceleratorTimeoutError(
                        f"the instruction DMA refused the {what}: {exc} (the accelerator never finished an "
                        f"earlier request: restart the demo to reload the bitstream)") from None
                raise BackendError(f"the instruction DMA refused the {what}: {exc}") from None
            self._wait(dma_idle, deadline, what)
        def probe_landed() -> bool:
            self._invalidate(probe)
            return np.array_equal(probe, self._probe_pattern)

        self._wait(probe_landed, deadline, what)

    def _wait(self, done, deadline: float, what: str) -> None:
        while not done():
            if time.monotonic() > deadline:
                raise AcceleratorTimeoutError(
                    f"the accelerator did not finish the {what} within {self.timeout_s:g} s "
                    f"(bitstream not built for {self.arch.name}, or the TCU is hung)")
            time.sleep(0.0001)

    # ----- model -------------------------------------------------------------------------------
    def load_model(self, model: LoadedModel) -> None:
        """Place the constants in DRAM1 and stage the program; reject another architecture."""
        if not model.arch.same_hardware(self.arch):
            raise ArchMismatchError(
                f"the model was compiled for {model.arch.name} ({_describe(model.arch)}) but the "
                f"bitstream implements {self.arch.name} ({_describe(self.arch)})")
        try:
            check_program(model.instructions(), self.arch)
        except HazardError as exc:
            raise BackendError(f"refusing {model.manifest.name}: {exc}") from None
        manifest = model.manifest
        top = max((s.base + s.size for s in (*manifest.inputs, *manifest.outputs)), default=0)
        probe = DriverProbe(self.arch)
        if top > probe.target:
            raise BackendError(f"the model's inputs/outputs reach DRAM0 vector {top}, past the "
                               f"{probe.target} the driver leaves free for its completion probe")
        base = manifest.consts[0].base if manifest.consts else 0
        start, end = base * self._vector_bytes, base * self._vector_bytes + len(model.consts)
        if self._dram1 is None or len(self._dram1) < end:
            if self._dram1 is not None:               # a larger model: give the old DRAM1 back
                self._release(self._dram1_raw)
            self._dram1, self._dram1_phys = self._aligned(max(end, self._vector_bytes))
            self._dram1_raw = self._buffers[-1]
        self._dram1[start:end] = np.frombuffer(model.consts, dtype=np.uint8)
        self._flush(self._dram1[start:end])
        self._configure((ConfigRegister.DRAM1_OFFSET, self._dram1_phys // BLOCK))
        if manifest.load_consts_to_local and model.consts:
            n = len(model.consts) // self._vector_bytes
            if base + n > probe.local:
                raise BackendError(f"{n} constant vectors do not fit in local memory ({probe.local})")
            move = encode(DataMove(DataFlow.DRAM1_TO_LOCAL, base, 0, base, 0, n - 1), self.layout)
            self._execute_once(self._padded(move + self._probe_instructions()), what="constant preload")
        stream = self._padded(model.program + self._probe_instructions())
        if self._program_buffer is not None:         # another model: its program buffer is no longer needed
            self._release(self._program_buffer)
        self._program_buffer = self._stage(stream)
        self._program_bytes = len(stream)
        self.model = model

    def run(self, inputs: dict) -> dict:
        """`{input name: float array shaped as the ONNX input}` -> `{output name: raw (vectors, A)
        int64 array}` (unpack with `tensil.layout.unpack_output`); buffers are reused."""
        if self.model is None:
            raise BackendError("no model loaded")
        manifest = self.model.manifest
        for name in manifest.input_names:
            if name not in inputs:
                raise BackendError(f"missing input {name!r}")
            self._write(manifest.spans(name), inputs[name])
        self._execute(self._program_buffer, self._program_bytes)
        return {name: self._read(manifest.spans(name, outputs=True)) for name in manifest.output_names}

    def _write(self, spans, values: np.ndarray) -> None:
        try:
            raw, saturated = pack_input(values, self.arch)   # pad to A lanes, saturate to fixed point
        except LayoutError as exc:
            raise BackendError(f"bad accelerator input: {exc}") from None
        self.saturated_inputs += saturated
        need = sum(s.size for s in spans)
        if raw.shape[0] != need:
            raise BackendError(f"input {spans[0].name!r} packs into {raw.shape[0]} vectors, the model expects {need}")
        data = np.frombuffer(to_bytes(raw, self.dtype), dtype=np.uint8)
        offset = 0
        for span in spans:
            n = span.size * self._vector_bytes
            at = span.base * self._vector_bytes
            region = self._dram0[at:at + n]
            region[:] = data[offset:offset + n]
            self._flush(region)
            offset += n

    def _read(self, spans) -> np.ndarray:
        vb = self._vector_bytes
        regions = [self._dram0[s.base * vb:(s.base + s.size) * vb] for s in spans]
        for region in regions:
            self._invalidate(region)
        data = np.concatenate(regions)
        return from_bytes(data.tobytes(), self.dtype).reshape(-1, self.arch.array_size)

    def close(self) -> None:
        for buf in self._buffers:
            free = getattr(buf, "freebuffer", None)
            if free is not None:
                free()
        self._buffers.clear()


def _describe(arch: Arch) -> str:
    return f"{arch.data_type}, array {arch.array_size}, local {arch.local_depth}, acc {arch.accumulator_depth}"
