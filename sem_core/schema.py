"""Validating rows against an optional ``schema=`` dataclass (pure; errors name the row)."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping, Union

from sem_core.errors import ConfigError


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check(value: Any, tp: Any) -> bool:
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return any(_check(value, arg) for arg in typing.get_args(tp))
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if tp is type(None) or tp is None:
        return value is None
    if origin in (list, tuple, typing.Sequence):
        args = typing.get_args(tp)
        if not isinstance(value, list):
            return False
        return not args or all(_check(v, args[0]) for v in value)
    if origin in (dict, typing.Mapping):
        args = typing.get_args(tp)
        if not isinstance(value, dict):
            return False
        return not args or all(_check(v, args[1]) for v in value.values())
    if dataclasses.is_dataclass(tp):
        return isinstance(value, dict)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def validate_row(row: Mapping[str, Any], schema: type, order_id: int, source: str) -> None:
    """Raise ``ConfigError`` naming the row, key and value if ``row`` does not fit ``schema``."""
    where = f"{source} row order_id={order_id}"
    hints = typing.get_type_hints(schema)
    schema_fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = sorted(set(row) - set(schema_fields))
    if unknown:
        raise ConfigError(
            f"{where}: key(s) {unknown} are not fields of the schema {schema.__name__} "
            f"(fields: {', '.join(schema_fields)}); add them to the schema or remove them from the row"
        )
    for name, f in schema_fields.items():
        if name not in row:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
                raise ConfigError(f"{where}: required key {name!r} (schema {schema.__name__}) is missing")
            continue
        tp = hints.get(name, Any)
        value = row[name]
        if not _check(value, tp):
            raise ConfigError(
                f"{where}: key {name!r} has value {value!r} ({type(value).__name__}), "
                f"but the schema {schema.__name__} expects {_type_name(tp)}"
            )
        if dataclasses.is_dataclass(tp):
            validate_row(value, tp, order_id, f"{source} (in {name!r})")
