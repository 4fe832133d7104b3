"""Communication accounting in bits, from a message layout and its codec: the information one
message carries (codes + scales + float32 tensors, no byte padding, no container), per direction
and per round, to be put next to the bytes measured on the serialised messages.

Per tensor: float32 = 32 bits per value; quantised (ndim > 1) = `bits` per value plus the
scales, 64 bits per dim-0 slice for affine codes (float32 scale and zero) or 8 bits per tensor
for power-of-two codes (one int8 exponent). BatchNorm running statistics are in the layout and
therefore counted (they travel).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from fl_bridge.codec import CodecConfig, Layout, quantised

POW2_EXPONENT_BITS = 8
AFFINE_SLICE_BITS = 64


@dataclass(frozen=True)
class MessageBits:
    """The bits of one message, split by kind."""

    codes: int  # integer codes of the quantised tensors
    scales: int  # their exponents or (scale, zero) pairs
    fp32: int  # float32 tensors

    @property
    def total(self) -> int:
        return self.codes + self.scales + self.fp32

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


def message_bits(layout: Layout, codec: CodecConfig) -> MessageBits:
    codes = scales = fp32 = 0
    for _, shape in layout:
        numel = int(np.prod(shape))
        if quantised(shape, codec.bits):
            codes += codec.bits * numel
            scales += POW2_EXPONENT_BITS if codec.scale == "pow2" else AFFINE_SLICE_BITS * shape[0]
        else:
            fp32 += 32 * numel
    return MessageBits(codes, scales, fp32)


def round_bits(layout: Layout, codec: CodecConfig, sent: int, arrived: int) -> dict:
    """`bits_down` (global model to each of `sent` clients) and `bits_up` (`arrived` replies)."""
    per_message = message_bits(layout, codec).total
    return {"bits_down": sent * per_message, "bits_up": arrived * per_message}
