"""HaLo-FL (fl_bridge/halo): the HaLoSim surrogate against the paper's Table II, HaLo-PS paths
and floors, the FPGA cost model against `python -m tensil inspect --estimate` and `python -m
fpga estimate`, settings refused with one line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fl_bridge.cli import main
from fl_bridge.halo.costs import TABLE_II, HaLoSimSurrogate, StructuralCrossbar
from fl_bridge.halo.fpga import FPGACost, deploy_type, load_program
from fl_bridge.halo.network import layer_shapes
from fl_bridge.halo.selector import StepRule, children, paths, select
from fl_bridge.model import ModelConfig, build_model
from tensil.arch import load_arch, save_arch
from train.backbones import BackboneSpec

ROOT = Path(__file__).resolve().parents[2]
TIE = ("be", "ba", "bw")


@pytest.mark.parametrize("dataset", sorted(TABLE_II))
def test_the_surrogate_reproduces_table_ii_ratios_within_2_percent(dataset):
    """2-4-4 against 8-8-8 for energy, latency and area, and the 8-8-8 figures themselves."""
    model, rows = HaLoSimSurrogate.fit(dataset), TABLE_II[dataset]
    full, low = model.cost((8, 8, 8)), model.cost((2, 4, 4))
    for i, metric in enumerate(("energy", "latency", "area"), start=1):
        reported = rows["2-4-4"][i] / rows["8-8-8"][i]
        assert low[metric] / full[metric] == pytest.approx(reported, rel=0.02), metric
        assert full[metric] == pytest.approx(rows["8-8-8"][i], rel=0.02), metric


def test_the_paper_rows_of_one_type_hold_only_one_dimension_lower():
    """Table II's client-type rows (reported) leave unchanged the metrics the surrogate's forms say
    their dimension does not drive (the forms the surrogate is built on)."""
    for rows in TABLE_II.values():
        assert rows["halo-L"][3] == rows["8-8-8"][3]  # latency clients lower ba: no area change
        assert rows["halo-E"][2] == rows["8-8-8"][2]  # energy clients lower be: no latency change
        assert rows["halo-A"][2] == rows["8-8-8"][2]  # area clients lower bw: no latency change


def test_halo_ps_first_steps_with_the_calibrated_surrogate():
    model = HaLoSimSurrogate.fit("cifar10")
    rule = StepRule("every-round", rounds=4)
    energy, latency, area = paths((8, 8, 8), ["energy", "latency", "area"], model, rule, 2, (2, 4, 4), TIE, 4)
    assert energy[:3] == [(8, 8, 8), (8, 8, 6), (8, 8, 4)]  # ba and be tie at the first step: be (tie-break)
    assert latency[:3] == [(8, 8, 8), (8, 6, 8), (8, 4, 8)]
    assert area == [(8, 8, 8), (6, 8, 8), (4, 8, 8), (2, 8, 8)]
    # the other tie-break order sends the energy client down ba first
    assert select((8, 8, 8), "energy", model, 2, (2, 4, 4), ("ba", "be", "bw")) == (8, 6, 8)
    assert select((8, 8, 8), "none", model, 2, (2, 4, 4), TIE) == (8, 8, 8)


@pytest.mark.parametrize("constraint", ["energy", "latency", "area", "none"])
def test_floors_are_never_crossed(constraint):
    model = HaLoSimSurrogate.fit("emnist")
    floors = (4, 6, 4)
    (path,) = paths((8, 8, 8), [constraint], model, StepRule("every-round", rounds=20), 2, floors, TIE, 20)
    assert all(all(b >= f for b, f in zip(p, floors)) for p in path)
    if constraint != "none":
        assert path[-1] == floors  # every dimension ends at its floor, then the client stays there
    assert children(floors, 2, floors) == {}


def test_the_step_rule():
    assert [r for r in range(1, 13) if StepRule("every-k", 0, 12).steps_before(r)] == [5, 9]
    assert [r for r in range(1, 6) if StepRule("every-round", 0, 5).steps_before(r)] == [2, 3, 4, 5]
    assert [r for r in range(1, 10) if StepRule("every-k", 2, 9).steps_before(r)] == [3, 5, 7, 9]


def test_the_structural_model_counts_our_network():
    model = build_model(ModelConfig(BackboneSpec("resnet9", 16, True, 3, 16, "batch"), 10, "fedavg"))
    shapes = layer_shapes(model, 3, 16)
    assert shapes[0].cin == 3 and shapes[0].hin == 16 and shapes[-1].cout == 10
    cm = StructuralCrossbar(shapes)
    full = cm.cost((8, 8, 8))
    assert cm.cost((4, 8, 8)).area < full.area and cm.cost((8, 8, 4)).area < full.area
    assert cm.cost((8, 4, 8)).area == full.area  # activations are inputs, never stored in crossbars
    assert cm.cost((8, 4, 8)).latency < full.latency and cm.cost((8, 8, 4)).energy < full.energy


def _tiny_onnx(path: Path) -> Path:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (24, 3, 3, 3)).astype(np.float32), "W1"),
             numpy_helper.from_array(rng.normal(0, 0.1, (24,)).astype(np.float32), "B1"),
             numpy_helper.from_array(rng.normal(0, 0.1, (16, 24, 3, 3)).astype(np.float32), "W2"),
             numpy_helper.from_array(rng.normal(0, 0.1, (16,)).astype(np.float32), "B2")]
    nodes = [helper.make_node("Conv", ["x", "W1", "B1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "W2", "B2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["y"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    return path


def _cli(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("dtype", ["FP8BP4", "FP16BP8"])
def test_the_fpga_model_agrees_with_tensil_inspect_and_fpga_estimate(tmp_path, dtype):
    from dataclasses import replace

    arch = replace(load_arch("custom_perf"), data_type=dtype, name=f"halo_{dtype}")
    tarch = tmp_path / f"halo_{dtype}.tarch"
    save_arch(arch, tarch)
    onnx_path = _tiny_onnx(tmp_path / "tiny.onnx")
    _cli("tensil", "compile", "--onnx", str(onnx_path), "--arch", str(tarch), "--out", str(tmp_path / "t"))
    (tmodel,) = sorted((tmp_path / "t").glob("*.tmodel"))
    model = FPGACost(load_program(tmodel), arch, 50.0)
    bits = {"FP8BP4": 8, "FP16BP8": 16}[dtype]

    printed = _cli("tensil", "inspect", "--tmodel", str(tmodel), "--estimate", "--mhz", "50")
    kcycles, ms = re.search(r"hardware-aware: ([\d.]+) KCycles = ([\d.]+) ms at 50 MHz", printed).groups()
    assert round(model.cycles(bits, bits) / 1e3, 1) == float(kcycles)
    assert round(model.cost((bits, bits, 8)).latency, 3) == float(ms)

    table = _cli("fpga", "estimate", "--arch", str(tarch))
    tcu = {row.split()[0]: float(row.split()[1]) for row in table.splitlines()[1:5]}
    r = model.resources(bits, bits)
    assert (r.dsp, r.bram36, r.lut, r.ff) == (tcu["DSP48E1"], tcu["BRAM36"], tcu["LUT"], tcu["FF"])
    assert model.describe((bits, bits, 8))["deploy_type"] == dtype

    # narrower than any Tensil type: fewer LUT/FF, never more cycles; be costs nothing on Tensil
    assert model.resources(4, 4).lut < r.lut and model.cycles(4, 4) <= model.cycles(bits, bits)
    assert model.cost((bits, bits, 4)) == model.cost((bits, bits, 8))


def test_deploy_type():
    assert deploy_type(2, 4) == "FP8BP4" and deploy_type(8, 8) == "FP8BP4" and deploy_type(8, 16) == "FP16BP8"


@pytest.mark.parametrize("flags, says", [
    (["--halo-energy", "3"], "add up to --clients"),
    (["--halo-floors", "2-4"], "--halo-floors"),
    (["--halo-start", "8-8-9"], "--halo-start"),
    (["--halo-start", "6-8-8", "--halo-floors", "8-4-4"], "above --halo-start"),
    (["--halo-tie-break", "be,bw,bw"], "--halo-tie-break"),
    (["--halo-cost-model", "spice"], "--halo-cost-model"),
    (["--halo-step-rule", "sometimes"], "--halo-step-rule"),
    (["--halo-aggregation", "fp32"], "--halo-aggregation"),
    (["--halo-step", "3"], "--halo-step"),
])
def test_bad_halo_settings_are_one_line_and_exit_2(tmp_path, capsys, flags, says):
    rc = main(["run", "--method", "halo-fl", "--out", str(tmp_path / "run"), *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("fl_bridge: error: ") and says in err[0]
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- the federation (in-process grid)

def _small(tmp_path, name: str = "run", **kw):
    from fl_bridge.config import RunConfig

    base = dict(out=str(tmp_path / name), image_size=16, feature_maps=4, clients=3, per_round=3, rounds=3,
                samples_per_client=24, batch_size=8, eval_every=3, episodes=4, shots=(1,), queries=5,
                method="halo-fl", halo_energy=1, halo_latency=1, halo_area=1, halo_step_rule="every-round")
    return RunConfig(**{**base, **kw})


class _Recording:
    """An InlineGrid that keeps every reply (to look at what clients upload)."""

    def __new__(cls, stop_after: int | None = None):
        from fl_bridge.inline import InlineGrid

        class Grid(InlineGrid):
            def __init__(self):
                super().__init__(3)
                self.replies, self.calls = [], 0

            def send_and_receive(self, messages, *, timeout=None):
                self.calls += 1
                if stop_after is not None and self.calls > stop_after:
                    raise KeyboardInterrupt("server killed")
                out = list(super().send_and_receive(messages, timeout=timeout))
                self.replies.append(out)
                return out

        return Grid()


def test_a_halo_run_steps_uploads_at_bw_resumes_and_plots(tmp_path):
    import torch

    from fl_bridge.codec import CodecConfig, decode
    from fl_bridge.halo.messages import upload_codec
    from fl_bridge.inline import task_identity
    from fl_bridge.model import layout
    from fl_bridge.precision.accounting import message_bits
    from fl_bridge.precision.quantizers import Pow2Quantizer
    from fl_bridge.server import run_federation

    cfg = _small(tmp_path)
    grid = _Recording()
    with task_identity():
        run = run_federation(grid, cfg)
    rounds = json.loads(run.metrics_path.read_text())["rounds"]
    assert [r["halo_precisions"] for r in rounds[1:]] == [
        [[8, 8, 8]] * 3, [[8, 8, 6], [8, 6, 8], [6, 8, 8]], [[8, 8, 4], [8, 4, 8], [4, 8, 8]]]
    from fl_bridge.data import dataset, model_config

    lay = layout(build_model(model_config(cfg, dataset(cfg.dataset, cfg.data_root, cfg.image_size))))
    bits = {bw: message_bits(lay, CodecConfig(bw, scale="pow2")).total for bw in (4, 6, 8)}
    assert rounds[2]["bits_up"] == 2 * bits[8] + bits[6] and rounds[3]["bits_up"] == 2 * bits[8] + bits[4]
    # round 2: the area client (partition 2) uploads its 6-bit forward weights in 8-bit slots
    reply = next(m for m in grid.replies[1] if m.content["metrics"]["partition-id"] == 2)
    tensors = decode(reply.content["arrays"], lay, upload_codec(6))
    for name, shape in lay:
        if len(shape) > 1:
            x = torch.from_numpy(tensors[name].astype(np.float64))
            assert torch.equal(Pow2Quantizer(6).fake(x), x), name
    assert (run.path / "halo_paths.png").stat().st_size > 0 and (run.path / "halo_cost_model.json").is_file()



def test_a_resumed_strategy_continues_the_paths(tmp_path):
    """The precisions after the last saved round come back from metrics (a killed run resumes its paths)."""
    from fl_bridge.halo.settings import settings
    from fl_bridge.halo.strategy import HaloFedAvg

    halo = settings(_small(tmp_path, rounds=6))
    def strategy():
        return HaloFedAvg(None, None, None, None, [], "", 1, halo=halo, cost_model=HaLoSimSurrogate.fit("cifar10"))
    straight, resumed = strategy(), strategy()
    saved = []
    for rnd in range(1, 4):
        straight.step(rnd)
        saved.append({"round": rnd, "halo_precisions": [list(p) for p in straight.precisions]})
    resumed.resume(saved)
    for rnd in range(4, 7):
        straight.step(rnd)
        resumed.step(rnd)
        assert resumed.precisions == straight.precisions
    expected = paths(halo.start, halo.constraints(), straight.cost_model, halo.rule, 2, halo.floors, TIE, 6)
    assert straight.precisions == [p[-1] for p in expected] and straight.precisions[2] == (2, 8, 4)

