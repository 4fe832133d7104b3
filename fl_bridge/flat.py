"""Dataclass trees <-> flat, typed key/value records, the shapes Flower carries.

- `flatten` / `unflatten`: a (nested) config dataclass as one flat mapping for a message's
  `ConfigRecord` (`model.spec.family`, `local.lr`, ...). Nested dataclasses become dotted keys,
  tuples lists; a None field (an optional nested config, an unset number) writes no key and reads
  back as None. Any dataclass tree of scalars, tuples and nested dataclasses travels this way, so
  a field added to a task needs nothing here.
- `to_run_config` / `from_run_config`: a flat config dataclass as Flower run-config keys
  (`lda-alpha`, `rounds`: kebab-case, scalars only; tuples as comma-separated strings), so
  `flwr run --run-config 'rounds=3'` overrides one setting; `run_config_toml` writes them for
  an app's `pyproject.toml`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any

Scalar = typing.Union[bool, int, float, str]


def _optional(hint: Any) -> tuple[Any, bool]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return (args[0] if len(args) == 1 else Any), len(args) < len(typing.get_args(hint))
    return hint, False


def _scalar(value: Any, hint: Any, key: str) -> Any:
    """`value` as the scalar type `hint` (ints accepted for floats, anything for str)."""
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key}: {value!r} is not true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key}: {value!r} is not an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key}: {value!r} is not a number")
        return float(value)
    if hint is str:
        return value if isinstance(value, str) else json.dumps(value) if isinstance(value, bool) else str(value)
    return value


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """A dataclass tree as `{dotted.key: scalar or list}`; None fields write no key."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value, key = getattr(obj, f.name), prefix + f.name
        if value is None:
            continue
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, key + "."))
        elif isinstance(value, (tuple, list)):
            out[key] = list(value)
        else:
            out[key] = value
    return out


def unflatten(cls: type, flat: typing.Mapping[str, Any], prefix: str = "") -> Any:
    """The dataclass `cls` from `flatten`'s mapping (ValueError with one line for a missing or
    mistyped key)."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        hint, optional = _optional(hints[f.name])
        key = prefix + f.name
        if dataclasses.is_dataclass(hint):
            if any(k.startswith(key + ".") for k in flat):
                values[f.name] = unflatten(hint, flat, key + ".")
            elif optional:
                values[f.name] = None
            elif _default(f) is dataclasses.MISSING:
                raise ValueError(f"{key}: missing")
            continue
        if key not in flat:
            if optional:
                values[f.name] = None
            elif _default(f) is dataclasses.MISSING:
                raise ValueError(f"{key}: missing")
            continue
        value = flat[key]
        if typing.get_origin(hint) is tuple:
            item = (typing.get_args(hint) or (Any,))[0]
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"{key}: {value!r} is not a list")
            values[f.name] = tuple(_scalar(v, item, key) for v in value)
        else:
            values[f.name] = _scalar(value, hint, key)
    return cls(**values)


def run_config_key(field_name: str) -> str:
    return field_name.replace("_", "-")


def to_run_config(cfg: Any) -> dict[str, Scalar]:
    """A flat config dataclass as Flower run-config keys (None fields omitted)."""
    out: dict[str, Scalar] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            raise TypeError(f"{f.name}: run configs are flat (nested config {type(value).__name__})")
        if value is None:
            continue
        out[run_config_key(f.name)] = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else value
    return out


def from_run_config(cls: type, run_config: typing.Mapping[str, Any]) -> Any:
    """The flat config dataclass `cls` from Flower run-config keys; missing keys keep their
    defaults, unknown keys are refused (ValueError, one line)."""
    hints = typing.get_type_hints(cls)
    by_key = {run_config_key(f.name): f for f in dataclasses.fields(cls)}
    unknown = sorted(set(run_config) - set(by_key))
    if unknown:
        raise ValueError(f"unknown run-config key(s): {', '.join(unknown)} (known: {', '.join(sorted(by_key))})")
    values: dict[str, Any] = {}
    for key, value in run_config.items():
        f = by_key[key]
        hint, optional = _optional(hints[f.name])
        if optional and isinstance(value, str) and value.lower() in ("", "none"):
            values[f.name] = None
        elif typing.get_origin(hint) is tuple:
            item = (typing.get_args(hint) or (str,))[0]
            parts = [p for p in str(value).replace(" ", ",").split(",") if p]
            try:
                values[f.name] = tuple(item(p) for p in parts)
            except ValueError:
                raise ValueError(f"{key}: {value!r} is not a comma-separated list of {item.__name__}") from None
        else:
            values[f.name] = _scalar(value, hint, key)
    return cls(**values)


def _toml_value(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else "nan" if math.isnan(value) else repr(value)
    return json.dumps(value)  # a JSON string literal is a valid TOML basic string


def run_config_toml(cfg: Any) -> str:
    """The `[tool.flwr.app.config]` lines of `cfg` (one typed key per field)."""
    return "\n".join(f"{key} = {_toml_value(value)}" for key, value in to_run_config(cfg).items())
