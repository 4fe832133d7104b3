"""`python -m tensil compile | emulate | inspect`.

Every command maps its flags onto a config dataclass (saved in the compile report). User errors
print `tensil: error: <one line>` to stderr and exit with status 2, leaving no partial files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from safeio import (OneLineParser, UsageError, check_input_file, check_int_range, check_output, check_range,
                    output_lock)
from contracts import DEFAULT_ARCH, compiled_name, onnx_path, tensil_dir
from tensil.arch import ArchError, load_arch

DEFAULT_ONNX = onnx_path()
DEFAULT_OUT = tensil_dir()


@dataclass
class CompileConfig:
    onnx: str = DEFAULT_ONNX
    arch: str = DEFAULT_ARCH
    out: str = DEFAULT_OUT
    name: str | None = None
    backend: str = "ours"
    samples: int = 2
    seed: int = 0
    min_cosine: float = 0.9   # refuse the compiled model below this emulator-vs-onnxruntime cosine
    merge_rows: bool = False
    pack_taps: bool = True
    drop_softmax: bool = False
    flatten_order: str = "nhwc"
    avoid_4k: bool = True
    plot: bool = True                    # <name>.cycles.png next to the report


@dataclass
class EmulateConfig:
    tmodel: str
    input: str
    out: str
    arch: str | None = None
    output_shape: str | None = None


@dataclass
class InspectConfig:
    tmodel: str
    arch: str | None = None
    listing: bool = False
    memory: bool = False
    estimate: bool = False
    mhz: float = 125.0


def log(msg: str) -> None:
    print(f"tensil: {msg}", file=sys.stderr)


# ------------------------------------------------------------------------------------ compile
def run_compile(cfg: CompileConfig) -> Path:
    from tensil.compiler.errors import CompileError
    from tensil.compiler.pipeline import CompileOptions, compile_onnx
    from tensil.report import build_report, write_outputs

    arch = load_arch(cfg.arch)
    check_compile_inputs(cfg)
    if cfg.backend == "upstream":
        return run_upstream(cfg, arch)
    name = cfg.name or compiled_name(Path(cfg.onnx).stem, arch.name)
    with output_lock(Path(cfg.out) / f"{name}.tmodel", "compiled model", CompileError):  # one writer per model
        return _compile(cfg, arch)


def check_compile_inputs(cfg: CompileConfig) -> None:
    """CompileError with one line for a flag or input that cannot work, before any work; an ONNX
    with an export sidecar next to it must be the file the sidecar's sha256 describes."""
    from tensil.compiler.errors import CompileError

    try:
        check_int_range("--samples", cfg.samples, 0, 10_000)
        check_int_range("--seed", cfg.seed, 0)
        check_range("--min-cosine", cfg.min_cosine, -1, 1)
        check_output("--out", cfg.out, "folder")
        check_input_file("--onnx", cfg.onnx, "ONNX file")
    except UsageError as e:
        raise CompileError(str(e)) from None
    onnx, sidecar = Path(cfg.onnx), Path(cfg.onnx).with_suffix(".json")
    if not sidecar.is_file():
        return
    try:
        recorded = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        raise CompileError(f"the sidecar {sidecar} of {onnx} is not readable JSON") from None
    if isinstance(recorded, dict) and recorded.get("format") == "fsl-onnx-sidecar":
        if (recorded.get("onnx") or {}).get("sha256") != hashlib.sha256(onnx.read_bytes()).hexdigest():
            raise CompileError(f"{onnx} differs from the file its sidecar {sidecar} describes (sha256): re-export it")


