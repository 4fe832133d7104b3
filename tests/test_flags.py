"""safeio's dataclass <-> flags helper, shared by every room's CLI."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from safeio import OneLineParser, add_dataclass_flags, config_from_args, dataclass_flags


@dataclass(frozen=True)
class Inner:
    depth: int = 2


@dataclass(frozen=True)
class Config:
    path: str                       # no default: a required flag
    rate: float = 0.5
    count: int = 3
    shots: tuple[int, ...] = (1, 5)
    fast: bool = False
    out: str | None = "build/x"
    camera: int | None = None
    mode: str = "a"
    inner: Inner = field(default_factory=Inner)     # nested: no flag


def parse(argv: list[str], **kwargs) -> Config:
    parser = OneLineParser(prog="t")
    add_dataclass_flags(parser, Config, choices={"mode": ("a", "b")}, **kwargs)
    return config_from_args(Config, parser.parse_args(argv))


def test_flags_typed_from_the_annotations():
    c = parse(["--path", "p", "--rate", "2", "--shots", "1", "2", "3", "--fast", "--out", "none", "--camera", "1"])
    assert c == Config("p", 2.0, 3, (1, 2, 3), True, None, 1, "a")
    assert parse(["--path", "p"]) == Config("p")
    assert parse(["--path", "p"], defaults={"count": 9}).count == 9


@pytest.mark.parametrize("argv", [[], ["--path", "p", "--count", "x"], ["--path", "p", "--mode", "c"],
                                  ["--path", "p", "--inner", "3"]])
def test_bad_flags_are_one_line_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("t: error: ") and err.count("\n") == 1


def test_dataclass_flags_rebuild_the_config():
    c = Config("p", rate=0.25, shots=(2,), fast=True, out=None, mode="b")
    argv = dataclass_flags(c)
    assert "--out" not in argv and argv[:2] == ["--path", "p"]
    assert parse(argv) == Config("p", rate=0.25, shots=(2,), fast=True, out="build/x", mode="b")
