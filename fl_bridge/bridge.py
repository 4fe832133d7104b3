"""`python -m fl_bridge deploy`: from a federated run to a board bundle.

1. Rebuild the global model from the run's `config.json` and `state.pt`, merge the adapters into
   plain convolutions (features checked equal before and after), compute the base-class mean on
   the clean base images and write `<run>/backbone.pt` (contract 1).
2. Run the chain through its CLIs, each in a subprocess: `python -m export`, `python -m tensil
   compile`, `python -m fpga build` when `vivado` is on PATH, `python -m board bundle`.
3. Check the bundle: the Tensil emulator's features of a few base images against the merged
   torch model's, and write `<run>/deploy.json` with every path and figure. For an INT8 run
   (q-fedavg, q-fedupdate) the deployed weights are the INT8 global model (the clients' model,
   not the server's FP32 master); BatchNorm stays a float layer that the export/compiler fold, and
   the report also compares the emulated 16-bit features with the INT8-trained model run with
   INT8 activations (what the deployment loses against the model as it was trained).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import contracts
from fl_bridge.checkpointing import write_backbone_checkpoint
from fl_bridge.config import RunConfig
from fl_bridge.data import dataset, model_config
from fl_bridge.errors import DeployError, FLError
from fl_bridge.fedmpq.methods import FEDMPQ_METHODS
from fl_bridge.model import FLModel, build_model, layout, set_communicated
from fl_bridge.qfed import inference, load_global
from fl_bridge.rundir import RunDir, write_json
from train.augment import to_input
from train.checkpoint import build_model as build_feature_model
from train.checkpoint import load_checkpoint
from train.fewshot import extract_features

# Emulated and float32 torch features must point the same way; FP16BP8 rounds every activation
# to 2^-8, which costs small (narrow, barely trained) backbones a few 1e-3 of cosine.
MIN_COSINE = 0.99


@dataclass(frozen=True)
class DeployConfig:
    run: str = contracts.fl_run_dir()
    name: str | None = None
    arch: str = contracts.DEFAULT_ARCH
    build: str = contracts.BUILD
    check_images: int = 8
    mhz: float = contracts.DEFAULT_MHZ     # clock of the bitstream, built when vivado is on PATH

    @property
    def artifact(self) -> str:
        return self.name or f"fl_{Path(self.run).name}"


def _step(what: str, cmd: list[str]) -> None:
    print(f"fl_bridge deploy: {what}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
    if proc.stderr:
        sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise DeployError(f"{what} failed: {last}")


def global_model(run: RunDir) -> tuple[RunConfig, FLModel, list[dict]]:
    """The run's config, its global model (for INT8 runs: the INT8 model the clients hold) and
    its round metrics."""
    cfg = RunConfig.load(run.path)
    if cfg.norm != "batch":
        raise DeployError("Tensil has no GroupNormalization: only --norm batch backbones can be deployed")
    data = dataset(cfg.dataset, cfg.data_root, cfg.image_size)
    model_cfg = model_config(cfg, data)
    model = build_model(model_cfg)
    state = run.load_state(layout(model))
    if state is None:
        raise FLError(f"{run.path} has no state.pt: nothing to deploy")
    if cfg.method in FEDMPQ_METHODS:  # FedMPQ: the largest budget's fixed-point model (fl_bridge/fedmpq)
        from fl_bridge.fedmpq.server import deployed_tensors

        set_communicated(model, deployed_tensors(cfg, state.tensors, state.rounds, layout(model)))
        return cfg, model, state.rounds
    return cfg, load_global(model, cfg, state.tensors, layout(model)), state.rounds


def write_merged_checkpoint(run: RunDir) -> Path:
    cfg, model, rounds = global_model(run)
    data = dataset(cfg.dataset, cfg.data_root, cfg.image_size)
    try:
        return write_backbone_checkpoint(model, model_config(cfg, data), data, cfg, rounds, run.checkpoint_path)
    except RuntimeError as e:
        raise DeployError(str(e)) from None


def deploy(cfg: DeployConfig) -> Path:
    run = RunDir(cfg.run)
    ckpt_path = write_merged_checkpoint(run)
    name, py = cfg.artifact, sys.executable
    export_dir, tensil_dir = contracts.export_dir(cfg.build), contracts.tensil_dir(cfg.build)
    onnx, bundle_dir = contracts.onnx_path(name, cfg.build), contracts.bundle_dir(name, cfg.build)
    _step("export", [py, "-m", "export", "--checkpoint", str(ckpt_path), "--out", export_dir, "--name", name])
    _step("compile", [py, "-m", "tensil", "compile", "--onnx", onnx, "--arch", cfg.arch, "--out", tensil_dir])
    fpga_dir = None
    if shutil.which("vivado"):
        fpga_dir = contracts.fpga_dir(cfg.arch, cfg.mhz, cfg.build)
        _step("bitstream", [py, "-m", "fpga", "build", "--arch", cfg.arch, "--mhz", f"{cfg.mhz:g}",
                            "--out", fpga_dir])
    else:
        print("fl_bridge deploy: vivado is not on PATH: no bitstream, the bundle runs on the emulator",
              file=sys.stderr)
    _step("bundle", [py, "-m", "board", "bundle", "--onnx", onnx, "--tensil", tensil_dir,
                     "--arch", cfg.arch, "--fpga", fpga_dir or "none", "--out", bundle_dir])
    try:
        tmodel = contracts.bundle_file(bundle_dir, "tmodel")      # the compiled model the bundle's manifest names
    except contracts.ContractError as exc:
        raise DeployError(str(exc)) from None
    check, emulated = emulator_check(ckpt_path, tmodel, cfg.check_images)
    int8 = int8_check(run, emulated)
    if int8 is not None:
        check["int8_trained_vs_emulated"] = int8
    halo = halo_check(run, ckpt_path, tmodel)
    if halo is not None:
        check["halo_fl"] = halo
    if RunConfig.load(run.path).method in FEDMPQ_METHODS:  # FedMPQ: emulated vs as-trained accuracy
        from fl_bridge.fedmpq.deploy import fedmpq_deploy_report

        mpq_cfg, mpq_model, mpq_rounds = global_model(run)
        check["fedmpq"] = fedmpq_deploy_report(mpq_cfg, mpq_model, run.load_state(layout(mpq_model)).tensors,
                                               mpq_rounds, ckpt_path, Path(tmodel))
    if check["min_cosine"] < MIN_COSINE:
        raise DeployError(f"emulated features differ from the merged torch model (cosine {check['min_cosine']:.5f} "
                          f"< {MIN_COSINE})")
    report = run.path / "deploy.json"
    write_json(report, {"config": asdict(cfg), "checkpoint": str(ckpt_path), "onnx": str(onnx),
                        "tensil": str(tensil_dir), "bitstream": str(fpga_dir) if fpga_dir else None,
                        "bundle": str(bundle_dir), "emulator_vs_torch": check})
    return report


def int8_check(run: RunDir, emulated: np.ndarray) -> dict | None:
    """For INT8 runs: the emulated features against the INT8-trained model with INT8 activations."""
    cfg, model, _ = global_model(run)
    if not cfg.quantized_training:
        return None
    data = dataset(cfg.dataset, cfg.data_root, cfg.image_size)
    with inference(model, cfg):
        reference = extract_features(model.backbone, data.base.images[: len(emulated)], data.preprocessing).numpy()
    return {**compare_features(emulated, reference),
            "reference": "INT8 global model with INT8 activations (as trained); emulator: Tensil fixed point"}


def halo_check(run: RunDir, ckpt_path: Path, tmodel: Path) -> dict | None:
    """For HaLo-FL runs: per client type's final (bw, ba), the low-precision model's few-shot
    accuracy against the emulated 16-bit deployment's (`fl_bridge.halo.deploy`)."""
    cfg, model, rounds = global_model(run)
    if cfg.method != "halo-fl":
        return None
    from fl_bridge.halo.deploy import halo_deploy_report

    return halo_deploy_report(cfg, model, rounds, ckpt_path, Path(tmodel))


