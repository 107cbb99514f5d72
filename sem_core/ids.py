"""Run identifiers. Pure functions: no I/O, no clock, except `new_global_id`.

The algorithm (also in the README, "IDs"):

1. ``canonical(row)`` turns a row into JSON-like data with one spelling per value:
   dict keys become strings and are sorted, tuples become lists, numpy scalars and
   arrays become Python numbers and lists, floats that are whole numbers become ints
   (``1 == 1.0 == numpy.int64(1)``), ``-0.0`` becomes ``0``, NaN/inf are spelled
   ``"nan"``/``"inf"``/``"-inf"`` floats. Booleans stay booleans (``True != 1``).
2. The id fields themselves (``ID_KEYS``) are dropped from the top level.
   The row is hashed as written (after command-line overrides): values a ``schema=`` fills in
   from its defaults, and what a config tree composes, are not hashed. So adding a field with a
   default to a schema, or changing a config file, keeps every existing id; a row that spells
   out a default gets another id than one that leaves it out.
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
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import Any

ID_KEYS = ("experiment_id", "config_id", "order_id", "global_id")
# config.json's copy of the job's config (with a schema's defaults, or composed from a config
# tree): recorded, never hashed
COMPOSED_KEY = "composed"
# keys a row cannot have: sem writes them
RESERVED_KEYS = frozenset((*ID_KEYS, COMPOSED_KEY, "sem", "hydra"))
DEFAULT_REPLICATE_KEYS = ("fold",)
HASH_LENGTH = 16


class RowValueError(TypeError):
    """A row holds a value (or key) that has no JSON-like canonical form."""

    def __init__(self, path: str, value: Any, problem: str | None = None):
        self.path = path
        self.value = value
        super().__init__(
            problem
            or (
                f"key {path!r} has a value of type {type(value).__name__} ({value!r:.80}); "
                "rows may hold only None, bool, int, float, str, lists and dicts "
                "(numpy scalars and arrays are converted)"
            )
        )


# Deeper rows overflow Python's stack while Hydra and OmegaConf compose a job (about 90
# levels); the limit leaves room for the frames of the launcher, the observers and json.
MAX_DEPTH = 32


class _NotPlain(Exception):
    """Raised by the fast paths below for anything but plain str-keyed JSON data: the careful
    path then does the work, with the key path for its error messages."""


def _canonical_plain(value: Any) -> Any:
    t = type(value)
    if t is str or t is bool or value is None or t is int:
        return value
    if t is float:
        return _canonical_float(value)
    if t is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise _NotPlain
            tv = type(v)  # scalars inline: a call per value is most of the time
            out[k] = v if (tv is str or tv is int or tv is bool or v is None) else _canonical_plain(v)
        return out
    if t is list or t is tuple:
        return [_canonical_plain(v) for v in value]
    raise _NotPlain


def _is_canonical(value: Any) -> bool:
    """Whether ``value`` (a dict or list) is its own canonical form (string keys, no tuple, no
    float that is whole or not finite): then it is hashed as it is, without a copy."""
    if type(value) is dict:
        for k in value:
            if type(k) is not str:
                return False
        return _all_canonical(value.values())
    return type(value) is list and _all_canonical(value)


def _all_canonical(values: Iterable[Any]) -> bool:
    for v in values:
        tv = type(v)
        if tv is float:
            if v.is_integer() or v != v or v in (_INF, -_INF):
                return False
        elif not (tv is str or tv is int or tv is bool or v is None or _is_canonical(v)):
            return False
    return True


_INF = float("inf")


def canonical(value: Any, _path: str = "") -> Any:
    """Return the canonical JSON-like form of ``value`` (see module docstring)."""
    if not _path:
        # planning hashes every row: plain rows (all of them, after ``normalise_row``) skip the
        # key paths, which only an error needs
        try:
            return _canonical_plain(value)
        except (_NotPlain, RecursionError):
            pass
    return _canonical(value, _path)


def _canonical(value: Any, _path: str) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _canonical_float(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            key = k if isinstance(k, str) else str(_canonical(k, _path))
            out[key] = _canonical(v, f"{_path}.{key}" if _path else key)
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(v, f"{_path}[{i}]") for i, v in enumerate(value)]
    # numpy without importing numpy: scalars have .item(), arrays .tolist()
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return _canonical(value.tolist(), _path)
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
    receives. Raises ``RowValueError`` naming the key for what cannot be stored and selected
    the same way everywhere: unsupported values, keys that are not scalars, two keys written
    alike in JSON (``1`` and ``"1"``), strings that are not valid Unicode (a lone surrogate),
    keys no command line can spell, and nesting deeper than ``MAX_DEPTH``.
    """
    try:
        if _is_normal(row, 0):
            return row if type(row) is dict else dict(row)
        return _normalise_plain(row, 0)
    except (_NotPlain, RecursionError):
        return _normalise(row, "", 0)