def _compile(cfg: CompileConfig, arch) -> Path:
    from tensil.compiler.errors import CompileError
    from tensil.compiler.pipeline import CompileOptions, compile_onnx
    from tensil.report import build_report, write_outputs

    options = CompileOptions(merge_rows=cfg.merge_rows, pack_taps=cfg.pack_taps, drop_softmax=cfg.drop_softmax,
                             flatten_order=cfg.flatten_order, avoid_4k=cfg.avoid_4k)
    compiled = compile_onnx(cfg.onnx, arch, cfg.name, options)
    log(f"compiled {cfg.onnx} for {arch.name} in {compiled.seconds:.2f} s: "
        f"{len(compiled.lowered.instrs)} instructions, {compiled.lowered.consts.size} constant vectors")
    start = time.perf_counter()
    report = build_report(compiled, cfg.onnx, asdict(cfg), samples=cfg.samples, seed=cfg.seed)
    check = report["verification"]
    if cfg.samples and not (math.isfinite(check["min_cosine_similarity"]) and math.isfinite(check["max_abs_error"])
                            and check["min_cosine_similarity"] >= cfg.min_cosine):
        raise CompileError(f"verification failed: the compiled model disagrees with onnxruntime on {check['samples']} "
                           f"sample input(s) (cosine {check['min_cosine_similarity']:.4g} < --min-cosine "
                           f"{cfg.min_cosine:g}, max abs error {check['max_abs_error']:.3g}); nothing written")
    path = write_outputs(compiled, cfg.out, report)
    est, ver = report["estimate"], report["verification"]
    hw = report["hardware_rules"]
    log(f"hardware rules: every rule of tensil.hazards holds; {hw['bursts_crossing_4k']} AXI burst(s) would cross "
        f"a 4 KiB boundary" + ("" if cfg.avoid_4k else " (avoidance off: --allow-4k-crossings)"))
    log(f"estimate: {est['tensil_cycles'] / 1e3:.1f} KCycles (Tensil model), MAC efficiency "
        f"{100 * est['mac_efficiency']:.1f}%, hardware-aware {est['latency_ms']['125MHz']:.2f} ms at 125 MHz")
    if cfg.samples:
        log(f"verified on {ver['samples']} sample input(s) in {time.perf_counter() - start:.1f} s: cosine "
            f"{ver['min_cosine_similarity']:.5f}, max abs error {ver['max_abs_error']:.4g} vs onnxruntime")
    for layer, counts in ver.get("emulator_saturations_by_layer", {}).items():
        log(f"warning: layer {layer} saturated {sum(counts.values())} times in the emulator on the sample inputs "
            f"({', '.join(f'{k} {v}' for k, v in counts.items() if v)})")
    for s in report["fixed_point"]["activations"]["saturating_layers"]:
        log(f"warning: layer {s['layer']} reaches |{s['max_abs']:.1f}|, beyond the {arch.data_type} limit "
            f"{s['limit']:.2f} (x{s['over_by']:.2f}) on the sample inputs")
    if cfg.samples:
        p = ver["precision"]
        log(f"precision: emulator cosine {p['emulator_vs_onnxruntime_cosine']:.5f}, float with one rounding per "
            f"layer {p['one_rounding_vs_onnxruntime_cosine']:.5f} (the rest is per-product rounding)")
    for w in report["warnings"]:
        log(f"warning: {w}")
    png = _plot(report, path) if cfg.plot else None
    log(f"wrote {path} (+ .tprog, .tdata, .report.json{', .cycles.png' if png else ''}) in {Path(cfg.out)}")
    cosine = f", cosine {ver['min_cosine_similarity']:.4f} vs onnxruntime" if cfg.samples else ""
    log(f"summary: {report['name']}: {report['program']['instructions']:,} instructions, "
        f"{est['latency_ms']['125MHz']:.2f} ms at 125 MHz / {est['latency_ms']['50MHz']:.2f} ms at 50 MHz "
        f"(hardware-aware){cosine}" + (f"; per-layer cycles in {png}" if png else ""))
    return path


def _plot(report: dict, tmodel: Path) -> Path | None:
    """The per-layer cycles PNG; a plotting failure is a warning (the compiled model is the product)."""
    try:
        from tensil.plots import cycles_png_path, plot_layer_cycles

        return plot_layer_cycles(report, cycles_png_path(tmodel.with_suffix(".report.json")))
    except (ImportError, OSError, ValueError, KeyError) as e:
        log(f"warning: no cycles plot ({type(e).__name__}: {e})")
        return None


def run_upstream(cfg: CompileConfig, arch) -> Path:
    import onnx

    from tensil.compiler.errors import CompileError
    from tensil.upstream import compile_upstream, docker_engine

    docker_engine()  # fail first, with the clear reason, if no engine answers
    if not Path(cfg.onnx).is_file():
        raise CompileError(f"ONNX file {cfg.onnx} does not exist")
    outputs = [o.name for o in onnx.load(cfg.onnx).graph.output]
    result = compile_upstream(cfg.onnx, arch, outputs, cfg.out)
    log(f"upstream Tensil wrote {result.tmodel} (log {result.log})")
    return result.tmodel