def compare_features(emulated: np.ndarray, reference: np.ndarray) -> dict:
    err = np.abs(emulated - reference)
    cos = (emulated * reference).sum(1) / (np.linalg.norm(emulated, axis=1) * np.linalg.norm(reference, axis=1))
    return {"images": len(emulated), "max_abs_diff": float(err.max()), "mean_abs_diff": float(err.mean()),
            "feature_scale": float(np.abs(reference).max()), "min_cosine": float(cos.min())}


def emulator_check(ckpt_path: Path, tmodel: Path, count: int) -> tuple[dict, np.ndarray]:
    """Features of `count` clean base images: `python -m tensil emulate` vs the merged torch model
    (the figures, and the emulated features)."""
    ckpt = load_checkpoint(ckpt_path)
    data = dataset(ckpt.dataset, str(ckpt.config.get("data_root", "")), ckpt.preprocessing.image_size)
    images = data.base.images[:count]
    reference = extract_features(build_feature_model(ckpt), images, data.preprocessing).numpy()
    inputs = to_input(images, data.preprocessing).numpy()
    emulated = []
    with tempfile.TemporaryDirectory(prefix="fl_emulate_") as tmp:
        for i in range(len(images)):
            x, y = Path(tmp) / f"x{i}.npy", Path(tmp) / f"y{i}.npy"
            np.save(x, inputs[i : i + 1])
            _step(f"emulate image {i}", [sys.executable, "-m", "tensil", "emulate", "--tmodel", str(tmodel),
                                         "--input", str(x), "--out", str(y)])
            emulated.append(np.load(y, allow_pickle=False).reshape(-1))
    emulated = np.stack(emulated)
    return ({**compare_features(emulated, reference), "tmodel": str(tmodel),
             "reference": "merged torch backbone, float32; emulator: Tensil fixed point of the arch"}, emulated)