def _is_normal(value: Any, depth: int) -> bool:
    """Whether ``value`` (a dict or list) is already what ``_normalise_plain`` would make of it:
    then the row is kept as it is, without a copy."""
    if depth >= MAX_DEPTH:
        return False
    if type(value) is dict:
        for k in value:
            if type(k) is not str or not (k.isascii() and k.isprintable()) or ('"' in k and "'" in k):
                return False
        return _all_normal(value.values(), depth)
    return type(value) is list and _all_normal(value, depth)


def _all_normal(values: Iterable[Any], depth: int) -> bool:
    for v in values:
        tv = type(v)
        if tv is str:
            if not v.isascii():
                return False
        elif not (tv is int or tv is float or tv is bool or v is None or _is_normal(v, depth + 1)):
            return False
    return True


def _normalise_plain(value: Any, depth: int) -> Any:
    """``_normalise`` for plain data whose strings are ASCII and whose keys are printable and
    quotable (nearly every row): no key paths, no per-character checks."""
    t = type(value)
    if t is str:
        if not value.isascii():
            raise _NotPlain
        return value
    if t is bool or t is int or t is float or value is None:
        return value
    if depth >= MAX_DEPTH:
        raise _NotPlain
    if t is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str or not (k.isascii() and k.isprintable()) or ('"' in k and "'" in k):
                raise _NotPlain
            tv = type(v)  # scalars inline: a call per value is most of the time
            if tv is int or tv is float or tv is bool or v is None or (tv is str and v.isascii()):
                out[k] = v
            else:
                out[k] = _normalise_plain(v, depth + 1)
        return out
    if t is list or t is tuple:
        return [_normalise_plain(v, depth + 1) for v in value]
    raise _NotPlain


def _check_text(text: str, path: str, is_key: bool) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            what = f"key {path!r}" if is_key else f"key {path!r} has a string {text!r:.80} that"
            raise RowValueError(
                path,
                text,
                f"{what} holds {text[exc.start]!r}, a lone surrogate that is not valid Unicode "
                "and cannot be written to config.json (decode bytes with errors='replace')",
            ) from None


def _key_text(key: Any, path: str) -> str:
    if type(key).__module__ == "numpy" and getattr(key, "ndim", None) == 0:
        key = key.item()  # numpy scalar -> Python scalar
    if key is None or isinstance(key, (bool, int, float, str)):
        text = key if isinstance(key, str) else str(key)
    else:
        raise RowValueError(
            path,
            key,
            f"key {key!r:.80} {_under(path)} is a {type(key).__name__}; "
            "row keys must be strings (numbers are written as strings)",
        )
    where = f"{path}.{text}" if path else text
    _check_text(text, where, is_key=True)
    problem = unspellable_key(text)
    if problem:
        raise RowValueError(where, key, f"key {where!r} {problem}, so no command line can select it; rename it")
    return text


def _under(path: str) -> str:
    return f"under {_short(path)!r}" if path else "at the top level"


def _short(path: str, width: int = 60) -> str:
    return path if len(path) <= width else path[: width - 3] + "..."


