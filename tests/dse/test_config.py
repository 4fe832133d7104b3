"""Sweep files: grids, explicit points, and one-line errors before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from dse.cli import main
from dse.config import EvalSettings, Point, load_sweep, parse_sweep
from dse.errors import DseError
from dse.layout import SweepLayout


def test_grid_is_the_cartesian_product_and_points_are_added_once():
    sweep = parse_sweep({"name": "g", "grid": {"feature_maps": [8, 16], "test_size": [32, 84], "mhz": 50},
                         "points": [{"feature_maps": 8, "test_size": 32, "mhz": 50}, {"backbone": "resnet12"}]})
    assert len(sweep.points) == 5  # the first explicit point is already in the grid
    assert Point(feature_maps=16, test_size=84, mhz=50.0) in sweep.points
    assert Point(backbone="resnet12") in sweep.points
    assert all(isinstance(p.mhz, float) for p in sweep.points)


def test_defaults_and_evaluate_table():
    sweep = parse_sweep({"name": "d", "points": [{}], "evaluate": {"shots": 1, "images_per_class": 0}})
    assert sweep.points == (Point(),)
    assert sweep.evaluate == EvalSettings(shots=(1,), images_per_class=0)


@pytest.mark.parametrize("data, message", [
    ({"name": "x", "grid": {"depth": [9]}}, "unknown key(s) depth"),
    ({"name": "x", "grid": {"feature_maps": ["16"]}}, "'16' is not a int"),
    ({"name": "x", "grid": {"strided": [1]}}, "is not a bool"),
    ({"name": "x", "points": [{"backbone": "resnet18"}]}, "backbone 'resnet18' is not one of"),
    ({"name": "x", "points": [{"arch": "nope"}]}, "unknown architecture 'nope'"),
    ({"name": "x", "points": [{"mhz": 400}]}, "400 MHz is outside"),
    ({"name": "x", "points": [{"test_size": 4}]}, "too small"),
    ({"name": "x", "points": [{"epochs": 0}]}, "at least 1"),
    ({"name": "x", "points": [{}], "train": {"image_size": 84}}, "image_size set by the points"),
    ({"name": "x", "points": [{}], "train": {"lr2": 1}}, "unknown `train fit` option(s) lr2"),
    ({"name": "x", "points": [{}], "evaluate": {"queries": 15, "images_per_class": 10}}, "fewer than shots"),
    ({"name": "x", "points": [{}], "dataset": "imagenet"}, "dataset 'imagenet'"),
    ({"name": "x"}, "no points"),
    ({"name": "", "points": [{}]}, "folder name"),
    ({"name": "x", "points": [{}], "extra": 1}, "unknown key(s) extra"),
])
def test_bad_sweeps_are_one_line_errors(data, message):
    with pytest.raises(DseError) as e:
        parse_sweep(data)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_tarch_paths_are_relative_to_the_sweep_file(tmp_path):
    arch = (Path(__file__).resolve().parents[2] / "tensil" / "archs" / "custom_perf.tarch").read_text()
    (tmp_path / "archs").mkdir()
    (tmp_path / "archs" / "mine.tarch").write_text(arch)
    f = tmp_path / "s.toml"
    f.write_text('name = "a"\n[[points]]\narch = "archs/mine.tarch"\n')
    sweep = load_sweep(f)
    assert sweep.points[0].arch == str(tmp_path / "archs" / "mine.tarch")


def test_keys_share_training_and_separate_what_differs():
    sweep = parse_sweep({"name": "k", "grid": {"test_size": [32, 84], "mhz": [50, 125]}})
    layout = SweepLayout(Path("/r/k"))
    paths = [layout.paths(sweep, p) for p in sweep.points]
    assert len({p.train_checkpoint for p in paths}) == 1
    assert len({p.onnx for p in paths}) == 2
    assert len({p.point_id for p in paths}) == 4
    changed = parse_sweep({"name": "k", "grid": {"test_size": [32]}, "train": {"lr": 0.05}})
    assert layout.paths(changed, changed.points[0]).train_checkpoint != paths[0].train_checkpoint


@pytest.mark.parametrize("argv, message", [
    (["run", "--sweep", "missing.toml"], "missing.toml does not exist"),
    (["run", "--workers", "0"], "--workers 0"),
    (["run", "--ray", "no port"], "expected HOST:PORT"),
    (["pick", "--fps", "-1"], "--fps -1"),
    (["run", "--bogus"], "unrecognized arguments"),
])
def test_cli_errors_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, argv, message):
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("dse: error: ")
    assert not (tmp_path / "out").exists()


def test_cli_bad_toml(tmp_path, capsys):
    f = tmp_path / "bad.toml"
    f.write_text("name = \n")
    assert main(["run", "--sweep", str(f), "--out", str(tmp_path / "out")]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name, count, trainings", [("default", 9, 5), ("pefsl", 96, 48)])
def test_shipped_sweeps_are_valid(name, count, trainings):
    sweep = load_sweep(Path(__file__).resolve().parents[2] / "dse" / "sweeps" / f"{name}.toml")
    layout = SweepLayout(Path("/r") / name)
    assert len(sweep.points) == count
    assert len({layout.paths(sweep, p).train_checkpoint for p in sweep.points}) == trainings
    assert any(p.train_size == p.test_size == 84 for p in sweep.points)  # a network trained at 84x84
