"""YAML mappings into dataclasses: every key and type checked (step 1 of config loading), ``--set`` overrides.

An unknown key is a ``ConfigError`` naming it and the closest valid one; a wrong type names the key, the
expected type and the value. Used for every block of a backtest YAML and by commands with their own YAML.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

__all__ = ["apply_overrides", "build_dataclass", "check_names", "check_param_types", "read_yaml"]


def check_names(given: Iterable[str], valid: Iterable[str], where: str) -> None:
    """Raise a ConfigError naming the first unknown key and the closest valid one."""
    valid = sorted(valid)
    for key in given:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
            hint = f"; did you mean '{_join(where, close[0])}'?" if close else ""
            raise ConfigError(f"unknown key '{_join(where, key)}'{hint} (valid keys: {', '.join(valid)})")


def _join(where: str, key: object) -> str:
    return f"{where}.{key}" if where else str(key)


def build_dataclass(cls: type, raw: object, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, checking key names and value types recursively."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"'{where}' must be a mapping of keys to values, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    check_names(raw, fields, where)
    hints = typing.get_type_hints(cls)
    values = {key: _coerce(value, hints[key], _join(where, key)) for key, value in raw.items()}
    return cls(**values)


def _type_name(hint: object) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _coerce(value: object, hint: object, where: str) -> object:  # noqa: C901 - one branch per type
    """Check ``value`` against a type hint, converting only where YAML is loose (int -> float, date -> str)."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(value, option, where)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, where)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, datetime.date):  # YAML reads 2015-01-01 as a date
            return value.isoformat()
    elif origin is tuple:
        args = typing.get_args(hint)
        if isinstance(value, list | tuple):
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
            if len(value) == len(args):
                return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
            raise ConfigError(f"'{where}' must have {len(args)} values, got {len(value)}")
    elif origin is dict:
        if isinstance(value, Mapping):
            return dict(value)
    else:
        raise TypeError(f"config field {where} has an unsupported type {hint!r}")
    shown = _type_name(hint) if origin is None else _type_name(origin)
    raise ConfigError(f"'{where}' must be of type {shown}, got {value!r} ({type(value).__name__})")


def check_param_types(given: Mapping[str, Any], defaults: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check params against the types of their declared defaults (before any forecast); ints pass as floats."""
    out = dict(given)
    for key, value in given.items():
        default = defaults.get(key)
        if default is None or value is None:
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int | float):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if ok and isinstance(default, float):
                out[key] = float(value)
            elif ok and isinstance(value, float):
                ok = value.is_integer()
                out[key] = int(value)
        elif isinstance(default, str):
            ok = isinstance(value, str)
        elif isinstance(default, list | tuple):
            ok = isinstance(value, list | tuple)
        else:
            continue
        if not ok:
            kind = "true/false" if isinstance(default, bool) else type(default).__name__
            raise ConfigError(
                f"'{where}.{key}' must be {kind} like the default {default!r}, got {value!r} "
                f"({type(value).__name__}); fix it in the YAML or with --set {where}.{key}=..."
            )
    return out


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` strings (value parsed as YAML: numbers, booleans, lists) to a copy of ``raw``."""
    out = _deep_copy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value (e.g. strategy.params.enter=0.2), got {item!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        node = out
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: '{'.'.join(parts[: depth + 1])}' is not a section")
            node = child
        node[parts[-1]] = value
    return out


def _deep_copy(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in raw.items()}


def read_yaml(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file (``yaml.safe_load``); a missing or malformed file is a ConfigError."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path} must hold a mapping of sections (data:, model:, ...), not {type(raw).__name__}"
        )
    return raw