def unspellable_key(key: str) -> str | None:
    """Why ``key`` cannot be typed as a row override (see ``sem_core.plan.format_key``), or None."""
    if '"' in key and "'" in key:
        return "holds both quote characters"
    if any(unicodedata.category(c) == "Cc" for c in key):
        return "holds a control character"
    return None


def _normalise(value: Any, path: str, depth: int) -> Any:
    if value is None or isinstance(value, (bool, str, int, float)):
        if isinstance(value, str):
            _check_text(value, path or "<row>", is_key=False)
            return value
        if isinstance(value, int) and not isinstance(value, bool) and type(value) is not int:
            return int(value)
        if isinstance(value, float) and type(value) is not float:
            return float(value)
        return value
    if depth >= MAX_DEPTH and isinstance(value, (Mapping, list, tuple)):
        raise RowValueError(
            path,
            value,
            f"key {_short(path)!r} nests dicts and lists more than {MAX_DEPTH} levels deep (a cycle?); "
            "Hydra cannot compose rows that deep: flatten it, or store it in a file and put the file's path in the row",
        )
    if isinstance(value, Mapping):
        out: dict = {}
        originals: dict = {}
        for k, v in value.items():
            text = _key_text(k, path)
            if text in out:
                raise RowValueError(
                    path,
                    k,
                    f"keys {originals[text]!r} and {k!r} {_under(path)} are both written "
                    f"as {text!r} in config.json: one value would be lost; rename one",
                )
            originals[text] = k
            out[text] = _normalise(v, f"{path}.{text}" if path else text, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_normalise(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return _normalise(value.tolist(), path, depth)
    raise RowValueError(path or "<row>", value)


def _json_encoder() -> Callable[[Any], str]:
    """``json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, built
    once: json.dumps builds an encoder per call, a third of hashing a row. The C encoder is
    called directly where there is one (CPython); it keeps no state between calls (no circular
    check: a row is a tree)."""
    encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return encoder.encode
    c_encode = make(None, encoder.default, json.encoder.encode_basestring, None, ":", ",", True, False, True)
    return lambda data: "".join(c_encode(data, 0))


_encode_json = _json_encoder()


def _digest(data: Any) -> str:
    text = _encode_json(data)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_LENGTH]


_NOT_HASHED = frozenset((*ID_KEYS, COMPOSED_KEY))


def user_keys(row: Mapping[str, Any]) -> dict:
    """The row without sem's id fields (and without the ``composed`` copy of a job's config)."""
    return {k: v for k, v in row.items() if k not in _NOT_HASHED}


def experiment_id(row: Mapping[str, Any]) -> str:
    """Hash of the canonical row (user keys only)."""
    return _digest(canonical(user_keys(row)))


def config_id(row: Mapping[str, Any], replicate_keys: Iterable[str] = DEFAULT_REPLICATE_KEYS) -> str:
    """Hash of the canonical row without the replicate keys: shared by all folds."""
    drop = set(replicate_keys)
    return _digest(canonical({k: v for k, v in user_keys(row).items() if k not in drop}))


def row_ids(row: Mapping[str, Any], replicate_keys: Iterable[str] = DEFAULT_REPLICATE_KEYS) -> tuple[str, str]:
    """``(experiment_id, config_id)`` of a row, canonicalising it once."""
    keys = row if _NOT_HASHED.isdisjoint(row) else user_keys(row)
    canon = keys if _is_canonical(keys) else canonical(keys)
    drop = [k for k in replicate_keys if k in canon]
    digest = _digest(canon)
    if not drop:  # no replicate key in the row: both ids hash the same data
        return digest, digest
    return digest, _digest({k: v for k, v in canon.items() if k not in drop})


def new_global_id() -> str:
    """A run id unique across processes, machines and users; sortable by start time.

    ``YYYYmmddTHHMMSS-<12 hex>``: 48 random bits per second, and a valid folder name.
    """
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(6)
