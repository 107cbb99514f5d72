"""sacred's MongoObserver schema, built from (and read back into) sem's file layout. Pure: no I/O.

What sacred's MongoObserver writes, and so what this module builds:

- ``runs``: one document per run, integer ``_id``; fields ``experiment`` (``sources`` as
  ``[name, GridFS id]``), ``format``, ``command``, ``host``, ``start_time``, ``heartbeat``,
  ``stop_time``, ``status``, ``config``, ``meta``, ``resources`` (``[filename, md5]``),
  ``artifacts`` (``{name, file_id}``), ``captured_out``, ``info`` (``info.metrics`` lists
  ``{id, name}`` links to the metrics collection), ``result``, ``fail_trace``.
- ``metrics``: one document per run and metric: ``run_id``, ``name``, ``steps``, ``values``,
  ``timestamps``.
- GridFS bucket ``fs``: artifacts (filename ``artifact://runs/<_id>/<name>``) and sources
  (filename = absolute path), each stored once per content (``md5`` field).

sem adds one field, ``sem`` (sync fingerprint, time, origin, and where offloaded data lives),
and never drops data at MongoDB's 16 MB document limit: a metric with more than
``MAX_METRIC_POINTS`` points keeps an evenly spaced copy of that many points in its document
(first and last point included) plus ``sem_full_data``, the GridFS file holding every point;
a ``captured_out`` over ``MAX_CAPTURED_OUT_BYTES`` keeps its head and tail in the document, a
note saying where the rest is, and the full text in GridFS (``sem.captured_out_file_id``).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

from sem_core.mongo.connection import redact_uri, secret_spellings
from sem_core.nested import map_strings
from sem_core.records import SERIES_KEYS, parse_time

FORMAT = "MongoObserver-0.7.0"
# Bump when the documents built here change: every run is then re-uploaded once.
SYNC_VERSION = 1
# 50k points x 3 arrays x ~17 bytes ~ 2.6 MB: far below 16 MB, and Omniboard stays responsive.
MAX_METRIC_POINTS = 50_000
MAX_CAPTURED_OUT_BYTES = 1_000_000
# MongoDB refuses documents over 16 MiB; keep a margin for the server's own overhead.
MAX_DOCUMENT_BYTES = 15 * 1024 * 1024
FULL_METRIC_ENCODING = "json+gzip"

_STORED_MD5 = re.compile(r"_([0-9a-f]{32})(?:\.[^/]*)?$")


def fingerprint(entries: Iterable[tuple[str, int, int]]) -> str:
    """Change detector of a run folder from ``(file name, size, mtime_ns)`` of its files.

    Any rewritten file changes it; it costs one stat per file, so a re-sync of unchanged runs
    reads no file contents."""
    h = hashlib.sha1(f"sem-sync-{SYNC_VERSION}".encode())
    for name, size, mtime_ns in sorted(entries):
        h.update(f"\0{name}\0{size}\0{mtime_ns}".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def document_time(value: Any) -> Any:
    """A record's ISO-8601 time (sem's files) -> datetime (sacred's documents); anything else,
    or a string that is no time, unchanged."""
    parsed = parse_time(value) if isinstance(value, str) else None
    return value if parsed is None else parsed


def document_times(values: list) -> list:
    """``document_time`` of each value, as BSON stores it. A metric's timestamps are thousands
    of ISO strings: parsed in one pass at C speed (a naive time stays naive: BSON takes naive
    times as UTC, as sem's records and sacred's documents mean them), value by value only when
    one is no time."""
    try:
        return list(map(dt.datetime.fromisoformat, values))
    except (TypeError, ValueError):
        return [document_time(v) for v in values]


def record_time(value: Any) -> Any:
    """The inverse of ``document_time``, for reading documents back into sem's file form."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def bounded_indices(n: int, k: int) -> list[int]:
    """``min(n, k)`` evenly spaced indices into ``range(n)``, first and last included, sorted, unique."""
    if n <= k:
        return list(range(n))
    if k <= 0:
        return []
    if k == 1:
        return [n - 1]
    return [(i * (n - 1)) // (k - 1) for i in range(k)]


def bounded_series(series: dict, max_points: int = MAX_METRIC_POINTS) -> tuple[dict, bool]:
    """The series as stored in the metric document, and whether it was thinned out."""
    n = len(series.get("values", []))
    if n <= max_points:
        return {key: list(series.get(key, [])) for key in SERIES_KEYS}, False
    keep = bounded_indices(n, max_points)
    out = {}
    for key in SERIES_KEYS:
        values = series.get(key, [])
        out[key] = [values[i] for i in keep] if len(values) == n else list(values[: len(keep)])
    return out, True


def encode_full_series(series: dict) -> bytes:
    """Every point of a metric, for GridFS (timestamps as ISO strings, as in metrics.json)."""
    plain = {
        key: [record_time(v) for v in series.get(key, [])] if key == "timestamps" else series.get(key, [])
        for key in SERIES_KEYS
    }
    return gzip.compress(json.dumps(plain, separators=(",", ":")).encode("utf-8"), compresslevel=1)


def decode_full_series(blob: bytes) -> dict:
    return json.loads(gzip.decompress(blob).decode("utf-8"))


def bounded_text(text: str, max_bytes: int = MAX_CAPTURED_OUT_BYTES) -> tuple[str, bool]:
    """Head (1/4) and tail (3/4) of ``text`` within ``max_bytes`` UTF-8 bytes, and whether it was cut.
    The tail gets more room: the end of a log says how a run finished."""
    data = text.encode("utf-8", "surrogateescape")
    if len(data) <= max_bytes:
        return text, False
    head = data[: max_bytes // 4].decode("utf-8", "ignore")
    tail = data[len(data) - (max_bytes - max_bytes // 4) :].decode("utf-8", "ignore")
    return head + "\n" + tail, True


def truncation_note(total_bytes: int, file_id: Any, filename: str) -> str:
    return (
        f"\n[sem: captured_out has {total_bytes} bytes; only its head and tail are shown here. "
        f"Full text: GridFS file {file_id} ({filename!r}), see sem.captured_out_file_id]\n"
    )


def md5_of_stored_name(stored: str) -> str | None:
    """The md5 inside a content-addressed name ``_sources/<stem>_<md5>.<ext>``."""
    m = _STORED_MD5.search(stored)
    return m.group(1) if m else None


def artifact_filename(run_id: int, name: str, collection: str = "runs") -> str:
    return f"artifact://{collection}/{run_id}/{name}"


def bounded_metric_document(
    run_id: int, name: str, series: dict, oid: Any, max_points: int = MAX_METRIC_POINTS
) -> tuple[dict, bool]:
    """sacred's metric document, thinned to ``max_points`` if needed (caller adds the pointer)."""
    stored, thinned = bounded_series(series, max_points)
    doc = {
        "_id": oid,
        "run_id": run_id,
        "name": name,
        "steps": stored["steps"],
        "timestamps": document_times(stored["timestamps"]),
        "values": stored["values"],
    }
    return doc, thinned


def run_document(
    run_json: dict,
    config: dict,
    info: dict,
    captured_out: str,
    source_ids: list,
    artifact_ids: list,
    metric_links: list,
    sync: dict,
) -> dict:
    """sacred's run document (without ``_id``) from a run folder's files.

    ``source_ids``: ``[name, GridFS id]``; ``artifact_ids``: ``{name, file_id}``;
    ``metric_links``: ``{id, name}``; ``sync``: the ``sem`` field."""
    experiment = dict(run_json.get("experiment") or {})
    experiment["sources"] = source_ids
    resources = []
    for entry in run_json.get("resources") or []:
        filename, stored = (list(entry) + [None, None])[:2]
        resources.append([filename, md5_of_stored_name(str(stored)) if stored else None])
    info = dict(info or {})
    info["metrics"] = metric_links
    doc = {
        "experiment": experiment,
        "format": FORMAT,
        "command": run_json.get("command"),
        "host": run_json.get("host") or {},
        "start_time": document_time(run_json.get("start_time")),
        "heartbeat": document_time(run_json.get("heartbeat")),
        "config": config,
        "meta": run_json.get("meta") or {},
        "status": run_json.get("status", "UNKNOWN"),
        "resources": resources,
        "artifacts": artifact_ids,
        "captured_out": captured_out,
        "info": info,
        "result": run_json.get("result"),
        "sem": sync,
    }
    for key in ("stop_time", "queue_time"):
        if run_json.get(key) is not None:
            doc[key] = document_time(run_json[key])
    if run_json.get("fail_trace") is not None:
        doc["fail_trace"] = run_json["fail_trace"]
    return doc


def run_json_of(doc: dict) -> dict:
    """A run document read back into the form of sem's ``run.json``."""
    run = {
        key: record_time(doc.get(key))
        for key in (
            "command",
            "host",
            "start_time",
            "heartbeat",
            "stop_time",
            "queue_time",
            "meta",
            "status",
            "result",
            "fail_trace",
        )
        if key in doc
    }
    experiment = dict(doc.get("experiment") or {})
    experiment["sources"] = [[name, str(file_id)] for name, file_id in experiment.get("sources") or []]
    run["experiment"] = experiment
    run["resources"] = [list(r) for r in doc.get("resources") or []]
    run["artifacts"] = [a.get("name") for a in doc.get("artifacts") or []]
    run["mongo_id"] = doc.get("_id")
    return run


def scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    """``value`` with every string passed through ``redact_uri``: URL passwords and every
    spelling of each secret become ``***``. (``value`` itself when no string could change.)"""
    if not _may_need_redaction(value, secrets):
        return value
    return map_strings(value, lambda text: redact_uri(text, secrets))


def _may_need_redaction(value: Any, secrets: tuple[str, ...]) -> bool:
    """False only when ``redact_uri`` would change no string in ``value``: no ``://`` (every URL
    it redacts has one) and no spelling of a secret anywhere in one JSON dump of it (C speed,
    where a regex per string costs a job milliseconds). A secret the dump would escape, or a
    value it cannot dump, answers True."""
    spellings = [s for secret in secrets for s in secret_spellings(secret)]
    if any(json.dumps(s, ensure_ascii=False)[1:-1] != s for s in spellings):
        return True
    try:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return True
    return "://" in text or any(s in text for s in spellings)
