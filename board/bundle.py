"""The board bundle (artifact contract 5): the ONE module that knows its layout.

    build/bundle/<name>/
        model.json                  what the demo needs: input/output names and shape, feature
                                    dimension, preprocessing, base mean, arch, file names,
                                    sha256 of every file, the export/compile verification figures
        model.onnx                  the exported backbone (onnx backend, off-board)
        <model>.tmodel/.tprog/.tdata  the compiled model (tensil and emulator backends)
        design.bit / design.hwh     the bitstream (tensil backend, on the board), when built

`assemble_bundle` builds it from the export, tensil and fpga outputs (writing a temp folder and
renaming it); `load_bundle` checks it and tells which backends it can serve.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from board.errors import BundleError
from safeio import (ARTIFACT_MODE, UsageError, check_int_range, check_output, check_range, output_lock,
                    replace_folder, temp_folder)
import contracts
from contracts import BUNDLE_MANIFEST, ContractError, Instances, Preprocessing, compiled_name, parse_fpga_dir_name
from tensil.arch import Arch, ArchError, from_dict, load_arch
from tensil.tmodel import model_file_name

log = logging.getLogger("board")

FORMAT, VERSION = "fsl-board-bundle", 1
MODEL_JSON, ONNX_FILE, BIT_FILE, HWH_FILE = BUNDLE_MANIFEST, "model.onnx", "design.bit", "design.hwh"


@dataclass
class BundleConfig:
    """`python -m board bundle` options."""

    onnx: str = contracts.onnx_path()            # its <name>.json sidecar must sit next to it
    tensil: str | None = contracts.tensil_dir()  # folder with <name>_<arch>.tmodel/.tprog/.tdata
    arch: str = contracts.DEFAULT_ARCH
    fpga: str | None = contracts.fpga_dir()      # folder with design.bit/.hwh (optional)
    out: str = contracts.bundle_dir()
    verify_samples: int = 2                      # driver-on-emulated-PYNQ vs onnxruntime checks (0 skips)
    min_cosine: float = 0.98                     # below this the bundle is refused (PEFSL's unpadded input: 0.90)

    def check(self) -> "BundleConfig":
        """BundleError with one line for an option that cannot work; nothing is read or written."""
        try:
            check_int_range("--verify-samples", self.verify_samples, 0, 1000)
            check_range("--min-cosine", self.min_cosine, -1, 1)
            check_output("--out", self.out, "folder")
        except UsageError as exc:
            raise BundleError(str(exc)) from None
        if not re.fullmatch(r"[A-Za-z0-9_]+", self.arch):
            raise BundleError(f"--arch {self.arch!r}: not an architecture name")
        return self


@dataclass
class Bundle:
    """A checked bundle on disk."""

    root: Path
    name: str
    input_name: str
    input_shape: tuple
    output_name: str
    feature_dim: int
    preprocessing: Preprocessing
    base_mean: np.ndarray | None
    files: dict = field(default_factory=dict)    # role -> file name (roles: onnx, tmodel, bitstream, hwh)
    model_arch: Arch | None = None               # what the .tmodel was compiled for
    bitstream_arch: Arch | None = None           # what design.bit was built for
    meta: dict = field(default_factory=dict)
    instances: Instances = Instances()           # the PYNQ instance names design.bit has

    def path(self, role: str) -> Path:
        name = self.files.get(role)
        if not name:
            raise BundleError(f"bundle {self.root} has no {role} file (rebuild it with the {role} input)")
        return self.root / name

    def backends(self) -> list[str]:
        """The backends this bundle can serve."""
        out = ["onnx"] if self.files.get("onnx") else []
        if self.files.get("tmodel"):
            out.append("emulator")
            if self.files.get("bitstream"):
                out.append("tensil")
        return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except OSError:
        raise BundleError(f"{what} {path} is missing") from None
    except ValueError as exc:
        raise BundleError(f"{what} {path} is not valid JSON: {exc}") from None


def _arch(d: dict | None, where: str) -> Arch | None:
    if d is None:
        return None
    try:
        d = dict(d)
        return from_dict({k: v for k, v in d.items() if k != "name"}, name=d.get("name", "custom"))
    except (ArchError, TypeError, KeyError) as exc:
        raise BundleError(f"bad architecture in {where}: {exc}") from None


def _tmodel_files(tmodel: Path) -> list[Path]:
    manifest = _read_json(tmodel, "compiled model")
    try:
        names = [manifest["prog"]["file_name"]] + [c["file_name"] for c in manifest["consts"]]
    except (KeyError, TypeError):
        raise BundleError(f"{tmodel} is not a Tensil .tmodel manifest") from None
    return [tmodel] + [tmodel.parent / Path(n).name for n in names]


def _find_tmodel(folder: Path, onnx_path: Path, arch: str) -> Path:
    """`<name>_<arch>.tmodel` (contract 3), or upstream Tensil's `<name>_onnx_<arch>.tmodel`."""
    candidates = [folder / f"{compiled_name(onnx_path.stem, arch)}.tmodel",
                  folder / f"{model_file_name(onnx_path.name, arch)}.tmodel"]
    for c in candidates:
        if c.is_file():
            return c
    raise BundleError(f"compiled model {candidates[0]} is missing (run `make compile`)")


