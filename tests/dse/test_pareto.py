"""The Pareto front and the choice under a frame-rate budget."""

from __future__ import annotations

from dse.pareto import accuracy_key, budget_ms, pareto_front, pick


def row(i: str, ms: float, acc: float, fits: bool = True) -> dict:
    return {"id": i, "latency_ms": ms, "fixed_1shot": acc, "float_1shot": acc + 0.01, "fits": fits}


ROWS = [row("a", 2.0, 0.50), row("b", 5.0, 0.60), row("c", 6.0, 0.55), row("d", 5.0, 0.58),
        row("e", 40.0, 0.70), row("f", 40.0, 0.70), row("g", 1.0, 0.40), row("h", 120.0, 0.65)]


def test_front_keeps_exactly_the_non_dominated_rows_sorted_by_latency():
    assert [r["id"] for r in pareto_front(ROWS, "fixed_1shot")] == ["g", "a", "b", "e", "f"]


def test_front_against_brute_force_on_random_rows():
    import random

    rng = random.Random(0)
    for _ in range(50):
        rows = [row(str(k), rng.choice([1, 2, 3, 4]), rng.choice([0.1, 0.2, 0.3])) for k in range(8)]
        front = {r["id"] for r in pareto_front(rows, "fixed_1shot")}
        for r in rows:
            beaten = any(o["latency_ms"] <= r["latency_ms"] and o["fixed_1shot"] >= r["fixed_1shot"]
                         and (o["latency_ms"], o["fixed_1shot"]) != (r["latency_ms"], r["fixed_1shot"]) for o in rows)
            assert (r["id"] in front) == (not beaten)


def test_pick_within_budget_and_fit():
    assert budget_ms(30) == 1e3 / 30
    assert pick(ROWS, 30, "fixed_1shot")["id"] == "b"
    assert pick(ROWS, 10, "fixed_1shot")["id"] == "e"  # e and f tie: the first, equally fast
    assert pick(ROWS, 1, "fixed_1shot")["id"] == "e"
    assert pick(ROWS, 2000, "fixed_1shot") is None
    unfit = [row("x", 3.0, 0.9, fits=False), *ROWS]
    assert pick(unfit, 30, "fixed_1shot")["id"] == "b"
    assert pick(unfit, 30, "fixed_1shot", require_fit=False)["id"] == "x"


def test_accuracy_key_prefers_fixed_point_when_every_row_has_it():
    assert accuracy_key(ROWS) == "fixed_1shot"
    assert accuracy_key([*ROWS, {**row("z", 1, 0.1), "fixed_1shot": None}]) == "float_1shot"
    assert accuracy_key(ROWS, shots=5) == "float_5shot"
