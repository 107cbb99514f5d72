"""Planning a sweep: the rows of ``@ex.configs`` + command-line row overrides -> jobs.

Pure functions, no I/O. The rules (README, "Command line"):

- ``order_id=2`` / ``+order_id=0,3`` / ``+order_id='range(0,4)'`` select rows by position;
- ``KEY=v`` / ``KEY=v1,v2`` where KEY is a key of the rows selects the rows whose value
  matches (compared canonically: ``fold=1`` matches 1 and 1.0); several selections AND;
- ``++KEY=v`` sets KEY in every selected row (``++KEY=v1,v2`` crosses);
- ``+NEW=v1,v2`` adds a key the rows don't have and crosses it with the rows;
- ``~KEY`` removes KEY from every row.
Ids are computed on the final rows; ``order_id`` stays the row's index in the list.
"""

from __future__ import annotations

import copy
import itertools
import re
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

from sem_core import ids
from sem_core.errors import ConfigError

OverrideKind = Literal["select", "set", "add", "delete"]


@dataclass(frozen=True)
class RowOverride:
    kind: OverrideKind
    key: str  # dotted path into the row
    values: tuple  # one value, or several for a sweep
    text: str  # as typed, for error messages


@dataclass(frozen=True, slots=True)  # slots: a sweep holds one per row
class PlannedJob:
    order_id: int
    row: dict  # the user's keys after overrides (no id fields)
    experiment_id: str
    config_id: str


_MISSING = object()

# A key part Hydra's override grammar takes unquoted (its ID and KEY_SPECIAL tokens, ASCII only)
_PLAIN_PART = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")
# A part written in quotes: "a.b", 'learning rate'
_QUOTED_PART = re.compile(r'"([^"]*)"|\'([^\']*)\'')


def format_key(parts: Sequence[str]) -> str:
    """How a key path is typed on the command line: plain parts as they are, any other part
    in quotes (``opt."a.b"``, ``"learning rate"``). ``split_key`` reads it back."""
    out = []
    for part in parts:
        if _PLAIN_PART.fullmatch(part):
            out.append(part)
        else:
            out.append(f"'{part}'" if '"' in part else f'"{part}"')
    return ".".join(out)


def split_key(key: str) -> tuple[str, ...]:
    """The parts of a typed key path: ``a.b`` -> (a, b), ``opt."a.b"`` -> (opt, a.b)."""
    if '"' not in key and "'" not in key:
        return tuple(key.split("."))
    parts = []
    pos = 0
    while True:
        quoted = _QUOTED_PART.match(key, pos)
        if quoted:
            parts.append(quoted.group(1) if quoted.group(1) is not None else quoted.group(2))
            pos = quoted.end()
        else:
            end = key.find(".", pos)
            end = len(key) if end < 0 else end
            parts.append(key[pos:end])
            pos = end
        if pos == len(key):
            return tuple(parts)
        if key[pos] != ".":
            raise ConfigError(f"{key}: a quoted key part must be followed by '.' or '=' (at character {pos + 1})")
        pos += 1


def split_quoted_override(text: str) -> tuple[str, tuple[str, ...], str] | None:
    """``++"a.b"=1`` -> ("++", ("a.b",), "=1"): an override whose key has a quoted part, which
    Hydra's override grammar does not accept; None for any other text."""
    prefix = next((p for p in ("~", "++", "+") if text.startswith(p)), "")
    body = text[len(prefix) :]
    if not body.startswith(("'", '"')) and not re.match(r"[^=]*\.[\"']", body):
        return None
    pos = 0
    while pos < len(body):
        quoted = _QUOTED_PART.match(body, pos)
        if quoted:
            pos = quoted.end()
        else:
            stop = min((i for i in (body.find(".", pos), body.find("=", pos)) if i >= 0), default=len(body))
            pos = stop
        if pos == len(body) or body[pos] == "=":
            break
        if body[pos] != ".":
            raise ConfigError(
                f"{text}: a quoted key part must be followed by '.' or '=' (at character {len(prefix) + pos + 1})"
            )
        pos += 1
    key_text = body[:pos]
    return prefix, split_key(key_text), body[pos:]


def get_path(row: Mapping[str, Any], dotted: str) -> Any:
    node: Any = row
    for part in split_key(dotted):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _set_path(row: dict, dotted: str, value: Any) -> None:
    parts = split_key(dotted)
    node = row
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def _del_path(row: dict, dotted: str) -> None:
    parts = split_key(dotted)
    node: Any = row
    for part in parts[:-1]:
        node = node.get(part)
        if not isinstance(node, dict):
            return
    node.pop(parts[-1], None)


