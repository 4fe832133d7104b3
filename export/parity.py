"""onnxruntime vs torch on the same inputs: max absolute difference and cosine similarity."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import onnxruntime as ort
import torch
from torch import nn
from tqdm import tqdm

from export.errors import ParityError


@dataclass(frozen=True)
class ParityFigures:
    """Agreement of the two runtimes on one set of inputs."""

    inputs: str  # what the inputs were
    count: int
    max_abs_diff: float
    feature_scale: float  # max |torch feature|, the scale the tolerance is relative to
    min_cosine: float
    mean_cosine: float

    def to_dict(self) -> dict:
        return asdict(self)


def onnx_session(onnx_bytes: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def run_onnx(session: ort.InferenceSession, images: np.ndarray, batch: int, desc: str) -> np.ndarray:
    """Features of `images` through the fixed-batch graph (the last chunk is zero-padded)."""
    name = session.get_inputs()[0].name
    chunks = []
    # disable=None: a bar on a terminal, nothing in logs.
    for start in tqdm(range(0, len(images), batch), desc=desc, unit="batch", leave=False, disable=None):
        chunk = images[start : start + batch]
        padded = np.zeros((batch, *images.shape[1:]), np.float32)
        padded[: len(chunk)] = chunk
        chunks.append(session.run(None, {name: padded})[0][: len(chunk)])
    return np.concatenate(chunks)


def compare(
    model: nn.Module, session: ort.InferenceSession, images: torch.Tensor, batch: int, inputs: str
) -> ParityFigures:
    """Run both runtimes on `images` (N, C, H, W) float32 and measure how far apart they are."""
    with torch.inference_mode():
        expected = model.eval()(images).double().numpy()
    got = run_onnx(session, images.numpy().astype(np.float32), batch, f"parity ({inputs})").astype(np.float64)
    if got.shape != expected.shape:
        raise ParityError(f"onnxruntime returned features of shape {got.shape}, torch {expected.shape}")
    norms = np.linalg.norm(expected, axis=1) * np.linalg.norm(got, axis=1)
    cosine = np.sum(expected * got, axis=1) / np.maximum(norms, np.finfo(np.float64).tiny)
    # Two all-zero feature vectors agree perfectly.
    cosine[(norms == 0) & (np.abs(expected - got).max(axis=1) == 0)] = 1.0
    return ParityFigures(
        inputs=inputs,
        count=len(images),
        max_abs_diff=float(np.abs(expected - got).max()),
        feature_scale=float(np.abs(expected).max()),
        min_cosine=float(cosine.min()),
        mean_cosine=float(cosine.mean()),
    )


def require_agreement(figures: ParityFigures, atol: float, min_cosine: float) -> None:
    """ParityError unless the runtimes agree to float tolerance on these inputs."""
    limit = atol * max(1.0, figures.feature_scale)
    if not np.isfinite(figures.max_abs_diff) or figures.max_abs_diff > limit:
        raise ParityError(
            f"onnxruntime and torch disagree on {figures.inputs} inputs: max |diff| "
            f"{figures.max_abs_diff:.3g} > {limit:.3g}"
        )
    if not figures.min_cosine >= min_cosine:
        raise ParityError(
            f"onnxruntime and torch disagree on {figures.inputs} inputs: cosine similarity "
            f"{figures.min_cosine:.8f} < {min_cosine}"
        )