# ------------------------------------------------------------------------------------ emulate
def _report_for(tmodel: Path) -> dict | None:
    p = tmodel.with_name(tmodel.name[: -len(".tmodel")] + ".report.json") if tmodel.name.endswith(".tmodel") else None
    if p is None or not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError:
        return None


def _check_recorded_hashes(tmodel: Path, report: dict | None) -> None:
    """The model files against the sha256 values compile recorded in the report next to them
    (a model without a report, e.g. upstream's, is taken as it is)."""
    from tensil.tmodel import ModelError

    for name, digest in ((report or {}).get("files_sha256") or {}).items():
        path = tmodel.with_name(name)
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise ModelError(f"{path} differs from the file its report {tmodel.stem}.report.json describes "
                             "(sha256): compile again")


def _parse_shape(text: str) -> list[int]:
    from tensil.layout import LayoutError

    try:
        shape = [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise LayoutError(f"--output-shape {text!r} is not a comma-separated list of integers") from None
    if not shape or min(shape) < 1:
        raise LayoutError(f"--output-shape {text!r} is not a shape")
    return shape


def _host_input(x: np.ndarray, entry: dict, where: str) -> np.ndarray:
    """The ONNX-shaped input as the compiled model takes it (an NHWC input is transposed)."""
    from tensil.layout import LayoutError

    view = entry.get("onnx_model") or {}
    want = view.get("shape", entry["onnx_shape"])
    if list(x.shape) != list(want):
        raise LayoutError(f"{where} has shape {list(x.shape)}, the model takes {want}")
    return np.transpose(x, view["permutation"]) if view.get("permutation") else x


def _onnx_output(y: np.ndarray, entry: dict) -> np.ndarray:
    """The compiled output as the ONNX model gives it (an NHWC-flattened map put back in order)."""
    view = entry.get("onnx_model")
    if not view:
        return y
    flat = y.ravel()
    if view.get("permutation"):
        flat = np.empty_like(flat)
        flat[view["permutation"]] = y.ravel()
    return flat.reshape(view["shape"])


def run_emulate(cfg: EmulateConfig) -> Path:
    from tensil.emulator import ModelRunner
    from tensil.hazards import check_program
    from tensil.layout import LayoutError
    from tensil.tmodel import ModelError, read_model

    tmodel = Path(cfg.tmodel)
    loaded = read_model(tmodel, expect_arch=load_arch(cfg.arch) if cfg.arch else None)
    _check_recorded_hashes(tmodel, _report_for(tmodel))
    check_program(loaded.instructions(), loaded.arch)  # before any work: the hardware would get it wrong
    man = loaded.manifest
    if len(man.input_names) != 1 or len(man.output_names) != 1:
        raise ModelError(f"{tmodel}: emulate handles one input and one output, the model has "
                         f"{len(man.input_names)} and {len(man.output_names)}")
    try:
        with open(cfg.input, "rb") as f:
            magic = f.read(6)
        x = np.load(cfg.input, allow_pickle=False) if magic == b"\x93NUMPY" else None
    except OSError as e:
        raise LayoutError(f"cannot read {cfg.input}: {e.strerror or e}") from None
    except ValueError as e:
        raise LayoutError(f"{cfg.input} is not a plain numeric .npy array ({str(e).split('.')[0]})") from None
    if x is None:
        raise LayoutError(f"{cfg.input} is not a .npy file (save the input with numpy.save)")
    report = _report_for(tmodel)
    out_name = man.output_names[0]
    if cfg.output_shape:
        out_shape = _parse_shape(cfg.output_shape)
    elif report is not None:
        out_shape = report["io"]["outputs"][0]["onnx_shape"]
        x = _host_input(x, report["io"]["inputs"][0], cfg.input)
    else:
        raise LayoutError(f"no {tmodel.stem}.report.json next to the model: pass --output-shape (e.g. 1,80)")
    start = time.perf_counter()
    runner = ModelRunner(loaded, check_hazards=False)  # checked above, before the input was read
    y = runner.run({man.input_names[0]: x.astype(np.float32)}, {out_name: out_shape})[out_name]
    if report is not None and not cfg.output_shape:
        y = _onnx_output(y, report["io"]["outputs"][0])
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, y.astype(np.float32))
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    sat = runner.machine.counters.saturations
    log(f"emulated {man.name} in {time.perf_counter() - start:.2f} s ({sat} saturations, "
        f"{runner.input_overflows} input values clipped); wrote {out} {list(y.shape)}")
    return out