def row_keys(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Top-level keys of the rows, in first-seen order, as they are typed on the command line."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(format_key([key]), None)
    return list(seen)


def _has_key(rows: Sequence[Mapping[str, Any]], dotted: str) -> bool:
    return any(get_path(r, dotted) is not _MISSING for r in rows)


def plan_jobs(
    rows: Sequence[Mapping[str, Any]],
    overrides: Sequence[RowOverride] = (),
    replicate_keys: Iterable[str] = ids.DEFAULT_REPLICATE_KEYS,
    source: str = "the model file",
    dotted_keys: bool = False,
) -> list[PlannedJob]:
    """Apply the row overrides to ``rows`` and return one job per resulting row.

    ``dotted_keys``: the rows' keys are Hydra override paths (``"optimizer.lr"``, a model file
    with a config tree): an unquoted ``optimizer.lr=...`` addresses that key as written."""
    replicate_keys = tuple(replicate_keys)
    if dotted_keys:
        overrides = [_as_written(ov, rows) for ov in overrides]
    n = len(rows)
    selected = list(range(n))

    for ov in overrides:
        _check_override(ov)
    for ov in overrides:
        if ov.kind != "select":
            continue
        if ov.key == "order_id":
            for value in ov.values:
                if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < n:
                    valid = f"order_id 0-{n - 1}" if n else "no rows at all"
                    is_int = isinstance(value, int) and not isinstance(value, bool)
                    problem = "is out of range" if is_int else "is not an integer"
                    raise ConfigError(f"{ov.text}: order_id {value!r} {problem}: {source} has {n} rows ({valid})")
            wanted = set(ov.values)
            selected = [i for i in selected if i in wanted]
            continue
        if not _has_key(rows, ov.key):
            raise ConfigError(
                f"{ov.text}: {ov.key!r} is not a key of any row of {source} "
                f"(row keys: {', '.join(row_keys(rows)) or 'none'})"
                + (_quoting_hint(rows, ov.key) or f"; to add a key to every row use +{ov.key}=...")
            )
        wanted_canon = [ids.canonical(v) for v in ov.values]
        selected = [i for i in selected if _matches(get_path(rows[i], ov.key), wanted_canon)]

    select_texts = [ov.text for ov in overrides if ov.kind == "select"]
    if not selected:
        if n == 0:
            raise ConfigError(f"{source}: @ex.configs returned an empty list: there is nothing to run")
        hints = []
        for ov in overrides:
            if ov.kind == "select" and ov.key != "order_id":
                values = sorted({repr(get_path(r, ov.key)) for r in rows if get_path(r, ov.key) is not _MISSING})
                hints.append(f"{ov.key} takes {', '.join(values[:20])}")
        hint = f" ({'; '.join(hints)})" if hints else ""
        raise ConfigError(f"the selection {' '.join(select_texts)} matched none of the {n} rows of {source}{hint}")

    changes = [ov for ov in overrides if ov.kind != "select"]
    # rows are copied only when an override will change them: the user's list stays intact
    work: list[tuple[int, dict]] = [(i, copy.deepcopy(dict(rows[i])) if changes else rows[i]) for i in selected]  # type: ignore[misc]
    for ov in changes:
        if ov.key == "order_id" or split_key(ov.key)[0] in ids.ID_KEYS:
            raise ConfigError(f"{ov.text}: {ov.key} is computed by sem and cannot be set or removed")
        if ov.kind == "delete":
            if not _has_key([r for _, r in work], ov.key):
                # Hydra's ~KEY fails on a missing key too; a typo must not silently run every row unchanged
                raise ConfigError(
                    f"{ov.text}: {ov.key!r} is not a key of any selected row of {source} "
                    f"(row keys: {', '.join(row_keys([r for _, r in work])) or 'none'})"
                    f"{_quoting_hint([r for _, r in work], ov.key)}"
                )
            for _, row in work:
                _del_path(row, ov.key)
            continue
        if ov.kind == "add" and _has_key([r for _, r in work], ov.key):
            raise ConfigError(
                f"{ov.text}: {ov.key!r} already exists in the rows of {source}; "
                f"use {ov.key}=... to select rows by it, or ++{ov.key}=... to override it"
            )
        crossed = []
        for (order_id, row), value in itertools.product(work, ov.values):
            new = copy.deepcopy(row) if len(ov.values) > 1 else row
            _set_path(new, ov.key, copy.deepcopy(value))
            crossed.append((order_id, new))
        work = crossed

    jobs = []
    for order_id, row in work:
        experiment_id, config_id = ids.row_ids(row, replicate_keys)
        jobs.append(PlannedJob(order_id=order_id, row=row, experiment_id=experiment_id, config_id=config_id))
    return jobs


def _as_written(ov: RowOverride, rows: Sequence[Mapping[str, Any]]) -> RowOverride:
    """``ov`` addressing the row key spelled like its dotted path (``"optimizer.lr"``), when a row
    has that key, or when it sets or adds a key no row has under the nested path."""
    parts = split_key(ov.key)
    if len(parts) < 2:
        return ov
    written = ".".join(parts)
    if any(written in row for row in rows) or (ov.kind in ("set", "add") and not _has_key(rows, ov.key)):
        return RowOverride(ov.kind, format_key([written]), ov.values, ov.text)
    return ov


def _check_override(ov: RowOverride) -> None:
    """Values typed on the command line obey the rules of row values (``ids.normalise_row``):
    a byte that is not UTF-8 in an argument arrives as a lone surrogate."""
    try:
        for part in split_key(ov.key):
            for value in ov.values:
                ids.normalise_row({part: value})
    except ids.RowValueError as exc:
        raise ConfigError(f"{ov.text}: {exc}") from None


def _quoting_hint(rows: Sequence[Mapping[str, Any]], typed: str) -> str:
    """When the parts of an unknown key path, joined with dots, name a key that needs quotes."""
    joined = ".".join(split_key(typed))
    if any(joined in row for row in rows):
        return f"; the row key {joined!r} is typed in quotes: {format_key([joined])}=..."
    return ""


def _matches(value: Any, wanted_canon: list) -> bool:
    if value is _MISSING:
        return False
    return ids.canonical(value) in wanted_canon


def find_duplicates(jobs: Sequence[PlannedJob]) -> list[tuple[int, int, str]]:
    """Pairs of jobs with identical rows: ``(first order_id, later order_id, experiment_id)``."""
    first: dict[str, int] = {}
    pairs = []
    for job in jobs:
        if job.experiment_id in first:
            pairs.append((first[job.experiment_id], job.order_id, job.experiment_id))
        else:
            first[job.experiment_id] = job.order_id
    return pairs


def job_record(job: PlannedJob, global_id: str) -> dict:
    """What ``main`` receives and ``config.json`` holds: the row plus the four ids (a new dict)."""
    return {
        **job.row,
        "experiment_id": job.experiment_id,
        "config_id": job.config_id,
        "order_id": job.order_id,
        "global_id": global_id,
    }


class _Texts:
    """Strings held as one string when they all have one width (run ids, row hashes): a
    str object per row costs 50 bytes more than its characters. A list otherwise."""

    def __init__(self, texts: Sequence[str]) -> None:
        widths = {len(t) for t in texts}
        self.width = widths.pop() if len(widths) == 1 else 0
        self.packed = "".join(texts) if self.width else ""
        self.listed: list[str] = [] if self.width else list(texts)

    def __getitem__(self, i: int) -> str:
        return self.packed[i * self.width : (i + 1) * self.width] if self.width else self.listed[i]


class PlannedRecords(Sequence[dict]):
    """The records (``job_record``) of a sweep's planned jobs, each built when it is asked for.

    A sweep of many rows holds its rows and a few columns (order ids in an array, ids packed
    in strings) rather than a dict and a ``PlannedJob`` per row: the records are read a few
    times each (the manifest, the job, the summary), and per-row objects were half of a large
    sweep's memory. A slice of the records is a view of the same columns."""

    def __init__(self, jobs: Sequence[PlannedJob], global_ids: Sequence[str]) -> None:
        if len(global_ids) != len(jobs):
            raise ValueError(f"{len(jobs)} jobs and {len(global_ids)} run ids: one run id per job is needed")
        self._rows = [job.row for job in jobs]
        self._order_ids = array("q", (job.order_id for job in jobs))
        self._experiment_ids = _Texts([job.experiment_id for job in jobs])
        self._config_ids = _Texts([job.config_id for job in jobs])
        self._global_ids = _Texts(global_ids)
        self._range = range(len(jobs))  # the jobs this view shows

    @classmethod
    def new(cls, jobs: Sequence[PlannedJob], new_id: Callable[[], str]) -> PlannedRecords:
        """Records for ``jobs`` with a new run id each (``new_id()``)."""
        return cls(jobs, [new_id() for _ in range(len(jobs))])

    def __len__(self) -> int:
        return len(self._range)

    @overload
    def __getitem__(self, index: int) -> dict: ...

    @overload
    def __getitem__(self, index: slice) -> PlannedRecords: ...

    def __getitem__(self, index: int | slice) -> dict | PlannedRecords:
        if isinstance(index, slice):
            view = copy.copy(self)
            view._range = self._range[index]
            return view
        i = self._range[index]
        job = PlannedJob(self._order_ids[i], self._rows[i], self._experiment_ids[i], self._config_ids[i])
        return job_record(job, self._global_ids[i])

    def __iter__(self) -> Iterator[dict]:
        for i in range(len(self._range)):
            yield self[i]

    def global_id(self, index: int) -> str:
        """The run id of job ``index`` (without building its record)."""
        return self._global_ids[self._range[index]]