def _fpga_build(fpga: Path) -> tuple[Arch, float | None, dict]:
    """The architecture, clock and PYNQ instance names the bitstream was built with: fpga's
    project.json, else the folder name `<arch>_<MHz>MHz`."""
    meta_path = fpga / "project.json"
    if meta_path.is_file():
        meta = _read_json(meta_path, "bitstream project record")
        clock = meta.get("clock") or {}
        mhz = clock.get("actual_mhz") or (meta.get("config") or {}).get("mhz")
        return _arch(meta.get("arch"), str(meta_path)), mhz, dict(meta.get("instances") or {})
    named = parse_fpga_dir_name(fpga.name)
    if named:
        return _load_named_arch(named[0]), named[1], {}
    raise BundleError(f"cannot tell which architecture {fpga} was built for (no project.json and "
                      f"the folder is not named <arch>_<MHz>MHz)")


def _load_named_arch(name: str) -> Arch:
    try:
        return load_arch(name)
    except ArchError as exc:
        raise BundleError(str(exc)) from None


def assemble_bundle(config: BundleConfig) -> Path:
    """Copy and check the stage outputs into `config.out`; returns the bundle folder."""
    config.check()
    onnx_path = Path(config.onnx)
    if not onnx_path.is_file():
        raise BundleError(f"ONNX file {onnx_path} is missing (run `make export`)")
    sidecar = _read_json(onnx_path.with_suffix(".json"), "export sidecar")
    recorded = (sidecar.get("onnx") or {}).get("sha256") if isinstance(sidecar, dict) else None
    if recorded != _sha256(onnx_path):
        raise BundleError(f"{onnx_path} differs from the file its sidecar {onnx_path.with_suffix('.json')} "
                          f"describes (sha256): re-export it")
    try:
        meta = {
            "format": FORMAT, "version": VERSION, "name": onnx_path.stem,
            "input": {"name": sidecar["input"]["name"], "shape": list(sidecar["input"]["shape"])},
            "output": {"name": sidecar["output"]["name"]},
            "feature_dim": int(sidecar["feature_dim"]),
            "preprocessing": Preprocessing.from_dict(sidecar["preprocessing"]).to_dict(),
            "base_mean": sidecar.get("base_mean"),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"export sidecar {onnx_path.with_suffix('.json')} lacks {exc}") from None
    copies: dict[str, tuple[Path, str]] = {"onnx": (onnx_path, ONNX_FILE)}
    meta["verification"] = {"export_parity": sidecar.get("parity")}
    meta["arch"] = meta["bitstream_arch"] = meta["clock_mhz"] = None

    if config.tensil:
        tmodel = _find_tmodel(Path(config.tensil), onnx_path, config.arch)
        files = _tmodel_files(tmodel)
        for p in files:
            if not p.is_file():
                raise BundleError(f"compiled model file {p} is missing (run `make compile`)")
        copies["tmodel"] = (tmodel, tmodel.name)
        for p in files[1:]:
            copies[p.suffix.lstrip(".")] = (p, p.name)
        model_arch = _arch(_read_json(tmodel, "compiled model").get("arch"), str(tmodel))
        meta["arch"] = dict(model_arch.to_json_dict(), name=config.arch)
        report = tmodel.with_name(tmodel.stem + ".report.json")
        if report.is_file():
            copies["report"] = (report, report.name)
            compile_report = _read_json(report, "compile report")
            if not isinstance(compile_report, dict):
                raise BundleError(f"compile report {report} is not a JSON object")
            meta["verification"]["compile"] = compile_report.get("verification")
            for p in files:   # the hashes `tensil compile` recorded (reports of older compiles have none)
                recorded = (compile_report.get("files_sha256") or {}).get(p.name)
                if recorded is not None and recorded != _sha256(p):
                    raise BundleError(f"{p} differs from the file its compile report {report} describes "
                                      f"(sha256): recompile it")

    if config.fpga:
        fpga = Path(config.fpga)
        bit, hwh = fpga / BIT_FILE, fpga / HWH_FILE
        if bit.is_file() != hwh.is_file():
            raise BundleError(f"{fpga} has only one of {BIT_FILE} and {HWH_FILE}; PYNQ needs both")
        if bit.is_file():
            arch, mhz, instances = _fpga_build(fpga)
            if meta["arch"] is not None and not arch.same_hardware(_arch(meta["arch"], "model")):
                raise BundleError(f"the model was compiled for {config.arch} but {bit} was built for "
                                  f"{arch.name}: recompile or rebuild so they match")
            meta["bitstream_arch"] = dict(arch.to_json_dict(), name=arch.name)
            meta["clock_mhz"], meta["instances"] = mhz, instances
            copies["bitstream"], copies["hwh"] = (bit, BIT_FILE), (hwh, HWH_FILE)
        else:
            log.warning("board: no bitstream in %s (Vivado not run?): the bundle serves onnx and emulator only", fpga)

    out = Path(config.out)
    with output_lock(out, "bundle", BundleError):
        _write_bundle(config, out, meta, copies)
    log.info("board: wrote bundle %s (%s)", out, ", ".join(sorted(meta["files"].values())))
    return out