# ------------------------------------------------------------------------------------ inspect
def _hazard_verdict(instrs, arch) -> str:
    """One line: does the program pass tensil.hazards, and how many bursts cross 4 KiB."""
    from tensil.axi import count_4k_crossings
    from tensil.hazards import HazardError, check_program

    try:
        check_program(instrs, arch)
        verdict = "all pass"
    except HazardError as e:
        verdict = f"REFUSED, {e}"
    return f"{verdict}; {count_4k_crossings(instrs, arch)} AXI burst(s) would cross a 4 KiB boundary"


def run_inspect(cfg: InspectConfig) -> None:
    from tensil import estimator
    from tensil.estimator import EstimateError
    from tensil.isa import listing
    from tensil.tmodel import read_model

    tmodel = Path(cfg.tmodel)
    if not (math.isfinite(cfg.mhz) and cfg.mhz > 0):
        raise EstimateError(f"--mhz {cfg.mhz}: must be a positive number of MHz")
    loaded = read_model(tmodel, expect_arch=load_arch(cfg.arch) if cfg.arch else None)
    man, arch = loaded.manifest, loaded.arch
    instrs = loaded.instructions()
    report = _report_for(tmodel)
    _check_recorded_hashes(tmodel, report)
    print(f"model {man.name}: {len(instrs)} instructions ({len(loaded.program)} bytes), "
          f"{man.consts[0].size if man.consts else 0} constant vectors, arch {arch.data_type} A={arch.array_size}")
    for kind, spans in (("input", man.inputs), ("output", man.outputs)):
        for s in spans:
            print(f"  {kind} {s.name!r}: DRAM0 [{s.base}, {s.base + s.size}) = {s.size} vectors")
    print(f"hardware rules: {_hazard_verdict(instrs, arch)}")
    if cfg.memory:
        print(f"DRAM1: constants [0, {man.consts[0].size if man.consts else 0}) vectors")
        if report:
            m = report["memory"]
            print(f"local memory peak {m['local_peak_vectors']}/{m['local_depth']} vectors, accumulators "
                  f"{m['accumulator_peak_vectors']}/{m['accumulator_depth']}, DRAM0 {m['dram0_vectors']} vectors, "
                  f"spilled to DRAM0: {', '.join(m['spilled_to_dram0']) or 'none'}")
            for b in m["buffers"]:
                print(f"  {b['home']:<6} {b['size']:>6} vectors  pad {b['pad']}  {b['shape']}  {b['tensor']}")
        else:
            print("(no report next to the model: on-chip buffers unknown)")
    if cfg.estimate:
        groups = []
        if report:
            groups = [estimator.Group(r["name"], r["first_instruction"], r["first_instruction"] + r["instructions"],
                                      int(r.get("macs", 0))) for r in report["layers"]]
        est = estimator.estimate(instrs, arch, groups=groups, clocks_mhz=(cfg.mhz,))
        print(est.table(cfg.mhz))
        print(f"Tensil model: {est.tensil_cycles / 1e3:.1f} KCycles, MAC efficiency {100 * est.mac_efficiency:.1f}%; "
              f"hardware-aware: {est.hardware_cycles[cfg.mhz] / 1e3:.1f} KCycles = {est.latency_ms[cfg.mhz]:.3f} ms "
              f"at {cfg.mhz:g} MHz (instruction streaming included)")
    if cfg.listing:
        print(listing(instrs, loaded.layout))


