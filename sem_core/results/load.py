"""Read runs into one pandas DataFrame: one row per run.

Sources: an experiment folder (its run store is ``<exp>/models/runs`` unless ``sem: storage:`` in
``experiment_config.yaml`` moves it), a run store itself, a list of those, or a ``mongodb://`` URL.

Speed: reading run.json, config.json and the whole metrics.json of every run is what costs (the
plain pandas-over-json loop). ``load_runs`` keeps a per-store *summary cache* outside the store
(``$SEM_CACHE_DIR``, else ``$XDG_CACHE_HOME/sem``, else ``~/.cache/sem``): for each run folder a
stat stamp (``_stamp``: the folder's, plus run.json's for records written in place), and the summary
read from the records (run fields, ids, flattened config, last value of every metric), stored column
by column (``SummaryColumns``) so that the DataFrame is built without a dict per run. A finished run
whose stamp is unchanged is not read again; live runs always are. The store itself is never written
to, so read-only and DVC-tracked stores work unchanged.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import marshal
import os
import sys
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sem_core import records
from sem_core.errors import SemError
from sem_core.ids import ID_KEYS
from sem_core.mongo import connection, reader
from sem_core.mongo.connection import redact_uri
from sem_core.run_status import FINISHED_STATUSES
from sem_core.settings import EXPERIMENT_CONFIG_NAME, load_experiment_config, say_once

if TYPE_CHECKING:
    import pandas as pd

SourceLike = str | os.PathLike | Sequence[str | os.PathLike]

# Columns every row has, in this order; config and metric columns follow.
RUN_COLUMNS = (
    "global_id",
    "experiment_id",
    "config_id",
    "order_id",
    "model",
    "status",
    "start_time",
    "stop_time",
    "duration",
    "host",
    "path",
)
CACHE_VERSION = 4  # the header names it: a cache of another format is rebuilt, not read


class NoRunsFound(SemError):
    """No run matched: the message says where sem looked."""


# -- where the runs are -------------------------------------------------------------------------


def find_experiment_dir(start: Path | None = None) -> Path:
    """The experiment folder around ``start`` (default: the current directory): the nearest folder,
    ``start`` or a parent, that holds ``models/`` or ``experiment_config.yaml``."""
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / EXPERIMENT_CONFIG_NAME).is_file() or (folder / "models").is_dir():
            return folder
        if folder.name == "models" and folder.is_dir():
            return folder.parent
    raise NoRunsFound(
        f"no experiment folder around {start}: none of it or its parents holds models/ or "
        f"{EXPERIMENT_CONFIG_NAME}; pass the experiment folder or a run store as PATH"
    )


def store_of_experiment(experiment_dir: Path) -> Path:
    """The run store of an experiment folder: ``sem: storage:`` of experiment_config.yaml (relative
    paths are relative to the experiment folder), else ``<exp>/models/runs``."""
    experiment_dir = Path(experiment_dir)
    section = load_experiment_config(experiment_dir).get("sem") or {}
    storage = section.get("storage") if isinstance(section, dict) else None
    if storage:
        path = Path(os.path.expanduser(str(storage)))
        return path if path.is_absolute() else (experiment_dir / path)
    return experiment_dir / "models" / "runs"


def is_run_store(path: Path) -> bool:
    """A folder that holds run folders (``*/run.json``) or sacred's ``_sources``."""
    path = Path(path)
    if not path.is_dir():
        return False
    if (path / records.SOURCES_DIR).is_dir():
        return True
    return next(records.iter_run_dirs(path), None) is not None


