"""FedMPQ messages: a mixed-precision model as bit-planes on the wire.

Both ends know the layout (names and shapes) and the representation; the message carries, in
layout order, for every tensor with ndim > 1 (the conv/linear weights) a header of one uint8 (its
bits b) and one float32 (its step), then its b binary planes packed 8 per byte (`np.packbits`,
plane after plane, LSB plane first, the sign plane last in sign-magnitude), the last byte padded
with zeros; every other tensor (BatchNorm, biases, running statistics) as float32. One uint8 blob
in one `flwr` `Array`, like `fl_bridge.codec`. Decoding validates before use: a 1-D uint8 array,
bits in range, a finite positive step, the exact size implied by the headers, finite values.

`message_bits` is the information the message carries (b*numel + 8 + 32 per layer, 32 per float),
next to which the serialised bytes are measured.
"""

from __future__ import annotations

import math

import numpy as np
from flwr.app import Array, ArrayRecord

from fl_bridge.codec import PAYLOAD_KEY, Layout
from fl_bridge.errors import MalformedUpdate
from fl_bridge.fedmpq.planes import B_MAX, B_MIN, LayerCode, from_planes, planes
from fl_bridge.precision.accounting import MessageBits

HEADER_BYTES = 5  # uint8 bits + float32 step
BITS_FIELD, STEP_FIELD = 8, 32


def is_layer(shape: tuple[int, ...]) -> bool:
    """Whether a tensor travels as a fixed-point layer (the conv/linear weights)."""
    return len(shape) > 1


def layer_names(layout: Layout) -> list[str]:
    return [n for n, shape in layout if is_layer(shape)]


def layer_sizes(layout: Layout) -> list[int]:
    """m: the parameter count of every fixed-point layer, in layout order."""
    return [int(np.prod(shape)) for _, shape in layout if is_layer(shape)]


def encode(codes: dict[str, LayerCode], floats: dict[str, np.ndarray], layout: Layout) -> ArrayRecord:
    parts: list[bytes] = []
    for name, shape in layout:
        if is_layer(shape):
            code = codes[name]
            if code.codes.shape != shape:
                raise ValueError(f"layer {name} has shape {code.codes.shape}, layout says {shape}")
            parts += [np.uint8(code.bits).tobytes(), np.float32(code.step).astype("<f4").tobytes(),
                      np.packbits(planes(code).reshape(-1)).tobytes()]
        else:
            value = np.asarray(floats[name], dtype=np.float32)
            if value.shape != shape:
                raise ValueError(f"tensor {name} has shape {value.shape}, layout says {shape}")
            parts.append(value.astype("<f4").tobytes())
    return ArrayRecord({PAYLOAD_KEY: Array(np.frombuffer(b"".join(parts), dtype=np.uint8))})


def decode(record: ArrayRecord, layout: Layout, representation: str,
           b_min: int = B_MIN, b_max: int = B_MAX) -> tuple[dict[str, LayerCode], dict[str, np.ndarray]]:
    """(fixed-point layers, float tensors) of a message; `MalformedUpdate` on any defect."""
    if not isinstance(record, ArrayRecord) or list(record.keys()) != [PAYLOAD_KEY]:
        raise MalformedUpdate(f"expected one array named {PAYLOAD_KEY!r}")
    arr = record[PAYLOAD_KEY]
    if arr.stype != "numpy.ndarray" or arr.dtype != "uint8" or len(arr.shape) != 1:
        raise MalformedUpdate(f"payload must be a 1-D uint8 numpy array (got {arr.dtype} {arr.shape})")
    blob = arr.numpy()
    codes, floats, pos = {}, {}, 0

    def take(n: int, what: str) -> np.ndarray:
        nonlocal pos
        if pos + n > len(blob):
            raise MalformedUpdate(f"payload ends inside {what}")
        pos += n
        return blob[pos - n : pos]

    for name, shape in layout:
        numel = int(np.prod(shape))
        if is_layer(shape):
            head = take(HEADER_BYTES, f"the header of {name}")
            bits, step = int(head[0]), float(head[1:].view("<f4")[0])
            if not b_min <= bits <= b_max:
                raise MalformedUpdate(f"layer {name} claims {bits} bits (allowed {b_min}..{b_max})")
            if not (math.isfinite(step) and step > 0):
                raise MalformedUpdate(f"layer {name} has step {step}")
            packed = take((bits * numel + 7) // 8, f"the planes of {name}")
            p = np.unpackbits(packed, count=bits * numel).reshape(bits, numel).astype(bool)
            codes[name] = from_planes(p, bits, representation, shape, step)
        else:
            value = take(4 * numel, name).view("<f4").astype(np.float32).reshape(shape)
            if not np.isfinite(value).all():
                raise MalformedUpdate(f"tensor {name} contains NaN or Inf")
            floats[name] = value
    if pos != len(blob):
        raise MalformedUpdate(f"payload has {len(blob) - pos} B beyond what its headers describe")
    return codes, floats


def message_bits(layout: Layout, bits: dict[str, int]) -> MessageBits:
    """Bits of one message whose layers have the given bits: codes, per-layer headers, float32 tensors."""
    codes = scales = fp32 = 0
    for name, shape in layout:
        numel = int(np.prod(shape))
        if is_layer(shape):
            codes += bits[name] * numel
            scales += BITS_FIELD + STEP_FIELD
        else:
            fp32 += 32 * numel
    return MessageBits(codes, scales, fp32)