# ------------------------------------------------------------------------------------ main
def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m tensil", description="Tensil compiler, emulator and inspector")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="ONNX -> .tmodel/.tprog/.tdata + .report.json")
    c.add_argument("--onnx", default=DEFAULT_ONNX, help=f"ONNX model (default {DEFAULT_ONNX})")
    c.add_argument("--arch", default=DEFAULT_ARCH, help="shipped arch name or .tarch path (default %(default)s)")
    c.add_argument("--out", default=DEFAULT_OUT, help="output directory (default %(default)s)")
    c.add_argument("--name", default=None,
                   help="full model name, files <name>.tmodel/... (default: <onnx stem>_<arch>)")
    c.add_argument("--backend", choices=("ours", "upstream"), default="ours",
                   help="ours, or upstream Tensil in Docker (needs a Docker engine)")
    c.add_argument("--samples", type=int, default=2, help="sample inputs for the report's verification (0 skips)")
    c.add_argument("--seed", type=int, default=0, help="seed of the sample inputs")
    c.add_argument("--min-cosine", type=float, default=0.9,
                   help="refuse (write nothing) when the emulator vs onnxruntime cosine on the samples is lower "
                        "(default %(default)s)")
    c.add_argument("--merge-rows", action="store_true",
                   help="one MatMul per kernel tap over a whole band (fewer instructions, a few more cycles)")
    c.add_argument("--no-pack-taps", dest="pack_taps", action="store_false",
                   help="do not move the horizontal kernel taps of narrow-input convolutions into lanes")
    c.add_argument("--drop-softmax", action="store_true",
                   help="drop a Softmax at the output without a warning (it is always dropped, as upstream does)")
    c.add_argument("--flatten-order", choices=("nhwc", "onnx"), default="nhwc",
                   help="order of a flattened spatial map at the output: upstream's NHWC (default) or ONNX's NCHW")
    c.add_argument("--allow-4k-crossings", dest="avoid_4k", action="store_false",
                   help="do not cut DRAM moves (or shift DRAM0 data) to keep AXI bursts inside 4 KiB pages")
    c.add_argument("--no-plot", dest="plot", action="store_false",
                   help="do not draw <name>.cycles.png (per-layer cycles) next to the report")
    e = sub.add_parser("emulate", help="run a .tmodel on an input .npy with the bit-exact emulator")
    e.add_argument("--tmodel", required=True)
    e.add_argument("--input", required=True, help="x.npy, float32, exactly as the ONNX model takes it (NCHW)")
    e.add_argument("--out", required=True, help="y.npy, exactly as the ONNX model gives it")
    e.add_argument("--arch", default=None, help="refuse a model compiled for another architecture")
    e.add_argument("--output-shape", default=None, help="ONNX output shape, e.g. 1,80 (default: from the report)")
    i = sub.add_parser("inspect", help="summary, listing, memory map and estimate of a .tmodel")
    i.add_argument("--tmodel", required=True)
    i.add_argument("--arch", default=None, help="refuse a model compiled for another architecture")
    i.add_argument("--listing", action="store_true", help="disassembly of every instruction")
    i.add_argument("--memory", action="store_true", help="memory map")
    i.add_argument("--estimate", action="store_true", help="cycle estimates and per-layer table")
    i.add_argument("--mhz", type=float, default=125.0, help="clock for --estimate (default %(default)s)")
    return p


def user_errors() -> tuple[type[BaseException], ...]:
    from tensil.compiler.errors import CompileError
    from tensil.emulator import EmulatorError
    from tensil.estimator import EstimateError
    from tensil.fixed import FixedPointError
    from tensil.hazards import HazardError
    from tensil.isa import ProgramError
    from tensil.layout import LayoutError
    from tensil.tmodel import ModelError
    from tensil.upstream import UpstreamError

    return (ArchError, CompileError, EmulatorError, EstimateError, FixedPointError, HazardError, ProgramError,
            LayoutError, ModelError, UpstreamError)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    fields = {k: v for k, v in vars(args).items() if k != "command"}
    try:
        if args.command == "compile":
            run_compile(CompileConfig(**fields))
        elif args.command == "emulate":
            run_emulate(EmulateConfig(**fields))
        else:
            run_inspect(InspectConfig(**fields))
    except user_errors() as e:
        print(f"tensil: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"tensil: error: {e.filename or ''}: {e.strerror or e}".replace(": : ", ": "), file=sys.stderr)
        return 2
    return 0
