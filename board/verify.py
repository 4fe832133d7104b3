"""Bundle-time check of the deployed path: camera-like inputs through the preprocessing, then our
driver on the emulated PYNQ (the code that runs on the board) against onnxruntime on the ONNX."""

from __future__ import annotations

import numpy as np

from board.backends import BackendConfig, open_backend
from board.bundle import Bundle
from board.preprocess import Preprocessor


def verify_driver_against_onnx(bundle: Bundle, samples: int = 2, seed: int = 0) -> dict:
    """Max abs error and min cosine of the emulator backend vs the onnx backend."""
    rng = np.random.default_rng(seed)
    pre = Preprocessor(bundle.preprocessing)
    emulator = open_backend(bundle, BackendConfig("emulator", timeout_s=120))
    onnx = open_backend(bundle, BackendConfig("onnx"))
    errors, cosines = [], []
    try:
        for _ in range(samples):
            frame = rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
            batch = pre(frame).copy()
            ours, ref = emulator.features(batch), onnx.features(batch)
            errors.append(float(np.max(np.abs(ours - ref))))
            cosines.append(float(ours @ ref / max(np.linalg.norm(ours) * np.linalg.norm(ref), 1e-12)))
        stats = emulator.stats()
    finally:
        emulator.close()
        onnx.close()
    return {"reference": "onnxruntime on model.onnx", "path": "preprocessing + TcuDriver + emulated PYNQ",
            "samples": samples, "max_abs_error": max(errors), "min_cosine_similarity": min(cosines),
            "saturated_input_values": stats["saturated_input_values"]}
