"""The stages of one point, each through its owner's public API, each skipped when its artifact
is already finished. A blocking file lock per artifact lets parallel points that share a
checkpoint, an ONNX or a program wait for one another instead of redoing (or racing on) it."""

from __future__ import annotations

import fcntl
import json
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from dse.config import Point, Sweep
from dse.layout import PointPaths
from train.files import atomic_write_text

# `train fit` options the sweep sets unless its [train] table says otherwise.
TRAIN_DEFAULTS = {"compare_untrained": False, "threads": 1}


@contextmanager
def file_lock(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on `<target>.lock` (waits for another process holding it)."""
    lock = target.parent / ".locks" / (target.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def fit_config(sweep: Sweep, point: Point, paths: PointPaths):
    """The FitConfig of a point: the sweep's [train] table over TRAIN_DEFAULTS."""
    return replace(sweep.fit_config(point, str(paths.train_checkpoint)), **{**TRAIN_DEFAULTS, **sweep.train})


def train(sweep: Sweep, point: Point, paths: PointPaths, log) -> bool:
    """Train the point's backbone unless a finished checkpoint of this configuration exists
    (`train.easy.fit` resumes an interrupted run from its state file). True when it trained."""
    from train.checkpoint import CheckpointError, load_checkpoint
    from train.easy import fit

    with file_lock(paths.train_checkpoint):
        try:
            if load_checkpoint(paths.train_checkpoint).metrics.get("complete") is True:
                return False
        except CheckpointError:
            pass
        paths.train_checkpoint.parent.mkdir(parents=True, exist_ok=True)
        fit(fit_config(sweep, point, paths), log=log)
        return True


def retarget_checkpoint(source: Path, image_size: int, out: Path) -> None:
    """Write `out`: the weights of `source` with the input, crop and resize of `image_size`, and
    EASY's base mean re-measured on the dataset's base images at that size."""
    from train.checkpoint import BackboneCheckpoint, Member, build_model, load_checkpoint, save_checkpoint
    from train.datasets import load_dataset
    from train.fewshot import extract_features

    ckpt = load_checkpoint(source)
    data = load_dataset(ckpt.dataset, ckpt.config.get("data_root"), image_size)
    members = [Member(replace(m.spec, image_size=image_size), m.state_dict) for m in ckpt.members]
    pre = replace(ckpt.preprocessing, image_size=image_size, resize=data.preprocessing.resize)
    config = {**ckpt.config, "image_size": image_size}
    metrics = {**ckpt.metrics, "retargeted_from": str(source), "trained_image_size": ckpt.preprocessing.image_size}
    new = BackboneCheckpoint(members, pre, None, ckpt.dataset, metrics, config)
    new.base_mean = extract_features(build_model(new), data.base.images, pre).mean(dim=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(new, out)


def retarget(point: Point, paths: PointPaths) -> bool:
    """When the test size differs from the training size, the retargeted checkpoint (unless done)."""
    if paths.checkpoint == paths.train_checkpoint:
        return False
    with file_lock(paths.checkpoint):
        if paths.checkpoint.is_file():
            return False
        retarget_checkpoint(paths.train_checkpoint, point.test_size, paths.checkpoint)
        return True


def export(sweep: Sweep, paths: PointPaths) -> bool:
    """`export.pipeline.export_checkpoint` (ONNX + parity-checked sidecar) unless done."""
    from export.config import ExportConfig
    from export.pipeline import export_checkpoint

    with file_lock(paths.onnx):
        if paths.onnx.is_file() and paths.onnx.with_suffix(".json").is_file():
            return False
        export_checkpoint(ExportConfig(checkpoint=str(paths.checkpoint), out=str(paths.export_dir),
                                       name=paths.export_name, data_root=sweep.data_root))
        return True


def compile_program(point: Point, paths: PointPaths) -> bool:
    """`python -m tensil compile`'s API (program + report, verified on 2 samples) unless done."""
    from tensil.cli import CompileConfig, run_compile

    with file_lock(paths.tmodel):
        if paths.tmodel.is_file() and paths.report.is_file():
            return False
        run_compile(CompileConfig(onnx=str(paths.onnx), arch=point.arch, out=str(paths.tensil_dir)))
        return True


def estimate(point: Point, paths: PointPaths) -> dict:
    """Tensil's cycle model and the hardware-aware latency at the point's clock, the FPGA
    resources of the architecture and whether the clock can be made (cheap: always recomputed)."""
    from fpga.clocking import plan_clock
    from tensil import estimator
    from tensil.resources import plan_fit
    from tensil.tmodel import read_model

    loaded = read_model(paths.tmodel)
    report = json.loads(paths.report.read_text())
    est = estimator.estimate(loaded.instructions(), loaded.arch, macs=report["estimate"]["useful_macs"],
                             clocks_mhz=(point.mhz,))
    fit = plan_fit(loaded.arch)
    clock = plan_clock(point.mhz)
    return {
        "instructions": est.n_instructions,
        "program_bytes": est.program_bytes,
        "macs": est.useful_macs,
        "tensil_kcycles": est.tensil_cycles / 1e3,
        "mac_efficiency": est.mac_efficiency,
        "tensil_latency_ms": est.tensil_latency_ms[point.mhz],
        "latency_ms": est.latency_ms[point.mhz],
        "fps": 1e3 / est.latency_ms[point.mhz],
        "spilled_tensors": len(report.get("memory", {}).get("spilled_to_dram0") or []),
        "compile_cosine": report.get("verification", {}).get("min_cosine_similarity"),
        "fits": fit.fits,
        "fit_reasons": "; ".join(fit.reasons),
        **{f"{k}_use": v for k, v in fit.utilisation().items()},
        "clock_source": clock.source,
        "clock_mhz_actual": clock.actual_mhz,
    }
