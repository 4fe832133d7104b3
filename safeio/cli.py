"""Command lines of the toolchain.

- `OneLineParser`: argparse whose usage errors are one line (`<prog>: error: ...`, exit 2), like
  every other user error of the toolchain; `--help` still prints the full usage.
- `add_dataclass_flags` / `config_from_args`: one `--field-name` flag per field of a config
  dataclass, typed from its annotation and defaulted from the field, and back to the dataclass;
  `dataclass_flags` writes a config as the flags that rebuild it (its non-default fields).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from typing import Any, Callable, NoReturn


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser (and, through `add_subparsers`, subparsers) with one-line errors."""

    def error(self, message: str) -> NoReturn:
        prog = self.prog.split()[0] if self.prog else "error"
        if prog == "python" and len(self.prog.split()) > 2:  # "python -m board demo" -> board
            prog = self.prog.split()[2]
        text = " ".join(message.split())
        sys.stderr.write(f"{prog}: error: {text} (see --help)\n")
        sys.exit(2)


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _optional(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """`kind`, with `none` (any case) or an empty value meaning None."""
    def parse(value: str) -> Any:
        return None if value.strip().lower() in ("", "none") else kind(value)
    parse.__name__ = getattr(kind, "__name__", "value")   # argparse names the type in its errors
    return parse


def _without_none(hint: Any) -> tuple[Any, bool]:
    """`X | None` -> (X, True); any other annotation -> (itself, False)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), len(args) < len(typing.get_args(hint))
    return hint, False


def _is_nested(hint: Any) -> bool:
    """A field that holds a dataclass (a nested config): it gets no flag of its own."""
    return dataclasses.is_dataclass(_without_none(hint)[0])


def _flag_type(hint: Any) -> tuple[Callable[[str], Any] | None, bool, bool]:
    """(value parser, is a tuple, is bool) of a field annotation."""
    hint, optional = _without_none(hint)
    if hint is bool:
        return None, False, True
    is_tuple = typing.get_origin(hint) is tuple
    if is_tuple:
        hint = typing.get_args(hint)[0] if typing.get_args(hint) else str
    kind = hint if hint in (int, float, str) else str
    return (_optional(kind) if optional else kind), is_tuple, False


def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type, *, helps: dict[str, str] | None = None,
                        defaults: dict[str, Any] | None = None, choices: dict[str, tuple] | None = None,
                        skip: tuple[str, ...] = ()) -> None:
    """One `--field-name` flag per field of dataclass `cls` (except `skip`): bools as
    `--x/--no-x`, tuples as one or more values, `X | None` accepting `none`; a field without a
    default is a required flag; a field holding a nested dataclass gets none (its owner adds its
    flags). `defaults` overrides field defaults, `choices` restricts values."""
    hints = typing.get_type_hints(cls)
    helps, defaults, choices = helps or {}, defaults or {}, choices or {}
    for f in dataclasses.fields(cls):
        if f.name in skip or _is_nested(hints[f.name]):
            continue
        if f.name in defaults:
            default = defaults[f.name]
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        kind, is_tuple, is_bool = _flag_type(hints[f.name])
        text = helps.get(f.name, f.name.replace("_", " "))
        kwargs: dict[str, Any] = {"help": text if default in ("", dataclasses.MISSING) else f"{text} (default: "
                                  f"{' '.join(map(str, default)) if is_tuple else default})"}
        if default is dataclasses.MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = list(default) if is_tuple and default is not None else default
        if is_bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = kind
            if is_tuple:
                kwargs["nargs"] = "+"
            if f.name in choices:
                kwargs["choices"] = choices[f.name]
        parser.add_argument(flag_name(f.name), **kwargs)


def config_from_args(cls: type, args: argparse.Namespace, **overrides: Any):
    """The dataclass `cls` from parsed flags (lists back to tuples); `overrides` win; fields
    without a flag keep their defaults."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in overrides or not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        values[f.name] = tuple(value) if _flag_type(hints[f.name])[1] and value is not None else value
    return cls(**values, **overrides)


def dataclass_flags(config: Any, skip: tuple[str, ...] = ()) -> list[str]:
    """`--field value ...` for each field of `config` that differs from its default (and is not
    None): the flags that rebuild it through `add_dataclass_flags`."""
    out: list[str] = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if f.name in skip or value == default or value is None or dataclasses.is_dataclass(value):
            continue
        if isinstance(value, bool):
            out.append(flag_name(f.name) if value else "--no-" + flag_name(f.name)[2:])
        elif isinstance(value, (tuple, list)):
            out += [flag_name(f.name), *map(str, value)]
        else:
            out += [flag_name(f.name), str(value)]
    return out
