"""A tiny sweep (ResNet-9 with 4 feature maps, 16 px, one epoch) shared by the dse tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

TINY = """\
name = "{name}"
[train]
batch_size = 64
mixup = false
rotations = false
cycle_epochs = 1
val_episodes = 20
episodes = 50
[evaluate]
episodes = 100
queries = 3
images_per_class = 8
"""


def tiny_sweep(path: Path, name: str, points: list[dict]) -> Path:
    """Write a sweep file of tiny explicit points (1 epoch, 16 px training)."""
    text = TINY.format(name=name)
    for p in points:
        text += "[[points]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in {
            "feature_maps": 4, "train_size": 16, "test_size": 16, "epochs": 1, **p}.items())
    path.write_text(textwrap.dedent(text))
    return path


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return f'"{v}"' if isinstance(v, str) else str(v)


@pytest.fixture(scope="session")
def finished_sweep(tmp_path_factory) -> tuple[Path, Path]:
    """(sweep file, out folder) of a finished two-point sweep: one training, tested at 16 and 24 px."""
    from dse.cli import main

    root = tmp_path_factory.mktemp("dse_sweep")
    sweep = tiny_sweep(root / "two.toml", "two", [{"test_size": 16}, {"test_size": 24}])
    out = root / "out"
    assert main(["run", "--sweep", str(sweep), "--out", str(out)]) == 0
    return sweep, out