def resolve_stores(source: SourceLike | None) -> list[Path | str]:
    """The run stores (paths) and MongoDB URLs named by ``source`` (see module docstring)."""
    if source is None:
        return [store_of_experiment(find_experiment_dir())]
    if isinstance(source, (str, os.PathLike)):
        items: list = [source]
    else:
        items = list(source)
    out: list[Path | str] = []
    for item in items:
        text = os.fspath(item)
        if is_mongo_location(text):
            out.append(text)
            continue
        path = Path(text).expanduser()
        if not path.exists():
            raise NoRunsFound(f"{path}: no such file or folder (expected an experiment folder or a run store)")
        if is_run_store(path) or path.name == "runs":
            out.append(path)
        elif path.name == "models" and (path / "runs").exists():
            out.append(path / "runs")
        elif (path / EXPERIMENT_CONFIG_NAME).is_file() or (path / "models").is_dir():
            out.append(store_of_experiment(path))
        else:
            raise NoRunsFound(
                f"{path}: neither a run store (folders with run.json) nor an experiment folder "
                f"(holding models/ or {EXPERIMENT_CONFIG_NAME})"
            )
    return out


def describe_sources(stores: Sequence[Path | str]) -> str:
    return ", ".join(redact_uri(str(s)) if isinstance(s, str) else str(s) for s in stores)


# -- one run -> one summary dict --------------------------------------------------------------


