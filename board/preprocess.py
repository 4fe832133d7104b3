"""Camera frame -> backbone input, exactly as the backbone saw images in training.

PEFSL's demo normalised with the wrong operator precedence and the wrong constants, fed BGR as
RGB and squashed a 4:3 frame into a square. Here: BGR -> RGB (when the bundle says RGB), resize the
short side to `resize` (INTER_AREA), centre-crop `image_size`, `(x / 255 - mean) / std`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from board.errors import BundleError


@dataclass(frozen=True)
class Preprocessing:
    """The preprocessing recorded with the backbone (contract 1, copied into model.json)."""

    image_size: int
    resize: int
    mean: tuple
    std: tuple
    channel_order: str = "RGB"

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        try:
            prep = cls(
                image_size=int(d["image_size"]),
                resize=int(d.get("resize", d["image_size"])),
                mean=tuple(float(v) for v in d["mean"]),
                std=tuple(float(v) for v in d["std"]),
                channel_order=str(d.get("channel_order", "RGB")).upper(),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"bad preprocessing in model.json: {exc!r}") from None
        if prep.resize < prep.image_size or len(prep.mean) != 3 or len(prep.std) != 3:
            raise BundleError(f"bad preprocessing in model.json: {d}")
        if prep.channel_order not in ("RGB", "BGR"):
            raise BundleError(f"unknown channel order {prep.channel_order!r} in model.json")
        return prep

    def to_dict(self) -> dict:
        return {"image_size": self.image_size, "resize": self.resize, "mean": list(self.mean),
                "std": list(self.std), "channel_order": self.channel_order}


def crop_for_model(frame_bgr: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """Resize the short side to `prep.resize` and centre-crop: (S, S, 3) uint8, still BGR."""
    h, w = frame_bgr.shape[:2]
    scale = prep.resize / min(h, w)
    new_w, new_h = max(prep.resize, round(w * scale)), max(prep.resize, round(h * scale))
    if (new_w, new_h) != (w, h):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        frame_bgr = cv2.resize(frame_bgr, (new_w, new_h), interpolation=interp)
    top, left = (new_h - prep.image_size) // 2, (new_w - prep.image_size) // 2
    return frame_bgr[top:top + prep.image_size, left:left + prep.image_size]


class Preprocessor:
    """Turns BGR camera frames into normalised NCHW float32 batches of one, reusing its buffers."""

    def __init__(self, prep: Preprocessing):
        self.prep = prep
        # (x / 255 - mean) / std == x * scale + offset, per channel, in the model's channel order.
        std = np.asarray(prep.std, dtype=np.float32)
        self._scale = (1.0 / (255.0 * std)).reshape(3, 1, 1)
        self._offset = (-np.asarray(prep.mean, dtype=np.float32) / std).reshape(3, 1, 1)
        self._out = np.empty((1, 3, prep.image_size, prep.image_size), dtype=np.float32)

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 BGR -> (1, 3, S, S) float32; the returned array is reused next call."""
        crop = crop_for_model(frame_bgr, self.prep)
        if self.prep.channel_order == "RGB":
            crop = crop[:, :, ::-1]
        np.multiply(crop.transpose(2, 0, 1), self._scale, out=self._out[0])
        self._out[0] += self._offset
        return self._out
