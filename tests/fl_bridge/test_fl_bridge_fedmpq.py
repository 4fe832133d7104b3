"""FedMPQ: Alg. 2 on the paper's worked example (ResNet-20), plane pruning, bit-plane messages,
the Eq. 15 aggregation weights, the client's lasso, budgets and the CLI's bad input."""

from __future__ import annotations

import numpy as np
import pytest

from fl_bridge.errors import MalformedUpdate
from fl_bridge.fedmpq import wire
from fl_bridge.fedmpq.aggregate import aggregation_weights, consensus_bits, weighted_average
from fl_bridge.fedmpq.allocate import Allocator, average_bits
from fl_bridge.fedmpq.methods import client_budgets
from fl_bridge.fedmpq.planes import densities, drop_top_plane, from_planes, msb_prune, planes, quantize
from fl_bridge.fedmpq.train import lasso_gradient

# ResNet-20 (option A) conv/linear parameter counts: conv1, 6 stage-1, 6 stage-2, 6 stage-3 convs, fc
RESNET20 = [432] + [2304] * 6 + [4608] + [9216] * 5 + [18432] + [36864] * 5 + [640]


def test_resnet20_layout_has_the_papers_weight_count():
    assert sum(RESNET20) == 268_336


@pytest.mark.parametrize("budget,achieved", [(2, 2.007), (4, 4.007), (6, 6.077), (8, 7.588)])
def test_alg2_literal_reproduces_the_worked_example(budget, achieved):
    bits = Allocator("literal", b_min=1, b_max=8)([5] * 20, [0] * 20, RESNET20, budget)
    assert round(average_bits(bits, RESNET20), 3) == achieved
    if budget == 2:  # the largest layers are drained to 1 bit, the smallest grown to 8
        assert bits[14:19] == [1] * 5 and bits[13] == 1 and bits[0] == bits[19] == 8
    if budget == 8:  # the first-ranked layer is never grown
        assert bits[14] == 5 and all(b == 8 for i, b in enumerate(bits) if i != 14)


@pytest.mark.parametrize("budget", [1.5, 2, 3, 4, 4.5, 6, 7.9, 8])
@pytest.mark.parametrize("start", [1, 5, 8])
def test_alg2_strict_is_never_over_budget(budget, start):
    rng = np.random.default_rng(int(budget * 10) + start)
    pruned = rng.integers(0, 3, len(RESNET20)).tolist()
    bits = Allocator("strict", b_min=1, b_max=8)([start] * 20, pruned, RESNET20, budget)
    assert average_bits(bits, RESNET20) <= budget + 1e-12
    assert all(1 <= b <= 8 for b in bits)
    assert average_bits(bits, RESNET20) > budget - max(RESNET20) / sum(RESNET20)  # fills up to one layer's step


def test_alg2_strict_refuses_an_impossible_budget():
    with pytest.raises(ValueError, match="cannot be met"):
        Allocator("strict", b_min=2)([4] * 20, [0] * 20, RESNET20, 1.5)


def test_alg2_ranks_much_pruned_layers_first():
    m = [128, 128, 256]  # steps of 1/4 and 1/2 bit: exact in floating point
    assert Allocator("literal", b_min=1)([4, 4, 4], [0, 0, 0], m, 3) == [4, 4, 2]  # the largest layer first
    assert Allocator("literal", b_min=1)([4, 4, 4], [0, 3, 0], m, 3) == [5, 1, 3]  # layer 1 was pruned: first


@pytest.mark.parametrize("representation", ["sign-magnitude", "literal"])
@pytest.mark.parametrize("bits", [2, 3, 5, 8])
def test_planes_round_trip(representation, bits):
    w = np.random.default_rng(bits).normal(size=(6, 3, 3, 3)).astype(np.float32)
    code = quantize(w, bits, representation)
    p = planes(code)
    assert p.dtype == bool and p.shape == (bits, w.size)
    back = from_planes(p, bits, representation, w.shape, code.step)
    assert np.array_equal(back.codes, code.codes)
    assert np.abs(code.values() - w).max() <= code.step / 2 + 1e-6  # max|w| is on the grid: nothing saturates


def test_sign_magnitude_values():
    code = quantize(np.array([[-1.0, -0.5, 0.0, 0.26, 1.0]]), 3)  # 3 bits: codes -3..3, step 1/3
    assert code.codes.tolist() == [[-3, -2, 0, 1, 3]] and code.step == pytest.approx(1 / 3)
    assert planes(code).astype(int).tolist() == [[1, 0, 0, 1, 1], [1, 1, 0, 0, 1], [1, 1, 0, 0, 0]]


def test_literal_top_plane_is_the_sign_so_its_density_is_about_half():
    w = np.random.default_rng(0).normal(size=10_000)
    assert 0.5 < densities(quantize(w, 4, "literal"))[-1] < 0.65  # the codes >= 0, zero included
    assert densities(quantize(w, 4, "sign-magnitude"))[-1] < 0.2  # sign-magnitude: large weights only


