"""Tensil compiler bench on the embedded default backbone (ResNet-9 strided, 16 fm, 32x32,
custom_perf): compile time, program size, estimated cycles in Tensil's model and the
hardware-aware model, MAC efficiency, emulator time per inference (one image at a time and in
batches, side by side, also at 84x84), the per-layer table, and
the few-shot accuracy of the fixed-point program against the float model.

The accuracy part uses the project's trained backbone (`build/backbone/default.pt`, written by
`make backbone`) when it exists, else trains a small stand-in here (supervised, a few epochs on
the synthetic base classes: EASY's full routine takes many minutes on 2 cores). It exports it
at opset 10, compiles it, computes features of synthetic novel-class images with onnxruntime
(float) and with the emulator (the exact fixed-point program), and runs the same 5-way 1-shot
NCM episodes (`train.fewshot.evaluate_fewshot`, EASY's ME centring when the checkpoint has a
base mean) on both.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from contracts import backbone_path
from tensil.arch import load_arch

EPISODES = 1000
WAYS, SHOTS, QUERIES = 5, 1, 10
NOVEL_PER_CLASS = 15
TRAIN_EPOCHS = 3
BATCH_IMAGES = 64
MEAN, STD = 0.5, 0.25
DEFAULT_CHECKPOINT = Path(backbone_path())


def _load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def _export(model, size: int, path: Path) -> Path:
    import onnx

    from export.onnx_build import to_tensil_onnx

    onnx.save(to_tensil_onnx(model.eval(), (1, 3, size, size), 10, "input", "Output"), str(path))
    return path


def _train_small_backbone(spec, seed: int = 0):
    """Supervised training on the synthetic base classes (linear head, cosine LR)."""
    import torch
    from torch import nn

    from train.backbones import build_backbone
    from train.synthetic import SyntheticConfig, render_split

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    images, labels, _ = render_split(SyntheticConfig(), "base", spec.image_size)
    x = (torch.from_numpy(images).float() / 255.0 - MEAN) / STD
    y = torch.from_numpy(labels)
    model = build_backbone(spec)
    head = nn.Linear(model.feature_dim, int(labels.max()) + 1)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    steps = TRAIN_EPOCHS * (len(x) // 64)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    for _ in tqdm(range(TRAIN_EPOCHS), desc="training the bench backbone", file=sys.stderr, leave=False):
        perm = torch.randperm(len(x))
        for i in range(0, len(x) - 63, 64):
            idx = perm[i:i + 64]
            loss = nn.functional.cross_entropy(head(model(x[idx])), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def bench_default(work: Path) -> None:
    import torch

    from tensil import estimator
    from tensil.compiler.pipeline import compile_onnx
    from tensil.emulator import ModelRunner
    from train.backbones import BackboneSpec, build_backbone

    arch = load_arch("custom_perf")
    torch.manual_seed(0)
    onnx_path = _export(build_backbone(BackboneSpec()), 32, work / "default.onnx")
    times, compiled = [], None
    for _ in range(3):
        t = time.perf_counter()
        compiled = compile_onnx(onnx_path, arch)
        times.append(time.perf_counter() - t)
    low = compiled.lowered
    groups = [g.span() for g in low.groups]
    est = estimator.estimate(low.instrs, arch, groups=groups, clocks_mhz=(50.0, 125.0))
    runner = ModelRunner(compiled.loaded())
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    runner.run({"input": x})
    t = time.perf_counter()
    for _ in range(5):
        runner.run({"input": x})
    emu = (time.perf_counter() - t) / 5
    print("== tensil: default backbone (ResNet-9 strided, 16 fm, 32x32) on custom_perf ==")
    print(f"compile time: {statistics.median(times):.2f} s (median of 3; target < 5 s; upstream ~5 min)  [{_load()}]")
    print(f"program: {est.n_instructions} instructions, {est.program_bytes} bytes; "
          f"constants {low.consts.size} vectors; local peak {low.local_peak}/{arch.local_depth}, accumulators {low.acc_peak}/{arch.accumulator_depth}")
    print(f"Tensil model: {est.tensil_cycles / 1e3:.1f} KCycles (target <= 300), MAC efficiency "
          f"{100 * est.mac_efficiency:.1f}% (target >= 40%), {est.useful_macs / 1e6:.2f} MMAC")
    for mhz in (50.0, 125.0):
        print(f"hardware-aware: {est.hardware_cycles[mhz] / 1e3:.1f} KCycles = "
              f"{est.latency_ms[mhz]:.2f} ms at {mhz:g} MHz (instruction streaming included; target <= 10 ms at 125 MHz; PEFSL measured ~30 ms on the board)")
    print(f"emulator: {1e3 * emu:.0f} ms per inference  [{_load()}]")
    bench_batch(compiled.loaded(), 32)
    print(est.table(125.0))


def bench_batch(loaded, size: int, images: int = BATCH_IMAGES, singles: int = 8, target: bool = True) -> None:
    """One image at a time (`ModelRunner`) against a batch (`tensil.batch.BatchRunner`), side by
    side on the same images, wall and CPU time (the CPU time is less disturbed by other jobs).
    Both are measured warm, as a sweep uses them over thousands of images: the batch runner has
    run one batch before (numba compiled or loaded its cache, its machine is allocated). The 20x
    target is set on the default backbone (`target`); other backbones print their ratio as is."""
    from tensil.batch import BatchRunner
    from tensil.emulator import ModelRunner

    x = np.random.default_rng(1).standard_normal((images, 1, 3, size, size)).astype(np.float32)
    batch = BatchRunner(loaded, batch_size=images)
    batch.run({"input": x})
    runner = ModelRunner(loaded)
    runner.run({"input": x[0]})
    wall, cpu = time.perf_counter(), time.process_time()
    one = np.stack([runner.run({"input": xi})["Output"] for xi in x[:singles]])
    one_wall, one_cpu = (time.perf_counter() - wall) / singles, (time.process_time() - cpu) / singles
    wall, cpu = time.perf_counter(), time.process_time()
    many = batch.run({"input": x})["Output"]
    many_wall, many_cpu = (time.perf_counter() - wall) / images, (time.process_time() - cpu) / images
    same = np.array_equal(one, many[:singles])
    print(f"batch emulation ({images} images at {size}x{size}) vs one at a time: {1e3 * many_wall:.1f} vs "
          f"{1e3 * one_wall:.0f} ms per image wall ({one_wall / many_wall:.1f}x), {1e3 * many_cpu:.1f} vs "
          f"{1e3 * one_cpu:.0f} ms CPU ({one_cpu / many_cpu:.1f}x{'; target >= 20x' if target else ''}); bit-identical on "
          f"{singles} images: {'yes' if same else 'NO'}  [{_load()}]")


def bench_variants(work: Path) -> None:
    """Compile time and estimates of the larger backbones (random weights; accuracy is tested)."""
    import torch

    from tensil import estimator
    from tensil.compiler.pipeline import compile_onnx
    from train.backbones import BackboneSpec, build_backbone

    arch = load_arch("custom_perf")
    print("== tensil: other backbones on custom_perf ==")
    for spec in (BackboneSpec("resnet12", 16, False, 3, 32), BackboneSpec("resnet9", 16, True, 3, 84),
                 BackboneSpec("resnet12", 16, True, 3, 84)):
        torch.manual_seed(0)
        path = _export(build_backbone(spec), spec.image_size, work / f"{spec.family}_{spec.image_size}.onnx")
        t = time.perf_counter()
        c = compile_onnx(path, arch)
        seconds = time.perf_counter() - t
        est = estimator.estimate(c.lowered.instrs, arch, macs=sum(g.info.get("macs", 0) for g in c.lowered.groups),
                                 clocks_mhz=(125.0,))
        print(f"{spec.family} {'strided' if spec.strided else 'max-pool'} {spec.feature_maps} fm {spec.image_size}x"
              f"{spec.image_size}: compile {seconds:.1f} s, {est.n_instructions} instructions, "
              f"{est.tensil_cycles / 1e3:.0f} KCycles, MAC eff {100 * est.mac_efficiency:.1f}%, "
              f"{est.latency_ms[125.0]:.2f} ms at 125 MHz, spilled to DRAM0: {len(c.lowered.spilled)} tensors")
        if spec == BackboneSpec("resnet9", 16, True, 3, 84):
            bench_batch(c.loaded(), 84, singles=3, target=False)


def _backbone_for_accuracy():
    """(model, preprocessing, base mean, where it came from): the project's default checkpoint
    when `make backbone` has written it, else a small stand-in trained here."""
    from train.checkpoint import Preprocessing, build_model, load_checkpoint

    if DEFAULT_CHECKPOINT.is_file():
        ckpt = load_checkpoint(DEFAULT_CHECKPOINT)
        return build_model(ckpt), ckpt.preprocessing, ckpt.base_mean, str(DEFAULT_CHECKPOINT)
    from train.backbones import BackboneSpec

    t = time.perf_counter()
    model = _train_small_backbone(BackboneSpec())
    pre = Preprocessing(image_size=32, resize=32, mean=(MEAN,) * 3, std=(STD,) * 3)
    return model, pre, None, (f"no {DEFAULT_CHECKPOINT}: a stand-in trained here for {TRAIN_EPOCHS} epochs "
                              f"(supervised, synthetic base classes) in {time.perf_counter() - t:.0f} s")


def bench_accuracy(work: Path) -> None:
    import onnxruntime as ort
    import torch

    from tensil.batch import BatchRunner
    from tensil.compiler.pipeline import compile_onnx
    from train.augment import to_input
    from train.fewshot import evaluate_fewshot
    from train.synthetic import SyntheticConfig, render_split

    model, pre, base_mean, source = _backbone_for_accuracy()
    onnx_path = _export(model, pre.image_size, work / "trained.onnx")
    compiled = compile_onnx(onnx_path, load_arch("custom_perf"))
    images, labels, _ = render_split(SyntheticConfig(novel_images=NOVEL_PER_CLASS), "novel", pre.image_size)
    x = to_input(images, pre).numpy().astype(np.float32)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    runner = BatchRunner(compiled.loaded())
    t = time.perf_counter()
    ref = np.stack([sess.run(None, {"input": xi[None]})[0].ravel() for xi in x])
    fixed = runner.run({"input": x[:, None]})["Output"][:, : ref.shape[1]]
    feat_s = time.perf_counter() - t
    cos = ((ref * fixed).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(fixed, axis=1))).min()
    runs = [evaluate_fewshot(torch.from_numpy(f), labels, base_mean, ways=WAYS, shots=SHOTS, queries=QUERIES,
                             episodes=EPISODES, seed=0) for f in (ref, fixed)]
    print("== tensil: few-shot accuracy, fixed-point program vs float model ==")
    print(f"backbone: {source}; features of {len(x)} synthetic novel images in {feat_s:.0f} s  [{_load()}]")
    print(f"min cosine(emulator, onnxruntime) over the images: {cos:.5f}")
    print(f"{WAYS}-way {SHOTS}-shot NCM (train.fewshot, same {EPISODES} episodes, {QUERIES} queries/class): "
          f"float {100 * runs[0].accuracy:.2f}% (+-{100 * runs[0].ci95:.2f}), fixed-point {100 * runs[1].accuracy:.2f}% "
          f"(+-{100 * runs[1].ci95:.2f}), difference {100 * (runs[1].accuracy - runs[0].accuracy):+.2f} points "
          f"(target within 1 point)")


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        bench_default(Path(d))
        bench_variants(Path(d))
        bench_accuracy(Path(d))


if __name__ == "__main__":
    main()