def _write_bundle(config: BundleConfig, out: Path, meta: dict, copies: dict) -> None:
    """Fill a temp folder next to `out`, verify it, then swap it in (0644 files, 0755 folder)."""
    with temp_folder(out) as tmp:
        meta["files"], meta["sha256"], meta["sources"] = {}, {}, {}
        for role, (src, name) in copies.items():
            shutil.copyfile(src, tmp / name)
            os.chmod(tmp / name, ARTIFACT_MODE)
            meta["files"][role] = name
            meta["sha256"][name] = _sha256(tmp / name)
            meta["sources"][role] = str(src)
        meta["config"] = asdict(config)
        (tmp / MODEL_JSON).write_text(json.dumps(meta, indent=1))
        if config.verify_samples and "tmodel" in meta["files"]:
            from board.verify import verify_driver_against_onnx   # imports the backends, which import this module

            figures = verify_driver_against_onnx(load_bundle(tmp), config.verify_samples)
            meta["verification"]["board_driver"] = figures
            if figures["min_cosine_similarity"] < config.min_cosine:
                raise BundleError(f"the compiled model through our driver disagrees with onnxruntime (cosine "
                                  f"{figures['min_cosine_similarity']:.4f} < {config.min_cosine})")
            (tmp / MODEL_JSON).write_text(json.dumps(meta, indent=1))
            log.info("board: driver on the emulated PYNQ vs onnxruntime: max abs error %.4g, min cosine %.5f",
                     figures["max_abs_error"], figures["min_cosine_similarity"])
        os.chmod(tmp / MODEL_JSON, ARTIFACT_MODE)
        replace_folder(tmp, out)


def load_bundle(root: str | Path, check_hashes: bool = False) -> Bundle:
    """Read and check `root/model.json` and the files it names."""
    root = Path(root)
    if not root.is_dir():
        raise BundleError(f"bundle folder {root} does not exist (run `make bundle`)")
    meta = _read_json(root / MODEL_JSON, "bundle manifest")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BundleError(f"{root / MODEL_JSON} is not a board bundle manifest")
    try:
        files = dict(meta["files"])
        for name in files.values():
            if not (root / name).is_file():
                raise BundleError(f"bundle {root} is missing {name} (listed in {MODEL_JSON})")
            if check_hashes and name not in (meta.get("sha256") or {}):
                raise BundleError(f"bundle file {root / name} has no sha256 in {MODEL_JSON}: rebuild the bundle")
            if check_hashes and _sha256(root / name) != meta["sha256"][name]:
                raise BundleError(f"bundle file {root / name} differs from the one bundled (sha256 in "
                                  f"{MODEL_JSON}): rebuild the bundle")
        base_mean = meta.get("base_mean")
        bundle = Bundle(
            root=root, name=str(meta["name"]), input_name=str(meta["input"]["name"]),
            input_shape=tuple(int(v) for v in meta["input"]["shape"]),
            output_name=str(meta["output"]["name"]), feature_dim=int(meta["feature_dim"]),
            preprocessing=Preprocessing.from_dict(meta["preprocessing"]),
            base_mean=None if base_mean is None else np.asarray(base_mean, dtype=np.float32),
            files=files, model_arch=_arch(meta.get("arch"), str(root / MODEL_JSON)),
            bitstream_arch=_arch(meta.get("bitstream_arch"), str(root / MODEL_JSON)), meta=meta,
            instances=Instances.from_dict(meta.get("instances")))
    except ContractError as exc:
        raise BundleError(f"{root / MODEL_JSON}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{root / MODEL_JSON} is incomplete: {exc!r}") from None
    if bundle.base_mean is not None and bundle.base_mean.shape != (bundle.feature_dim,):
        raise BundleError(f"{root / MODEL_JSON}: base mean has {bundle.base_mean.size} values, "
                          f"feature dimension is {bundle.feature_dim}")
    return bundle