@pytest.mark.parametrize("representation", ["sign-magnitude", "literal"])
def test_plane_pruning_changes_only_the_saturated_values(representation):
    w = np.random.default_rng(1).standard_t(3, size=(64, 64))  # heavy tails: a sparse top plane
    code = quantize(w, 6, representation)
    pruned = drop_top_plane(code)
    assert pruned.bits == 5 and pruned.step == code.step
    had_top = planes(code)[-1 if representation == "literal" else -2]
    same = code.codes == pruned.codes
    if representation == "sign-magnitude":
        assert np.array_equal(~same.reshape(-1), had_top)  # exactly the weights whose top bit was set moved
        assert (np.abs(pruned.codes[~same]) == 15).all()  # ... to the new largest magnitude, sign kept
        assert (np.sign(pruned.codes[~same]) == np.sign(code.codes[~same])).all()
    else:
        assert ((pruned.codes[~same] == 15) | (pruned.codes[~same] == -16)).all()


def test_msb_prune_drops_sparse_top_planes_only():
    w = np.zeros(1000)
    w[:10] = 1.0  # 1% of the weights are large: the top planes are 1% dense
    w[10:] = np.random.default_rng(2).uniform(-0.05, 0.05, 990)
    code = quantize(w, 8)
    pruned = msb_prune(code, eps=0.03, b_min=2)
    assert pruned.bits < 8
    assert densities(pruned)[-1] > 0.03 or pruned.bits == 2
    small = np.abs(code.codes) <= 2 ** (pruned.bits - 1) - 1
    assert np.array_equal(pruned.codes[small], code.codes[small]) and (~small).sum() <= 10
    assert msb_prune(code, eps=0.0).bits == 8  # eps 0: only empty planes go; the top plane has ones


def test_wire_round_trip_and_size():
    rng = np.random.default_rng(3)
    layout = [("conv.weight", (8, 3, 3, 3)), ("bn.weight", (8,)), ("fc.weight", (5, 8)), ("fc.bias", (5,))]
    codes = {"conv.weight": quantize(rng.normal(size=(8, 3, 3, 3)), 3), "fc.weight": quantize(rng.normal(size=(5, 8)), 7)}
    floats = {"bn.weight": rng.normal(size=8).astype(np.float32), "fc.bias": rng.normal(size=5).astype(np.float32)}
    record = wire.encode(codes, floats, layout)
    blob = record["payload"].numpy()
    bits = wire.message_bits(layout, {"conv.weight": 3, "fc.weight": 7})
    assert bits.codes == 3 * 216 + 7 * 40 and bits.scales == 2 * 40 and bits.fp32 == 32 * 13
    assert len(blob) == 5 + (3 * 216 + 7) // 8 + 32 + 5 + (7 * 40 + 7) // 8 + 20  # headers + packed planes + floats
    got_codes, got_floats = wire.decode(record, layout, "sign-magnitude")
    for n, c in codes.items():
        assert got_codes[n].bits == c.bits and np.array_equal(got_codes[n].codes, c.codes)
        assert got_codes[n].step == pytest.approx(c.step, rel=1e-7)
    for n, v in floats.items():
        assert np.array_equal(got_floats[n], v)


def test_wire_refuses_malformed_messages():
    from flwr.app import Array, ArrayRecord

    layout = [("fc.weight", (4, 4))]
    record = wire.encode({"fc.weight": quantize(np.eye(4), 4)}, {}, layout)
    blob = record["payload"].numpy()
    for bad, message in [(blob[:-1], "ends inside"), (np.concatenate([blob, blob[:1]]), "beyond"),
                         (np.concatenate([[9], blob[1:]]).astype(np.uint8), "claims 9 bits"),
                         (np.concatenate([[1], blob[1:]]).astype(np.uint8), "claims 1 bits"),
                         (np.concatenate([blob[:1], np.frombuffer(np.float32(np.nan).tobytes(), np.uint8), blob[5:]]),
                          "step")]:
        with pytest.raises(MalformedUpdate, match=message):
            wire.decode(ArrayRecord({"payload": Array(np.ascontiguousarray(bad, dtype=np.uint8))}), layout,
                        "sign-magnitude")


def test_aggregation_weights_are_budget_times_examples():
    p = aggregation_weights([2, 8], [300, 100])
    assert p.tolist() == pytest.approx([600 / 1400, 800 / 1400])
    assert aggregation_weights([2, 8], [300, 100], by_budget=False).tolist() == pytest.approx([0.75, 0.25])
    models = [{"w": np.array([0.0, 1.0])}, {"w": np.array([1.0, 1.0])}]
    assert weighted_average(models, p)["w"].tolist() == pytest.approx([800 / 1400, 1.0])
    real, rounded = consensus_bits([[2, 6, 4], [8, 8, 5]], np.array([0.5, 0.5]))
    assert real == [5.0, 7.0, 4.5] and rounded == [5, 7, 5]


