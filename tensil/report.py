"""The compile report (contract 3) and the all-or-nothing writing of a compiled model.

`<name>.report.json` holds: the config, compile time, program and constants sizes, memory
use (peaks, homes and addresses of every activation buffer), estimated cycles in Tensil's
own model and in the hardware-aware model with a per-layer table, fixed-point overflow counts
(weights at quantization; activations on sample inputs, from the emulator's counters), the
float activation ranges per layer and which layers exceed the data type's range, and the
emulator-vs-onnxruntime error on sample inputs, next to a float computation that rounds once per
layer (`tensil.precision`: why a cosine is low, and a warning below 0.99). The I/O section gives
every input's and output's shape in the host layout, DRAM0 span and, where the ONNX model
differs (NHWC input, NHWC-flattened or Softmax output), its ONNX shape and the mapping.
`warnings` collects everything the user should read (front end and precision).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from tensil.compiler.errors import CompileError
from tensil.compiler.passes import reference_forward
from tensil.compiler.pipeline import CompiledModel
from tensil.emulator import ModelRunner
from tensil import estimator
from tensil.axi import count_4k_crossings
from tensil.precision import MIN_COSINE, explain, layer_noise, one_rounding_forward
from tensil.tmodel import write_model
from safeio import ARTIFACT_MODE, temp_path

REPORT_FORMAT = "tensil-compile-report/1"
CLOCKS_MHZ = (50, 125)


def sample_inputs(compiled: CompiledModel, n: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Standard-normal inputs (the scale of normalised images) shaped as the ONNX model takes them."""
    rng = np.random.default_rng(seed)
    g = compiled.graph
    return [{name: rng.standard_normal(g.onnx_shape(name)).astype(np.float32) for name in g.inputs}
            for _ in range(n)]


