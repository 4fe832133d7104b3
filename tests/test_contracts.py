"""The contracts module: artifact paths and names, the preprocessing schema, the overlay's
instance names; and no room writes one of these facts itself."""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import pytest

import contracts
from contracts import ContractError, Instances, Preprocessing

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("train", "export", "tensil", "fpga", "board", "fl_bridge", "dse", "bench")


def test_artifact_paths_of_the_embedded_default():
    assert contracts.backbone_path() == "build/backbone/default.pt"
    assert contracts.onnx_path() == "build/export/default.onnx"
    assert contracts.tmodel_path() == "build/tensil/default_custom_perf.tmodel"
    assert contracts.fpga_dir() == "build/fpga/custom_perf_50MHz"
    assert contracts.bundle_dir("x", "/tmp/b") == "/tmp/b/bundle/x"
    assert contracts.fl_run_dir() == "build/fl/default"


def test_fpga_folder_names_round_trip():
    for arch, mhz in (("custom_perf", 50.0), ("pynqz1", 125.0), ("my_arch", 142.857)):
        assert contracts.parse_fpga_dir_name(contracts.fpga_dir_name(arch, mhz)) == (arch, mhz)
    assert contracts.parse_fpga_dir_name("custom_perf") is None
    assert contracts.parse_fpga_dir_name("rtl_custom_perf") is None


def test_compiled_names_follow_upstream_character_rule():
    assert contracts.compiled_name("fl_my-run", "pynqz1") == "fl_my_run_pynqz1"
    from tensil.compiler.pipeline import default_name
    from tensil.arch import load_arch

    assert default_name("x/fl_my-run.onnx", load_arch("pynqz1")) == "fl_my_run_pynqz1"


def test_bundle_file_reads_the_manifest(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps({"files": {"tmodel": "m_custom_perf.tmodel"}}))
    assert contracts.bundle_file(tmp_path, "tmodel") == tmp_path / "m_custom_perf.tmodel"
    with pytest.raises(ContractError, match="names no bitstream"):
        contracts.bundle_file(tmp_path, "bitstream")
    (tmp_path / "model.json").write_text(json.dumps({"files": {"tmodel": "../elsewhere.tmodel"}}))
    with pytest.raises(ContractError, match="plain file name"):
        contracts.bundle_file(tmp_path, "tmodel")


def test_instances_default_and_override():
    assert Instances.from_dict(None) == Instances()
    named = Instances.from_dict({"dma": "my_dma", "tcu": "tcu_0"})
    assert (named.dma, named.buttons_gpio, named.video) == ("my_dma", "btns_gpio", "video")
    with pytest.raises(ContractError):
        Instances.from_dict({"dma": 3})


def test_preprocessing_round_trip_and_checks():
    prep = Preprocessing(image_size=84, resize=96, channel_order="BGR")
    assert Preprocessing.from_dict(json.loads(json.dumps(prep.to_dict()))) == prep
    with pytest.raises(ContractError, match="std"):
        Preprocessing(std=(0.2, 0.0, 0.2))


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants outside docstrings, and f-strings as their literal parts joined by `{}`."""
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    out, inside_f = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = [v.value if isinstance(v, ast.Constant) else "{}" for v in node.values]
            inside_f |= {id(v) for v in node.values}
            out.append((node.lineno, "".join(parts)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings | inside_f:
            out.append((node.lineno, node.value))
    return out


# a path or name that only contracts/ may spell out (help texts may name them in prose: "(default: build/...)")
FACTS = re.compile(r"^(build/(backbone|export|tensil|fpga|bundle|fl)\b|.*\{\}_\{\}MHz$"
                   r"|axi_dma_0$|btns_gpio$|video/hdmi_out$)")


def written_facts(roots: tuple[str, ...]) -> list[str]:
    found = []
    for room in roots:
        for path in sorted((ROOT / room).rglob("*.py")):
            for line, text in _strings(ast.parse(path.read_text())):
                if FACTS.match(text):
                    found.append(f"{path.relative_to(ROOT)}:{line}: {text!r}")
    return found


def test_no_room_writes_a_contract_fact_itself():
    """Artifact paths, the FPGA folder naming and the overlay's instance names come from contracts/."""
    assert written_facts(ROOMS) == []


def test_a_written_fact_is_found(tmp_path, monkeypatch):
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "m.py").write_text('"""build/bundle/x in a docstring is prose."""\n'
                                            'OUT = "build/bundle/default"\nDIR = f"{arch}_{mhz:g}MHz"\n')
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert [f.split(": ", 1)[1] for f in written_facts(("fake",))] == ["'{}_{}MHz'", "'build/bundle/default'"]
