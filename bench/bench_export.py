"""Export stage figures: export time, parity, and onnxruntime vs torch latency (batch 1, 1 thread).

Random-weight checkpoints of the embedded default (ResNet-9 strided, 16 maps, 32 px), its max-pool
variant and a 2-member ensemble are exported to a temporary folder; both runtimes then extract
features of the same images one at a time, side by side in one run.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from export.config import ExportConfig
from export.parity import onnx_session
from export.pipeline import export_checkpoint
from train.backbones import BackboneSpec, build_backbone
from train.checkpoint import BackboneCheckpoint, Member, Preprocessing, build_model, save_checkpoint

CASES = {
    "resnet9 strided 16fm 32px (embedded default)": [BackboneSpec()],
    "resnet9 max-pool 16fm 32px": [BackboneSpec(strided=False)],
    "ensemble of 2 x resnet9 strided 16fm 32px": [BackboneSpec(), BackboneSpec()],
}
IMAGES = 200


def _checkpoint(specs: list[BackboneSpec], path: Path) -> BackboneCheckpoint:
    members = []
    for seed, spec in enumerate(specs):
        torch.manual_seed(seed)
        members.append(Member(spec, build_backbone(spec).state_dict()))
    ckpt = BackboneCheckpoint(members, Preprocessing(image_size=specs[0].image_size))
    save_checkpoint(ckpt, path)
    return ckpt


def _per_image_ms(run, images: np.ndarray) -> float:
    run(images[:1])  # warm-up
    start = time.perf_counter()
    for i in range(len(images)):
        run(images[i : i + 1])
    return 1e3 * (time.perf_counter() - start) / len(images)


def main() -> None:
    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.2f}; {IMAGES} images, batch 1, 1 thread")
    with tempfile.TemporaryDirectory() as tmp:
        for label, specs in CASES.items():
            path = Path(tmp) / "bench.pt"
            ckpt = _checkpoint(specs, path)
            start = time.perf_counter()
            result = export_checkpoint(ExportConfig(checkpoint=str(path), out=tmp))
            export_s = time.perf_counter() - start
            parity = result.sidecar["parity"]["results"][0]

            model = build_model(ckpt)
            session = onnx_session(result.onnx_path.read_bytes())
            images = np.random.default_rng(0).standard_normal((IMAGES, 3, 32, 32), dtype=np.float32)
            with torch.inference_mode():
                torch_ms = _per_image_ms(lambda x: model(torch.from_numpy(x)), images)
            ort_ms = _per_image_ms(lambda x: session.run(None, {"input": x}), images)
            print(
                f"{label}: export {export_s:.2f} s, {result.onnx_path.stat().st_size / 1e3:.0f} kB, "
                f"parity max|diff| {parity['max_abs_diff']:.2e} cos {parity['min_cosine']:.8f}; "
                f"torch {torch_ms:.2f} ms/img, onnxruntime {ort_ms:.2f} ms/img ({torch_ms / ort_ms:.2f}x)"
            )


if __name__ == "__main__":
    main()