_SCALARS = frozenset({str, int, float, bool, type(None)})


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested keys flattened to ``a.b``; lists become their compact JSON text (hashable, readable).
    (Plain ``dict``/``list`` checks: typing's ABC checks cost more than the JSON parsing.)"""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        kind = type(value)
        if kind in _SCALARS:
            out[name] = value
        elif kind is dict or (kind is not list and isinstance(value, Mapping)):
            if value:
                out.update(flatten(value, name + "."))
            else:
                out[name] = "{}"
        elif kind is list or kind is tuple:
            out[name] = json.dumps(value, separators=(", ", ": "), default=str)
        else:
            out[name] = value
    return out


def last_values(metrics: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """Last value and number of points of every metric (sacred's {name: {steps, values, ...}})."""
    last: dict[str, Any] = {}
    length: dict[str, int] = {}
    for name, series in metrics.items():
        values = series.get("values") if type(series) is dict else None
        if values:
            last[name] = values[-1]
            length[name] = len(values)
    return last, length


def summarise(
    location: str,
    run: Mapping[str, Any],
    config: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
    last: Mapping[str, Any] | None = None,
) -> dict:
    """The part of a run that load_runs needs (what the cache stores): run fields, the four ids,
    the flattened config, start/end as epoch seconds and the last value of every metric (given
    as ``last``, or taken from the full ``metrics``)."""
    if last is None:
        last, _ = last_values(metrics or {})
    host = run.get("host") or {}
    start = run.get("start_time") or run.get("queue_time")
    return {
        "location": location,
        "status": records.observed_status(dict(run)),
        "start_time": start,
        "stop_time": run.get("stop_time"),
        "t0": _iso_to_seconds(start),
        "t1": _iso_to_seconds(run.get("stop_time") or run.get("heartbeat")),
        "host": host.get("hostname") if type(host) is dict else str(host),
        "model": (run.get("experiment") or {}).get("mainfile"),
        "ids": {k: config.get(k) for k in ID_KEYS},
        "flat": flatten({k: v for k, v in config.items() if k not in ID_KEYS}),
        "metrics": last,
    }


def summarise_record(record: records.RunRecord) -> dict:
    return summarise(record.location, record.run, record.config, record.metrics)


def summarise_folder(run_dir: str, on_problem: records.OnProblem = records.raise_problem) -> dict:
    """``summarise`` of a run folder (the cold path). Unreadable run.json or config.json:
    ``CorruptRecord``; unreadable metrics go to ``on_problem`` and the run has none."""
    run = records.read_object(os.path.join(run_dir, records.RUN_FILE))
    config = records.read_object(os.path.join(run_dir, records.CONFIG_FILE), default={})
    last = run.get("last_metrics")
    if type(last) is dict and run.get("status") in FINISHED_STATUSES:
        # written by sem's file observer when the run ended: metrics.json need not be parsed, and
        # every record file of the run was replaced whole, never edited in place
        summary = summarise(run_dir, run, config, last=last)
        summary["written_whole"] = True
        return summary
    try:
        metrics = records.read_metrics(run_dir, on_problem)
    except records.CorruptRecord as exc:
        on_problem(exc.problem)
        metrics = {}
    summary = summarise(run_dir, run, config, metrics)
    summary["written_whole"] = False
    return summary


# -- summaries column by column ------------------------------------------------------------------

# The fields of a run summary that become run columns (``path`` is the run's location).
SUMMARY_FIELDS = RUN_COLUMNS[:-1]
Shape = tuple[tuple[str, ...], tuple[str, ...]]


def summary_fields(summary: Mapping[str, Any]) -> tuple:
    """The ``SUMMARY_FIELDS`` values of one summary (global_id: its folder's name when the config
    has none; duration: None when a time is missing)."""
    ids = summary["ids"]
    t0, t1 = summary["t0"], summary["t1"]
    return (
        str(ids.get("global_id") or os.path.basename(summary["location"].rstrip("/"))),
        ids.get("experiment_id"),
        ids.get("config_id"),
        ids.get("order_id"),
        summary["model"],
        summary["status"],
        summary["start_time"],
        summary["stop_time"],
        t1 - t0 if t0 is not None and t1 is not None else None,
        summary["host"],
    )


@dataclass
class SummaryColumns:
    """Run summaries column by column, in run order: what the summary cache holds and the runs
    DataFrame is built from (a list per column is built, stored and loaded far faster than a
    dict per run). A config key or metric a run lacks is None in its column; ``shapes`` tells it
    apart from a None value (it decides which columns exist and their order)."""

    locations: list[str]
    fields: dict[str, list]  # SUMMARY_FIELDS -> one value per run
    config: dict[str, list]  # flattened config key -> one value per run
    metrics: dict[str, list]  # metric name -> last value per run
    shapes: list[Shape]  # the distinct (config keys, metric names) of the runs, in first-seen order
    shape_of: list[int]  # per run: its index in ``shapes``

    def __len__(self) -> int:
        return len(self.shape_of)

    @classmethod
    def empty(cls) -> SummaryColumns:
        return cls([], {f: [] for f in SUMMARY_FIELDS}, {}, {}, [], [])

    @classmethod
    def from_summaries(cls, summaries: Sequence[dict]) -> SummaryColumns:
        return cls.empty().merged(range(len(summaries)), summaries, [s["location"] for s in summaries])

    @classmethod
    def concatenated(cls, parts: Sequence[SummaryColumns]) -> SummaryColumns:
        """The runs of ``parts``, one after the other."""
        shapes = [shape for part in parts for shape in part.shapes]
        shape_of: list[int] = []
        offset = 0
        for part in parts:
            shape_of += [offset + i for i in part.shape_of]
            offset += len(part.shapes)
        config_keys, metric_names = _column_names(shapes)

        def joined(column: Any) -> list:
            return [v for part in parts for v in (column(part) or [None] * len(part))]

        return cls(
            joined(lambda part: part.locations),
            {f: joined(lambda part, f=f: part.fields[f]) for f in SUMMARY_FIELDS},
            {k: joined(lambda part, k=k: part.config.get(k)) for k in config_keys},
            {m: joined(lambda part, m=m: part.metrics.get(m)) for m in metric_names},
            shapes,
            shape_of,
        )

    def merged(self, take: Sequence[int], fresh: Sequence[dict], locations: list[str]) -> SummaryColumns:
        """The runs ``take`` names, in its order: index ``i < len(self)`` is this table's run ``i``,
        ``len(self) + k`` is the summary ``fresh[k]``. Columns no run has any more are dropped."""
        n = len(self)
        shapes = list(self.shapes)
        shape_ids = {shape: i for i, shape in enumerate(shapes)}
        fresh_shapes = []
        for s in fresh:
            shape = (tuple(s["flat"]), tuple(s["metrics"]))
            if shape not in shape_ids:
                shape_ids[shape] = len(shapes)
                shapes.append(shape)
            fresh_shapes.append(shape_ids[shape])

        def column(old: list | None, new: list) -> list:
            extended = (old if old is not None else [None] * n) + new
            return list(map(extended.__getitem__, take))

        shape_of = column(self.shape_of, fresh_shapes)
        used = list(dict.fromkeys(shape_of))  # first-seen order: the order of the columns
        if used != list(range(len(shapes))):
            number = {old: i for i, old in enumerate(used)}
            shapes = [shapes[i] for i in used]
            shape_of = [number[i] for i in shape_of]
        rows = [summary_fields(s) for s in fresh]
        fields = {f: column(self.fields[f], [r[j] for r in rows]) for j, f in enumerate(SUMMARY_FIELDS)}
        config_keys, metric_names = _column_names(shapes)
        config = {k: column(self.config.get(k), [s["flat"].get(k) for s in fresh]) for k in config_keys}
        metrics = {m: column(self.metrics.get(m), [s["metrics"].get(m) for s in fresh]) for m in metric_names}
        return SummaryColumns(locations, fields, config, metrics, shapes, shape_of)


def _column_names(shapes: Sequence[Shape]) -> tuple[list[str], list[str]]:
    """The config keys and metric names of runs of these shapes, in an order that does not depend
    on which run comes first (runs started in the same second by several model files are in no set
    order): each shape's config keys in their own order, the shapes taken in sorted order; metric
    names by name (as sacred's metrics.json has them)."""
    ordered = sorted(set(shapes))
    config_keys = list(dict.fromkeys(k for shape in ordered for k in shape[0]))
    return config_keys, sorted({m for shape in shapes for m in shape[1]})


# -- the summary cache --------------------------------------------------------------------------


def cache_dir() -> Path:
    explicit = os.environ.get("SEM_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sem"


def cache_path(store: Path) -> Path:
    key = hashlib.sha256(str(Path(store).resolve()).encode("utf-8")).hexdigest()[:20]
    return cache_dir() / f"runs-{key}.marshal"


# The cache is marshal data (parsed 2x faster than JSON and written 10x faster: it is read at
# every load of a store and rewritten after every sweep) behind a header that names the format,
# the Python that wrote it (marshal's format is Python's own) and the payload's CRC-32, checked
# before unmarshalling: a cache damaged on disk is rebuilt, never unmarshalled.
def _cache_header(payload: bytes) -> bytes:
    return b"sem-runs-cache %d py%d.%d crc%08x\n" % (CACHE_VERSION, *sys.version_info[:2], zlib.crc32(payload))


@dataclass
class CachedStore:
    """What the summary cache holds for a store: per run folder (by name) the stamp it had when
    it was read, and the summaries as columns."""

    names: list[str]
    stamps: list[tuple | None]  # None: not to be trusted (the run had a problem): read again
    columns: SummaryColumns


def _stamp(dir_stat: os.stat_result, run_stat: os.stat_result | None) -> tuple:
    """Identity of a run folder's state. Replacing or adding any file of the folder (sem's file
    observer writes each record file to a temporary file and renames it over the old one)
    changes the folder's mtime: one stat per run. Records written in place (sacred's own
    observer) also carry run.json's own identity (``run_stat``), which such writers rewrite last."""
    if run_stat is None:
        return (dir_stat.st_ino, dir_stat.st_mtime_ns)
    return (dir_stat.st_ino, dir_stat.st_mtime_ns, run_stat.st_ino, run_stat.st_mtime_ns, run_stat.st_size)


def _read_cache(path: Path, store: Path) -> CachedStore | None:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        header, _, payload = raw.partition(b"\n")
        if header + b"\n" != _cache_header(payload):
            return None  # another format, another Python, or damaged: rebuilt from the records
        data = marshal.loads(payload)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError, TypeError):
        return None  # a corrupt cache is rebuilt from the records, which are the truth
    if not isinstance(data, dict) or data.get("store") != str(Path(store).resolve()):
        return None
    columns = SummaryColumns([], data["fields"], data["config"], data["metrics"], data["shapes"], data["shape_of"])
    return CachedStore(data["names"], data["stamps"], columns)


def _write_cache(path: Path, store: Path, cached: CachedStore) -> None:
    c = cached.columns
    try:
        # summaries hold what JSON records parse to (str, numbers, bool, None, lists, dicts)
        payload = marshal.dumps(
            {
                "store": str(Path(store).resolve()),
                "names": cached.names,
                "stamps": cached.stamps,
                "fields": c.fields,
                "config": c.config,
                "metrics": c.metrics,
                "shapes": c.shapes,
                "shape_of": c.shape_of,
            }
        )
    except ValueError as exc:
        say_once(f"sem results: the summary cache {path} is not written ({exc}); every load will read every run.")
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        records.atomic_write_bytes(path, _cache_header(payload) + payload)
    except OSError as exc:
        # The cache only saves time: an unwritable cache folder must not stop anyone reading
        # results, but say once why every load reads every run.
        say_once(
            f"sem results: cannot write the summary cache {path} ({exc}); every load will read "
            "every run. Set SEM_CACHE_DIR to a writable folder."
        )


def read_store_columns(
    store: Path, use_cache: bool = True, on_problem: records.OnProblem = records.warn_problem
) -> SummaryColumns:
    """Summaries of every readable run folder of a store (unreadable ones go to ``on_problem``).
    With the cache, a finished run whose stamp (``_stamp``) is unchanged is not read again;
    live runs (QUEUED/RUNNING) are always re-read, and so are runs with a problem (it is
    reported at every load, until the record is repaired)."""
    store = Path(store)
    cpath = cache_path(store)
    cached = (_read_cache(cpath, store) if use_cache else None) or CachedStore([], [], SummaryColumns.empty())
    old = cached.columns
    index = dict(zip(cached.names, range(len(cached.names))))
    statuses = old.fields["status"]
    finished = frozenset(FINISHED_STATUSES)
    names: list[str] = []
    stamps: list[tuple | None] = []
    take: list[int] = []
    fresh: list[dict] = []
    problems: list[records.Problem] = []

    def noted(problem: records.Problem) -> None:
        problems.append(problem)
        on_problem(problem)

    for entry in records.run_dir_entries(store):
        name = entry.name
        i = index.get(name)
        try:
            known = cached.stamps[i] if i is not None else None
            if i is not None and known is not None and statuses[i] in finished:
                in_place = len(known) > 2
                stamp = _stamp(entry.stat(), os.stat(os.path.join(entry.path, records.RUN_FILE)) if in_place else None)
                if stamp == known:
                    names.append(name)
                    stamps.append(stamp)
                    take.append(i)
                    continue
            # stamped before reading: a write during the read leaves the stamp stale, not the summary
            dir_stat = entry.stat()
            run_stat = os.stat(os.path.join(entry.path, records.RUN_FILE))
            seen = len(problems)
            summary = summarise_folder(entry.path, noted)
        except FileNotFoundError:
            continue  # no run.json (a job killed before it wrote one), or the folder went away
        except records.CorruptRecord as exc:
            noted(exc.problem)
            continue
        names.append(name)
        damaged = len(problems) > seen  # its metrics: the run counts, and is read (and reported) again
        stamps.append(None if damaged else _stamp(dir_stat, None if summary["written_whole"] else run_stat))
        take.append(len(old) + len(fresh))
        fresh.append(summary)
    prefix = os.path.join(str(store), "")
    locations = [prefix + name for name in names]
    if not fresh and take == list(range(len(old))):
        old.locations = locations
        return old
    columns = old.merged(take, fresh, locations)
    if use_cache:
        _write_cache(cpath, store, CachedStore(names, stamps, columns))
    return columns


def read_mongo_summaries(url: str) -> list[dict]:
    """Summaries of every run of a MongoDB database (no cache: the database is the index).

    The last value of every metric comes from one query over the ``metrics`` collection
    (``$slice: -1``; a metric thinned out at the 16 MB limit keeps its last point), not one query
    per run."""
    import pymongo.errors

    settings = connection.settings_from_url(url, "MongoDB URL")
    try:
        if connection.REDACTED in url:  # the reader knows how to find the password again
            return [summarise_record(r) for r in reader.iter_runs(url)]
        db = connection.connect(settings)
        last: dict[Any, dict] = {}
        for doc in db.metrics.find({}, {"run_id": 1, "name": 1, "values": {"$slice": -1}}):
            if doc.get("values"):
                last.setdefault(doc.get("run_id"), {})[doc.get("name")] = {"values": doc["values"]}
        return [summarise(r.location, r.run, r.config, last.get(r.mongo_id, {})) for r in reader.iter_runs(url)]
    except pymongo.errors.PyMongoError as exc:
        raise SemError(
            f"cannot read the runs in MongoDB {settings.display}: {connection.describe_error(exc, settings)}"
        ) from None


# -- the DataFrame ------------------------------------------------------------------------------


@dataclass
class RunColumns:
    """Which columns of a runs DataFrame are config keys and which are metrics (by metric name)."""

    config: list[str]
    metrics: dict[str, str]  # metric name -> column


def _iso_to_seconds(text: str | None) -> float | None:
    t = records.parse_time(text)
    return None if t is None else t.timestamp()


def _numbers(values: list) -> Any:
    """A metric column as numbers: anything that is not one (text, lists) becomes NaN."""
    import numpy as np
    import pandas as pd

    if set(map(type, values)) <= {float, type(None)}:
        return np.array(values, dtype=float)  # the usual case, without pandas' per-value parsing
    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")


def columns_to_frame(columns: SummaryColumns) -> pd.DataFrame:
    """One DataFrame row per run; ``df.attrs['sem']`` names the config and metric columns."""
    import numpy as np
    import pandas as pd

    taken = set(RUN_COLUMNS)
    config_cols = {}
    for key in columns.config:
        col = key if key not in taken else f"config.{key}"
        config_cols[key] = col
        taken.add(col)
    metric_cols = {}
    for name in columns.metrics:
        col = name if name not in taken else f"metric.{name}"
        metric_cols[name] = col
        taken.add(col)

    fields = columns.fields
    data: dict[str, Any] = {f: fields[f] for f in SUMMARY_FIELDS}
    data["order_id"] = pd.array(fields["order_id"], dtype="Int64")
    data["duration"] = np.array(fields["duration"], dtype=float)
    for col in ("start_time", "stop_time"):
        data[col] = pd.to_datetime(fields[col], utc=True, format="ISO8601", errors="coerce")
    data["path"] = columns.locations
    for key, col in config_cols.items():
        data[col] = columns.config[key]
    for name, col in metric_cols.items():
        data[col] = _numbers(columns.metrics[name])
    frame = pd.DataFrame(data)
    frame.attrs["sem"] = {"config": list(config_cols.values()), "metrics": metric_cols}
    return frame


def summaries_to_frame(summaries: Sequence[dict]) -> pd.DataFrame:
    """``columns_to_frame`` of a list of summaries (``summarise``)."""
    return columns_to_frame(SummaryColumns.from_summaries(summaries))


def by_recency(frame: pd.DataFrame) -> pd.DataFrame:
    """The runs of a DataFrame oldest first, newest last, by ``records.recency`` (the one rule
    for which run of a row is the newest)."""
    if frame.empty:
        return frame
    import numpy as np
    import pandas as pd

    start = frame["start_time"]
    if not pd.api.types.is_datetime64_any_dtype(start):
        keys = [records.recency(t, g) for t, g in zip(start, frame["global_id"])]
        return frame.iloc[sorted(range(len(keys)), key=keys.__getitem__)]
    # the same rule on whole columns (a stable sort, as sorted() is): known time first, then
    # the time (as UTC), then global_id as text
    known = start.notna().to_numpy()
    times = np.where(known, start.to_numpy(dtype="datetime64[us]").view("int64"), 0)
    gids = np.array([str(g) for g in frame["global_id"].to_numpy(dtype=object)], dtype=object)
    return frame.iloc[np.lexsort((gids, times, known))]


def run_columns(frame: pd.DataFrame) -> RunColumns:
    """The config and metric columns of a runs DataFrame (from ``attrs``, else inferred: numeric
    columns that aren't run columns count as metrics)."""
    meta = frame.attrs.get("sem")
    if meta:
        config = [c for c in meta["config"] if c in frame.columns]
        metrics = {n: c for n, c in meta["metrics"].items() if c in frame.columns}
        return RunColumns(config, metrics)
    import pandas as pd

    others = [c for c in frame.columns if c not in RUN_COLUMNS]
    metrics = {c: c for c in others if pd.api.types.is_float_dtype(frame[c])}
    return RunColumns([c for c in others if c not in metrics], metrics)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small objects (the summaries hold
    no cycles): its passes over the growing heap cost as much as the parsing itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_runs(
    source: SourceLike | None = None, *, use_cache: bool = True, on_problem: records.OnProblem = records.warn_problem
) -> pd.DataFrame:
    """Every run of ``source`` as a DataFrame (see the module docstring for sources and caching).

    Columns: ``global_id, experiment_id, config_id, order_id, model, status, start_time, stop_time,
    duration`` (seconds; up to the last heartbeat for live runs), ``host, path``, then every config
    key (nested keys as ``a.b``; a key that clashes with a run column is ``config.<key>``), then the
    last value of every metric (``metric.<name>`` on a clash). Raises ``NoRunsFound`` naming the
    places searched when there are no runs. A record that cannot be read is left out and goes
    to ``on_problem`` (default: a ``RecordWarning``; ``records.raise_problem`` makes it an error).
    """
    stores = resolve_stores(source)
    parts: list[SummaryColumns] = []
    with _gc_paused():
        for store in stores:
            if isinstance(store, str):
                parts.append(SummaryColumns.from_summaries(read_mongo_summaries(store)))
            else:
                parts.append(read_store_columns(store, use_cache=use_cache, on_problem=on_problem))
        columns = parts[0] if len(parts) == 1 else SummaryColumns.concatenated(parts)
        if not len(columns):
            raise NoRunsFound(f"no runs found in {describe_sources(stores)}")
        frame = columns_to_frame(columns)
    frame.attrs["sem"]["sources"] = [str(s) if not isinstance(s, str) else redact_uri(s) for s in stores]
    return frame


def is_mongo_location(location: str) -> bool:
    return location.startswith(("mongodb://", "mongodb+srv://"))


def record_at(location: str, on_problem: records.OnProblem = records.warn_problem) -> records.RunRecord:
    """The full record of one run, by the ``path`` column of a runs DataFrame (a folder, or
    ``<mongodb URL>#runs/<_id>``). Its metrics, if unreadable, go to ``on_problem``."""
    if is_mongo_location(location):
        record = reader.read_run(location)
        if record is None:
            raise SemError(f"{location}: no such run in the database (deleted since it was listed?)")
        return record
    return records.read_run(Path(location), on_problem)


def available(names: Iterable[str]) -> str:
    names = sorted(set(names))
    return ", ".join(names) if names else "(none)"
