"""Camera frame -> backbone input, exactly as the backbone saw images in training.

PEFSL's demo normalised with the wrong operator precedence and the wrong constants, fed BGR as
RGB and squashed a 4:3 frame into a square. Here: BGR -> RGB (when the bundle says RGB), resize the
short side to `resize` (INTER_AREA), centre-crop `image_size`, `(x / 255 - mean) / std`, with the
`Preprocessing` record of `contracts.preprocessing` (the one schema train writes and the board reads).
"""

from __future__ import annotations

import cv2
import numpy as np

from contracts.preprocessing import Preprocessing  # the schema of contract 1, copied into model.json


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
