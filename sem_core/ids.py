"""Run identifiers. Pure functions: no I/O, no clock, except `new_global_id`.

The algorithm (also in the README, "IDs"):

1. ``canonical(row)`` turns a row into JSON-like data with one spelling per value:
   dict keys become strings and are sorted, tuples become lists, numpy scalars and
   arrays become Python numbers and lists, floats that are whole numbers become ints
   (``1 == 1.0 == numpy.int64(1)``), ``-0.0`` becomes ``0``, NaN/inf are spelled
   ``"nan"``/``"inf"``/``"-inf"`` floats. Booleans stay booleans (``True != 1``).
2. The id fields themselves (``ID_KEYS``) are dropped from the top level.
3. ``experiment_id`` = first 16 hex digits of SHA-256 over the compact JSON
   (``sort_keys=True``, separators ``(",", ":")``, UTF-8, ``ensure_ascii=False``).
4. ``config_id`` = the same hash after also dropping the replicate keys (``fold``
   by default), so every fold of one configuration shares it.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import time
from typing import Any, Iterable, Mapping

ID_KEYS = ("experiment_id", "config_id", "order_id", "global_id")
DEFAULT_REPLICATE_KEYS = ("fold",)
HASH_LENGTH = 16


class RowValueError(TypeError):
    """A row holds a value that has no JSON-like canonical form."""

    def __init__(self, path: str, value: Any):
        self.path = path
        self.value = value
        super().__init__(
            f"key {path!r} has a value of type {type(value).__name__} ({value!r:.80}); "
            "rows may hold only None, bool, int, float, str, lists and dicts "
            "(numpy scalars and arrays are converted)"
        )


def canonical(value: Any, _path: str = "") -> Any:
    """Return the canonical JSON-like form of ``value`` (see module docstring)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _canonical_float(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            key = k if isinstance(k, str) else str(canonical(k, _path))
            out[key] = canonical(v, f"{_path}.{key}" if _path else key)
        return out
    if isinstance(value, (list, tuple)):
        return [canonical(v, f"{_path}[{i}]") for i, v in enumerate(value)]
    # numpy without importing numpy: scalars have .item(), arrays .tolist()
    type_module = type(value).__module__
    if type_module == "numpy":
        if hasattr(value, "tolist"):
            return canonical(value.tolist(), _path)
    raise RowValueError(_path or "<row>", value)


def _canonical_float(x: float) -> Any:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x.is_integer():
        return int(x)
    return x


def normalise_row(row: Mapping[str, Any]) -> dict:
    """The row as plain Python data (numpy converted, tuples as lists), values kept.

    Unlike ``canonical`` this keeps 1.0 a float and NaN a float: it is what ``main``
    receives. Raises ``RowValueError`` naming the key for unsupported values.
    """
    return _normalise(row, "")


def _normalise(value: Any, path: str) -> Any:
    if value is None or isinstance(value, (bool, str, int, float)):
        if isinstance(value, int) and not isinstance(value, bool) and type(value) is not int:
            return int(value)
        if isinstance(value, float) and type(value) is not float:
            return float(value)
        return value
    if isinstance(value, Mapping):
        return {
            (k if isinstance(k, str) else str(k)): _normalise(v, f"{path}.{k}" if path else str(k))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_normalise(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return _normalise(value.tolist(), path)
    raise RowValueError(path or "<row>", value)


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_LENGTH]


def user_keys(row: Mapping[str, Any]) -> dict:
    """The row without sem's id fields."""
    return {k: v for k, v in row.items() if k not in ID_KEYS}


def experiment_id(row: Mapping[str, Any]) -> str:
    """Hash of the canonical row (user keys only)."""
    return _digest(canonical(user_keys(row)))


def config_id(row: Mapping[str, Any], replicate_keys: Iterable[str] = DEFAULT_REPLICATE_KEYS) -> str:
    """Hash of the canonical row without the replicate keys: shared by all folds."""
    drop = set(replicate_keys)
    return _digest(canonical({k: v for k, v in user_keys(row).items() if k not in drop}))


def row_ids(row: Mapping[str, Any], replicate_keys: Iterable[str] = DEFAULT_REPLICATE_KEYS) -> tuple[str, str]:
    """``(experiment_id, config_id)`` of a row, canonicalising it once."""
    canon = canonical(user_keys(row))
    drop = set(replicate_keys)
    return _digest(canon), _digest({k: v for k, v in canon.items() if k not in drop})


def new_global_id() -> str:
    """A run id unique across processes, machines and users; sortable by start time.

    ``YYYYmmddTHHMMSS-<12 hex>``: 48 random bits per second, and a valid folder name.
    """
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(6)
