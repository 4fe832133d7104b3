"""The rooms table of docs/architecture.md, checked on the code: every import of every package
(module level or lazy) is one its room may make, and the board's code imports with torch, onnx
and Flower absent, as on a PYNQ image."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STDLIB = set(sys.stdlib_module_names)
# tensil's modules that the board runs (numpy and the standard library only)
TENSIL_ON_BOARD = {"tensil.arch", "tensil.fixed", "tensil.isa", "tensil.layout", "tensil.tmodel",
                   "tensil.emulator", "tensil.hazards", "tensil.axi"}

# room -> (third-party packages, other rooms' modules as prefixes); the standard library and
# the room itself are always allowed. Keep in step with docs/architecture.md's rooms table.
RULES: dict[str, tuple[set[str], tuple[str, ...]]] = {
    "contracts": (set(), ()),
    "safeio": (set(), ()),
    "train": ({"torch", "numpy", "tqdm", "cv2", "matplotlib"}, ("contracts", "safeio")),
    "export": ({"torch", "numpy", "onnx", "onnxsim", "onnxruntime", "tqdm"},
               ("contracts", "safeio", "train", "tensil.compiler.frontend", "tensil.compiler.errors")),
    "tensil": ({"numpy", "onnx", "onnxruntime", "matplotlib", "numba"}, ("contracts", "safeio")),
    "fpga": (set(), ("contracts", "safeio", "tensil.arch", "tensil.resources")),
    "board": ({"numpy", "cv2", "pynq", "onnxruntime", "tqdm"}, ("contracts", "safeio", *sorted(TENSIL_ON_BOARD))),
    "fl_bridge": ({"torch", "numpy", "flwr", "tqdm", "matplotlib"},
                  ("contracts", "safeio", "train", *sorted(TENSIL_ON_BOARD), "tensil.estimator", "tensil.resources")),
    "dse": ({"torch", "numpy", "matplotlib", "ray", "tqdm"},
            ("contracts", "safeio", "train", "export", "tensil", "fpga")),
}
# what some modules may import beyond, or instead of, their room's rule
NARROWER = {
    **{m: ({"numpy"}, ("contracts", "tensil.arch", "tensil.fixed", "tensil.isa", "tensil.layout", "tensil.tmodel",
                       "tensil.hazards", "tensil.axi", "tensil.emulator")) for m in TENSIL_ON_BOARD},
}
ONLY_IN = {  # package -> the only modules of its room that may import it
    ("tensil", "onnx"): ("tensil.compiler.", "tensil.cli", "tensil.report"),
    ("tensil", "onnxruntime"): ("tensil.report",),
    ("tensil", "matplotlib"): ("tensil.plots",),
    ("tensil", "numba"): ("tensil.batch",),
    ("train", "matplotlib"): ("train.plots",),
    ("board", "pynq"): ("board.backends", "board.sources"),
}


def imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def broken_rules(room: str) -> list[str]:
    problems = []
    for path in sorted((ROOT / room).rglob("*.py")):
        module = module_name(path)
        packages, rooms = NARROWER.get(module, RULES[room])
        for name in imports(path):
            top = name.split(".")[0]
            if top in STDLIB or top == room and module not in NARROWER:
                continue
            if module in NARROWER and top == room:
                if not any(name == r or name.startswith(r + ".") for r in rooms):
                    problems.append(f"{module} imports {name} (board-side tensil modules import only each other "
                                "and contracts)")
                continue
            if top in RULES:
                if not any(name == r or name.startswith(r + ".") for r in rooms):
                    problems.append(f"{module} imports {name}, which room {room} may not use")
            elif top not in packages:
                problems.append(f"{module} imports {top}, which room {room} may not use")
            elif (room, top) in ONLY_IN and not module.startswith(ONLY_IN[(room, top)]):
                problems.append(f"{module} imports {top}, allowed in {', '.join(ONLY_IN[(room, top)])} only")
    return problems


@pytest.mark.parametrize("room", sorted(RULES))
def test_every_import_is_allowed_by_the_rooms_table(room):
    assert broken_rules(room) == []


def test_the_rules_cover_the_rooms_of_the_architecture_document():
    section = (ROOT / "docs" / "architecture.md").read_text().split("## Rooms", 1)[1].split("\n## ", 1)[0]
    documented = {line.split("`")[1].strip("/") for line in section.splitlines() if line.startswith("| `")}
    assert set(RULES) <= documented and documented - set(RULES) <= {"fl_bridge/precision", "bench"}


def test_a_broken_rule_is_reported(tmp_path, monkeypatch):
    """The checker itself can fail: a board module importing torch is named."""
    fake = tmp_path / "board"
    fake.mkdir()
    (fake / "bad.py").write_text("import numpy\nimport torch\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert broken_rules("board") == ["board.bad imports torch, which room board may not use"]


def test_the_board_runs_without_torch_onnx_or_flower():
    """Every board module imports when torch, onnx and flwr cannot be imported (PYNQ image)."""
    modules = sorted(module_name(p) for p in (ROOT / "board").glob("*.py") if p.name != "__main__.py")
    code = ("import importlib, sys\n"
            "class Absent:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('torch', 'onnx', 'onnxsim', 'flwr', 'matplotlib'):\n"
            "            raise ImportError(f'{name} is not on the board')\n"
            "sys.meta_path.insert(0, Absent())\n"
            f"for m in {modules!r}:\n"
            "    importlib.import_module(m)\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
