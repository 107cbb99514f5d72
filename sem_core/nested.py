"""Walking nested JSON-like data (dicts, lists, tuples): the one walker that secret redaction
and row escaping share. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def map_leaves(value: Any, fn: Callable[[Any, str], Any], key: str = "") -> Any:
    """A copy of ``value`` with every leaf (anything not a mapping, list or tuple) replaced by
    ``fn(leaf, key)``; ``key`` is the name of the nearest enclosing mapping key ("" at the top),
    so secrets can be recognised by their key's name. Mappings become dicts, tuples lists (JSON's
    shapes); keys are kept as they are."""
    if isinstance(value, Mapping):
        return {k: map_leaves(v, fn, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [map_leaves(v, fn, key) for v in value]
    return fn(value, key)


def map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    """A copy of ``value`` with ``fn`` applied to every string leaf."""
    return map_leaves(value, lambda leaf, _key: fn(leaf) if isinstance(leaf, str) else leaf)
