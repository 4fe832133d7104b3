"""Flower's conventions for what travels: the run config as flat typed keys (one can be
overridden with `flwr run --run-config`), the round's task as flat keys of a ConfigRecord."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace

import pytest
from flwr.app import ConfigRecord
from flwr.common.config import flatten_dict, parse_config_args

from fl_bridge.codec import CodecConfig
from fl_bridge.config import RunConfig
from fl_bridge.deployment import write_flower_app
from fl_bridge.errors import FLError
from fl_bridge.flat import flatten, from_run_config, unflatten
from fl_bridge.local import LocalConfig
from fl_bridge.model import ModelConfig
from fl_bridge.precision.engine import Int8Training
from fl_bridge.task import DataTask, TrainTask
from train.backbones import BackboneSpec


def _app_run_config(tmp_path, cfg: RunConfig, overrides: list[str]) -> dict:
    """The run config Flower gives the ServerApp: the app's declared keys, then `--run-config`."""
    app = write_flower_app(tmp_path / "app", cfg)
    declared = flatten_dict(tomllib.loads((app / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"])
    return {**declared, **parse_config_args(overrides)}


def test_run_config_is_flat_typed_keys_and_one_can_be_overridden(tmp_path):
    cfg = RunConfig(out=str(tmp_path / "run"), lda_alpha=float("inf"), shots=(1, 5), method="q-fedupdate")
    declared = _app_run_config(tmp_path, cfg, [])
    assert declared["rounds"] == cfg.rounds and declared["lda-alpha"] == float("inf") and declared["shots"] == "1,5"
    assert from_run_config(RunConfig, declared) == cfg
    overridden = from_run_config(RunConfig, _app_run_config(tmp_path, cfg, ["rounds=3 lr=0.1 shots='1,5,10'"]))
    assert overridden == replace(cfg, rounds=3, lr=0.1, shots=(1, 5, 10))


def test_a_bad_run_config_key_is_refused(tmp_path):
    from fl_bridge.server_app import run_config

    class Context:
        run_config = {"rounds": 3, "round": 2}

    with pytest.raises(FLError, match="unknown run-config key.*round\\b"):
        run_config(Context())
    Context.run_config = {"rounds": "three"}
    with pytest.raises(FLError, match="rounds: 'three' is not an integer"):
        run_config(Context())


def _task(**kw) -> TrainTask:
    return TrainTask(ModelConfig(BackboneSpec(feature_maps=8), 64, rank=4), CodecConfig(bits=8, scale="pow2"),
                     LocalConfig(lr=0.01), DataTask("synthetic", "", 16, 20, float("inf"), 0, 3), 7, "ab" * 32, **kw)


@pytest.mark.parametrize("task", [_task(), _task(int8=Int8Training(weight_bits=4)),
                                  _task(upload_codec=CodecConfig(bits=4, scale="pow2"))])
def test_the_task_crosses_a_config_record_as_flat_keys(task):
    record = ConfigRecord(task.to_config(server_round=2))
    assert record["task.model.spec.feature_maps"] == 8 and record["task.local.lr"] == 0.01
    assert record["server-round"] == 2
    assert TrainTask.from_config(record) == task


def test_a_bad_task_is_refused():
    config = _task().to_config(1)
    del config["task.base_hash"]
    with pytest.raises(FLError, match="malformed task: base_hash: missing"):
        TrainTask.from_config(config)
    config = _task(upload_codec=CodecConfig(bits=8)).to_config(1)
    config["task.upload_codec.bits"] = 3
    with pytest.raises(FLError, match="malformed task"):
        TrainTask.from_config(config)


@dataclass(frozen=True)
class Inner:
    bits: tuple[int, ...] = (2, 4)
    name: str | None = None


@dataclass(frozen=True)
class Outer:
    n: int
    inner: Inner | None = None
    more: Inner = Inner()


def test_any_new_optional_nested_field_travels_without_code():
    """What another method adds to a task (an optional nested config) needs nothing here."""
    for value in (Outer(1), Outer(2, Inner((8,), "x"), Inner(()))):
        assert unflatten(Outer, dict(ConfigRecord(flatten(value)))) == value
