"""Message payloads: the communicated tensors of a model as one validated uint8 blob.

Both ends know the layout (ordered tensor names and shapes, from the model and the run config),
so a message carries no names or shapes: tensors are laid out back to back in layout order,
as raw little-endian float32, or for ndim > 1 tensors under quantisation as packed b-bit codes
followed by, with `scale="affine"`, the float32 scale and zero of each dim-0 slice (`quant.py`), or
with `scale="pow2"`, one int8 exponent: symmetric codes in [-qmax, qmax] times 2^exponent per
tensor (`precision.quantizers.Pow2Quantizer`, stored offset by 2^(b-1); the unused lowest code is
rejected on decode). Optional global
magnitude pruning (`prune.py`) zeroes entries first, and optional DEFLATE (zlib) compresses the
blob. The blob travels as a single `flwr` `Array` of dtype uint8 (numpy `.npy`, never pickle).

Decoding validates everything before use: one uint8 1-D array, exact expected size (or, after
DEFLATE, a bounded decompression to the exact size), and finite values; otherwise
`MalformedUpdate` is raised and the caller drops the message.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch
from flwr.app import Array, ArrayRecord

from fl_bridge.errors import MalformedUpdate
from fl_bridge.precision.quantizers import Pow2Quantizer
from fl_bridge.prune import prune
from fl_bridge.quant import BITS, QuantTensor, dequantize, pack_bits, packed_size, quantize, unpack_bits

PAYLOAD_KEY = "payload"
SCALES = ("affine", "pow2")
Layout = list[tuple[str, tuple[int, ...]]]


@dataclass(frozen=True)
class CodecConfig:
    """How a message is encoded: bits (32 = float32, or 8/4/2), pruning rate, DEFLATE on/off, and
    the quantisation scale: affine per output channel, or power-of-two per tensor."""

    bits: int = 32
    prune_rate: float = 0.0
    deflate: bool = False
    scale: str = "affine"

    def check(self) -> "CodecConfig":
        if self.bits != 32 and self.bits not in BITS:
            raise ValueError(f"message bits must be 32 or one of {BITS} (got {self.bits})")
        if self.scale not in SCALES:
            raise ValueError(f"message scale must be one of {', '.join(SCALES)} (got {self.scale!r})")
        if not 0.0 <= self.prune_rate < 1.0:
            raise ValueError(f"pruning rate must be in [0, 1) (got {self.prune_rate})")
        return self


def quantised(shape: tuple[int, ...], bits: int) -> bool:
    """Whether a tensor of this shape travels as integer codes (ndim > 1 under quantisation)."""
    return bits != 32 and len(shape) > 1


def tensor_nbytes(shape: tuple[int, ...], bits: int, scale: str = "affine") -> int:
    """Bytes one tensor takes in an uncompressed payload."""
    numel = int(np.prod(shape))
    if quantised(shape, bits):
        return packed_size(numel, bits) + (1 if scale == "pow2" else 2 * 4 * shape[0])
    return 4 * numel


def payload_nbytes(layout: Layout, bits: int, scale: str = "affine") -> int:
    """Exact size of the uncompressed blob for this layout."""
    return sum(tensor_nbytes(shape, bits, scale) for _, shape in layout)


def _encode_pow2(x: np.ndarray, bits: int) -> list[bytes]:
    codes, exponent = Pow2Quantizer(bits).quantize(torch.from_numpy(np.asarray(x, dtype=np.float64)))
    if not -128 <= exponent <= 127:
        raise ValueError(f"power-of-two exponent {exponent} does not fit in int8")
    stored = (codes.numpy().astype(np.int64) + 2 ** (bits - 1)).astype(np.uint8)
    return [pack_bits(stored, bits).tobytes(), np.int8(exponent).tobytes()]


def _decode_pow2(chunk: np.ndarray, shape: tuple[int, ...], bits: int, name: str) -> np.ndarray:
    numel = int(np.prod(shape))
    codes = unpack_bits(chunk[:-1], bits, numel).astype(np.int64) - 2 ** (bits - 1)
    if codes.min(initial=0) < -(2 ** (bits - 1) - 1):
        raise MalformedUpdate(f"tensor {name} holds the code -2^{bits - 1}, outside the symmetric grid")
    exponent = int(chunk[-1:].view(np.int8)[0])
    return Pow2Quantizer.dequantize(torch.from_numpy(codes.astype(np.float64)), exponent).numpy().astype(
        np.float32).reshape(shape)


def encode(tensors: dict[str, np.ndarray], layout: Layout, codec: CodecConfig) -> ArrayRecord:
    """Encode `tensors` (float arrays, names and shapes as in `layout`) into an ArrayRecord."""
    codec.check()
    arrays = {n: np.asarray(tensors[n], dtype=np.float32) for n, _ in layout}
    for name, shape in layout:
        if arrays[name].shape != shape:
            raise ValueError(f"tensor {name} has shape {arrays[name].shape}, layout says {shape}")
    if codec.prune_rate > 0:
        arrays = prune(arrays, codec.prune_rate)
    parts: list[bytes] = []
    for name, shape in layout:
        if quantised(shape, codec.bits) and codec.scale == "pow2":
            parts += _encode_pow2(arrays[name], codec.bits)
        elif quantised(shape, codec.bits):
            q = quantize(arrays[name], codec.bits)
            parts += [q.packed.tobytes(), q.scale.astype("<f4").tobytes(), q.zero.astype("<f4").tobytes()]
        else:
            parts.append(arrays[name].astype("<f4").tobytes())
    blob = b"".join(parts)
    if codec.deflate:
        blob = zlib.compress(blob, 6)
    return ArrayRecord({PAYLOAD_KEY: Array(np.frombuffer(blob, dtype=np.uint8))})


def _payload_bytes(record: ArrayRecord) -> bytes:
    if not isinstance(record, ArrayRecord) or list(record.keys()) != [PAYLOAD_KEY]:
        raise MalformedUpdate(f"expected one array named {PAYLOAD_KEY!r}")
    arr = record[PAYLOAD_KEY]
    if arr.stype != "numpy.ndarray" or arr.dtype != "uint8" or len(arr.shape) != 1:
        raise MalformedUpdate(f"payload must be a 1-D uint8 numpy array (got {arr.dtype} {arr.shape} {arr.stype})")
    return arr.numpy().tobytes()


def _inflate(blob: bytes, expected: int) -> bytes:
    d = zlib.decompressobj()
    try:
        raw = d.decompress(blob, expected + 1)
    except zlib.error as e:
        raise MalformedUpdate(f"payload is not valid DEFLATE data ({e})") from None
    if len(raw) != expected or not d.eof or d.unconsumed_tail:
        raise MalformedUpdate(f"DEFLATE payload does not inflate to exactly {expected} bytes")
    return raw


def decode(record: ArrayRecord, layout: Layout, codec: CodecConfig) -> dict[str, np.ndarray]:
    """Validate and decode a payload into float32 tensors; `MalformedUpdate` on any defect."""
    blob = _payload_bytes(record)
    expected = payload_nbytes(layout, codec.bits, codec.scale)
    if codec.deflate:
        if len(blob) > expected + 1024:
            raise MalformedUpdate(f"compressed payload of {len(blob)} B exceeds the {expected} B limit")
        blob = _inflate(blob, expected)
    elif len(blob) != expected:
        raise MalformedUpdate(f"payload has {len(blob)} B, the layout needs exactly {expected} B")
    out, pos = {}, 0
    for name, shape in layout:
        n = tensor_nbytes(shape, codec.bits, codec.scale)
        chunk = np.frombuffer(blob, dtype=np.uint8, count=n, offset=pos)
        pos += n
        if quantised(shape, codec.bits) and codec.scale == "pow2":
            value = _decode_pow2(chunk, shape, codec.bits, name)
        elif quantised(shape, codec.bits):
            rows = shape[0]
            packed = chunk[: n - 8 * rows]
            scale = chunk[n - 8 * rows : n - 4 * rows].view("<f4").astype(np.float32)
            zero = chunk[n - 4 * rows :].view("<f4").astype(np.float32)
            value = dequantize(QuantTensor(packed, scale, zero, shape, codec.bits))
        else:
            value = chunk.view("<f4").astype(np.float32).reshape(shape)
        if not np.isfinite(value).all():
            raise MalformedUpdate(f"tensor {name} contains NaN or Inf")
        out[name] = value
    return out


def record_nbytes(record: ArrayRecord) -> int:
    """Bytes of a record as serialised by Flower (array data incl. .npy header, plus key names)."""
    return int(record.count_bytes())