def host_feeds(compiled: CompiledModel, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """ONNX-shaped inputs -> the arrays the compiled model takes (NHWC inputs transposed)."""
    return {name: compiled.graph.to_host(name, x) for name, x in feeds.items()}


def reference_session(compiled: CompiledModel, onnx_path: str | Path):
    """onnxruntime on the model, exposing every tensor an output is compared with."""
    import onnx
    import onnxruntime as ort  # only the report needs it

    model = onnx.load(str(onnx_path))
    listed = {o.name for o in model.graph.output}
    for t in compiled.graph.reference_tensors():
        if t not in listed:
            model.graph.output.append(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(a @ b / (na * nb))


SATURATION_KINDS = ("mac_saturations", "accumulate_saturations", "simd_saturations")


def run_by_layer(compiled: CompiledModel, feeds: dict[str, np.ndarray]) -> tuple[dict, dict, int]:
    """Emulate one input layer by layer: (outputs, saturation counts per layer, clipped inputs).

    The machine state carries over between the slices, so this is the whole program run once;
    the counters are read after each layer's instructions.
    """
    runner = ModelRunner(compiled.loaded(), check_hazards=False)  # `emit` checked every rule already
    for name, x in host_feeds(compiled, feeds).items():
        runner.write_input(name, x)
    counters, instrs, per_layer = runner.machine.counters, compiled.lowered.instrs, {}
    for g in compiled.lowered.groups:
        before = [getattr(counters, k) for k in SATURATION_KINDS]
        if g.end > g.start:
            runner.machine.execute(instrs[g.start:g.end])
        delta = {k: getattr(counters, k) - b for k, b in zip(SATURATION_KINDS, before)}
        if any(delta.values()):
            per_layer[g.name] = delta
    outputs = {o: runner.read_output(o, compiled.graph.io_shapes[o]) for o in compiled.graph.outputs}
    return outputs, per_layer, runner.input_overflows


def verify(compiled: CompiledModel, onnx_path: str | Path, samples: list[dict[str, np.ndarray]]) -> dict:
    """Emulate the program and onnxruntime side by side on the same inputs."""
    sess = reference_session(compiled, onnx_path)
    g, dtype = compiled.graph, compiled.arch.dtype
    per_sample, per_layer, input_overflows, once = [], {}, 0, []
    for feeds in samples:
        ours, saturations, clipped = run_by_layer(compiled, feeds)
        onnx_out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
        ref = {name: g.reference(name, onnx_out) for name in g.outputs}
        one = one_rounding_forward(compiled.network, host_feeds(compiled, feeds), dtype)
        once += [cosine(one[name], ref[name]) for name in g.outputs]
        input_overflows += clipped
        for layer, counts in saturations.items():
            acc = per_layer.setdefault(layer, dict.fromkeys(SATURATION_KINDS, 0))
            for k, v in counts.items():
                acc[k] += v
        for name in compiled.graph.outputs:
            diff = np.abs(ours[name].astype(np.float64) - ref[name].reshape(ours[name].shape))
            per_sample.append({"output": name, "max_abs_error": float(diff.max()),
                               "mean_abs_error": float(diff.mean()), "cosine_similarity": cosine(ours[name], ref[name]),
                               "reference_max_abs": float(np.abs(ref[name]).max())})
    min_cos = min(s["cosine_similarity"] for s in per_sample)
    host = [host_feeds(compiled, f) for f in samples]
    return {
        "reference": "onnxruntime (float32, CPU)",
        "samples": len(samples),
        "max_abs_error": max(s["max_abs_error"] for s in per_sample),
        "min_cosine_similarity": min_cos,
        "precision": explain(min_cos, min(once), layer_noise(compiled.network, host, dtype), dtype, MIN_COSINE),
        "per_sample": per_sample,
        "emulator_saturations_by_layer": per_layer,
        "emulator_saturations_total": {k: sum(v[k] for v in per_layer.values()) for k in SATURATION_KINDS},
        "input_overflows": input_overflows,
    }


def activation_ranges(compiled: CompiledModel, samples: list[dict[str, np.ndarray]]) -> dict:
    """Float ranges per layer; the layers whose accumulators or outputs exceed the data type."""
    ranges: dict[str, dict] = {}
    for feeds in samples:
        reference_forward(compiled.network, host_feeds(compiled, feeds), ranges)
    limit = compiled.arch.dtype.max_value
    saturating = [
        {"layer": name, "max_abs": max(r.values()), "limit": limit, "over_by": max(r.values()) / limit}
        for name, r in ranges.items() if max(r.values()) > limit
    ]
    return {"per_layer": ranges, "limit": limit, "saturating_layers": saturating}


def estimates(compiled: CompiledModel) -> tuple[dict, list[dict]]:
    """Both cycle models over the whole program, and the per-layer table."""
    low = compiled.lowered
    groups = [g.span() for g in low.groups]
    est = estimator.estimate(low.instrs, compiled.arch, groups=groups, clocks_mhz=CLOCKS_MHZ)
    summary = est.to_json_dict()
    per_group = summary.pop("groups")
    table = []
    for g, ge in zip(low.groups, per_group):
        row = {"name": g.name, "kind": g.kind, "onnx_nodes": g.info.get("sources", []),
               "first_instruction": g.start, **{k: v for k, v in ge.items() if k != "name"}}
        row.update({k: v for k, v in g.info.items() if k not in ("sources", "macs")})
        table.append(row)
    return summary, table


def hardware_rules(compiled: CompiledModel) -> dict:
    """What the program was checked against (it passed, or compilation would have failed)."""
    return {
        "hazard_check": "passed",
        "rules": "tensil.hazards (stalls, encoding, ranges, driver probe, accumulator and read-back hazards)",
        "bursts_crossing_4k": count_4k_crossings(compiled.lowered.instrs, compiled.arch),
    }


def build_report(compiled: CompiledModel, onnx_path: str | Path, config: dict, samples: int = 2,
                 seed: int = 0) -> dict:
    low, arch = compiled.lowered, compiled.arch
    inputs = sample_inputs(compiled, samples, seed)
    summary, table = estimates(compiled)
    spans = {s.name: s for s in compiled.inputs + compiled.outputs}
    live = set(compiled.network.inputs) | {step.output for step in compiled.network.steps}
    verification = verify(compiled, onnx_path, inputs) if samples else {"samples": 0}
    precision_warning = verification.get("precision", {}).get("warning")
    return {
        "format": REPORT_FORMAT,
        "name": compiled.name,
        "onnx": str(onnx_path),
        "arch": {"name": arch.name, **arch.to_json_dict()},
        "config": config,
        "compile_seconds": compiled.seconds,
        "program": {
            "instructions": len(low.instrs),
            "bytes": len(compiled.program),
            "by_kind": dict(Counter(type(i).__name__ for i in low.instrs)),
        },
        "consts": {"vectors": low.consts.size, "bytes": len(compiled.consts)},
        "memory": {
            "local_peak_vectors": low.local_peak, "local_depth": arch.local_depth,
            "accumulator_peak_vectors": low.acc_peak, "accumulator_depth": arch.accumulator_depth,
            "dram0_vectors": low.dram0_size, "dram1_vectors": low.consts.size,
            "spilled_to_dram0": low.spilled,
            "buffers": [{"tensor": b.tensor, "shape": [b.channels, b.height, b.width], "pad": b.pad,
                         "home": b.home, "size": b.size} for b in low.buffers.values() if b.tensor in live],
        },
        "estimate": summary,
        "hardware_rules": hardware_rules(compiled),
        "layers": table,
        "io": {
            "inputs": [io_entry(compiled, n, spans[n]) for n in compiled.graph.inputs],
            "outputs": [io_entry(compiled, n, spans[n]) for n in compiled.graph.outputs],
        },
        "warnings": list(compiled.graph.warnings) + ([precision_warning] if precision_warning else []),
        "fixed_point": {
            "data_type": arch.data_type,
            "weight_overflows": {k: v for k, v in low.consts.overflow.items()},
            "weight_overflow_total": int(sum(low.consts.overflow.values())),
            "activations": activation_ranges(compiled, inputs),
        },
        "verification": verification,
    }


def io_entry(compiled: CompiledModel, name: str, span) -> dict:
    """One input or output: host-layout shape (`onnx_shape`, what `emulate` reads and writes), DRAM0 span,
    and where the ONNX model's tensor differs, how (`onnx_model`)."""
    entry = {"name": name, "onnx_shape": compiled.graph.io_shapes[name], "base": span.base, "size": span.size}
    view = compiled.graph.views.get(name)
    if view is not None:
        entry["onnx_model"] = {"tensor": view.onnx_name, "shape": list(view.onnx_shape),
                               "permutation": list(view.perm) if view.perm else None, "note": view.note}
    return entry


def report_path(out_dir: str | Path, name: str) -> Path:
    return Path(out_dir) / f"{name}.report.json"


def write_outputs(compiled: CompiledModel, out_dir: str | Path, report: dict) -> Path:
    """Write `.tmodel/.tprog/.tdata/.report.json` together: all four files or none."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CompileError(f"cannot create output directory {out_dir}: {e.strerror}") from None
    tmp = temp_path(out_dir / compiled.name)   # pid-tagged: a killed compile's folder is removed by the next one
    tmp.mkdir()
    try:
        write_model(tmp, compiled.name, compiled.arch, compiled.program, compiled.consts,
                    compiled.inputs, compiled.outputs)
        model_files = [f"{compiled.name}.{ext}" for ext in ("tdata", "tprog", "tmodel")]
        # what the bundle checks the model files against (the .tmodel format has no hashes)
        report["files_sha256"] = {n: hashlib.sha256((tmp / n).read_bytes()).hexdigest() for n in model_files}
        report_path(tmp, compiled.name).write_text(json.dumps(report, indent=1, default=_json_default) + "\n")
        names = [f"{compiled.name}.{ext}" for ext in ("tdata", "tprog", "report.json", "tmodel")]
        for n in names:
            os.chmod(tmp / n, ARTIFACT_MODE)
            os.replace(tmp / n, out_dir / n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir / f"{compiled.name}.tmodel"


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