def test_lasso_gradient_shrinks_magnitudes_in_sign_magnitude_only():
    w = np.random.default_rng(4).normal(size=(32, 32))
    sm = quantize(w, 5)
    g = lasso_gradient(sm)
    nz = sm.codes != 0
    assert (np.sign(g[nz]) == np.sign(sm.codes[nz])).all() and (g[~nz] == 0).all()  # descent shrinks |w|
    lit = lasso_gradient(quantize(w, 5, "literal"))
    assert (lit >= 0).all()  # the literal planes' lasso pushes every weight down (towards negative values)


def test_budgets_per_client_or_shared_out():
    assert client_budgets("2,4,6,8", "20,30,30,20", 10) == (2, 2, 4, 4, 4, 6, 6, 6, 8, 8)
    assert client_budgets("3,5,7", "0,0,1", 3) == (3, 5, 7)  # one per client: shares unused
    assert client_budgets("2,8", "1,1", 5) in ((2, 2, 2, 8, 8), (2, 2, 8, 8, 8))
    with pytest.raises(ValueError, match="in 2..8"):
        client_budgets("1,4", "1,1", 4)


@pytest.mark.parametrize("argv,message", [
    (["run", "--method", "fedmpq", "--mpq-budgets", "2,9"], "every budget must be in 2..8"),
    (["run", "--method", "fedmpq", "--mpq-budgets", "2,x"], "comma-separated integers"),
    (["run", "--method", "fedmpq", "--mpq-budgets", "2,4,8", "--mpq-budget-shares", "1,1"], "one non-negative share"),
    (["run", "--method", "aqfl", "--mpq-representation", "twos"], "--mpq-representation"),
    (["run", "--method", "fedmpq", "--mpq-allocation", "greedy"], "--mpq-allocation"),
    (["run", "--method", "fedmpq", "--mpq-act-bits", "1"], "--mpq-act-bits"),
    (["run", "--method", "fedmpq", "--mpq-eps", "1.5"], "--mpq-eps"),
    (["run", "--method", "fedmpq", "--mpq-lambda", "nan"], "--mpq-lambda"),
    (["allocate", "--checkpoint", "/nonexistent/backbone.pt", "--budget", "4"], "does not exist"),
    (["allocate", "--checkpoint", "/nonexistent/backbone.pt", "--budget", "9"], "--budget must be in 2..8"),
    (["allocate", "--checkpoint", "/nonexistent/backbone.pt", "--budget", "4", "--mode", "greedy"], "--mode"),
    (["fedmpq-compare", "--variants", "fedmpq", "int4"], "--variants"),
])
def test_bad_fedmpq_input_is_one_line_and_status_2(argv, message, capsys):
    from fl_bridge.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("fl_bridge: error:") and message in err[-1]
    assert not any("Traceback" in line for line in err)


def test_a_fedmpq_federation_meets_budgets_and_measures_its_bits(tmp_path):
    """Two clients (budgets 2 and 8, strict), one round through the real messages and client handler:
    every allocation sent meets its budget, the aggregation weights are v_n |D_n|, and the measured
    bytes are the formula's bits / 8 plus byte padding and the container."""
    import json

    from fl_bridge.config import RunConfig
    from fl_bridge.inline import InlineGrid, task_identity
    from fl_bridge.server import run_federation

    cfg = RunConfig(out=str(tmp_path / "run"), method="fedmpq", mpq_budgets="2,8", mpq_allocation="strict",
                    clients=2, per_round=2, rounds=2, samples_per_client=16, image_size=16, eval_every=2,
                    episodes=5, shots=(1,))
    with task_identity():
        run_federation(InlineGrid(), cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    rounds = metrics["rounds"][1:]
    assert [r["received"] for r in rounds] == [2, 2]
    for r in rounds:
        assert r["sent_avg_bits"]["0"] <= 2 and r["sent_avg_bits"]["1"] <= 8 and all(r["budget_met"].values())
        assert r["aggregation_weights"]["0"] == pytest.approx(2 / 10)  # equal |D_n|: v_n / sum v
        assert 0 < r["top_plane_density"] < 1
        for direction in ("down", "up"):
            padding = r[f"bytes_{direction}"] - r[f"bits_{direction}"] / 8
            assert 0 < padding < 2 * (300 + 13)  # per message: .npy header and key, < 1 byte per layer
    assert rounds[0]["sent_avg_bits"] == {"0": 2.0, "1": 8.0}  # round 1: every layer at the budget
    allocation = rounds[-1]["fedmpq"]["allocation"]
    assert max(allocation[1]) == 8 and min(allocation[0]) == 2
    assert {"b2_fewshot_1shot", "b8_fewshot_1shot", "fewshot_1shot"} <= set(metrics["rounds"][-1])
    assert (tmp_path / "run" / "backbone.pt").is_file()
