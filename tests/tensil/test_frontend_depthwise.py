"""Depthwise convolutions one channel tile at a time (`passes.split_depthwise`): same numbers, fewer MatMuls."""

from __future__ import annotations

import numpy as np
import pytest

from frontend_corpus import CORPUS, export
from tensil.arch import load_arch
from tensil.compiler.frontend import graph_from_model
from tensil.compiler.pipeline import CompileOptions, compile_network
from tensil.emulator import ModelRunner
from tensil.report import estimates

ARCH = load_arch("custom_perf")


def depthwise_rows(table: list[dict]) -> list[dict]:
    return [r for r in table if "blocks.0.2" in r["name"] or "blocks.1.2" in r["name"]]


@pytest.mark.parametrize("name", ["mobilenetv2-like"])
def test_split_depthwise_is_exact_and_runs_a_quarter_of_the_matmuls(name):
    entry = next(e for e in CORPUS if e.name == name)
    graph = graph_from_model(export(entry))
    x = {"x": np.random.default_rng(5).standard_normal(entry.input_shape).astype(np.float32)}
    runs = {}
    for split in (False, True):
        compiled = compile_network(graph, ARCH, "m", CompileOptions(split_depthwise=split))
        y = ModelRunner(compiled.loaded()).run(x, {"y": graph.io_shapes["y"]})["y"]
        summary, table = estimates(compiled)
        runs[split] = (y, summary, depthwise_rows(table))
    (dense_y, dense, dense_dw), (split_y, split, split_dw) = runs[False], runs[True]
    assert np.array_equal(dense_y, split_y)  # the same products, accumulated in the same order
    assert len(dense_dw) == 2 and len(split_dw) == 8  # 48 hidden channels = 4 tiles of 12
    assert sum(r["macs"] for r in split_dw) == sum(r["macs"] for r in dense_dw)
    dense_cycles = sum(r["tensil_cycles"] for r in dense_dw)
    split_cycles = sum(r["tensil_cycles"] for r in split_dw)
    assert split_cycles * 3 < dense_cycles
    assert split["mac_efficiency"] > 2 * dense["mac_efficiency"]
