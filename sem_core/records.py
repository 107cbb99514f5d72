"""Run records on disk: sacred's FileStorageObserver layout, read and written atomically.

Layout of a run store (default ``<experiment>/models/runs/``)::

    runs/
      _sources/<stem>_<md5>.py      model file and sibling sources, content-addressed, stored once
      _resources/<stem>_<md5>.<ext> ex.add_resource files, content-addressed, stored once
      <global_id>/                  one folder per run; the name is the run's global_id
        run.json                    sacred run entry: status, times, host, command, result, fail_trace, meta
        config.json                 the row plus experiment_id, config_id, order_id, global_id
        metrics.json                sacred's {name: {steps, values, timestamps}}, written when the run ends
        metrics.jsonl               append-only journal of metric points flushed while the run is alive
        info.json                   ex.info
        cout.txt                    stdout and stderr of the job
        <artifact files>            ex.add_artifact copies

Statuses: ``sem_core.run_status.RunStatus``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

from sem_core.errors import SemError
from sem_core.host import process_alive
from sem_core.run_status import RunStatus

RUN_FILE = "run.json"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
METRICS_JOURNAL = "metrics.jsonl"
INFO_FILE = "info.json"
COUT_FILE = "cout.txt"
SOURCES_DIR = "_sources"
RESOURCES_DIR = "_resources"

T = TypeVar("T")
R = TypeVar("R")


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write_text(path: Path, text: str | Iterable[str]) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never half.
    ``text`` may come in pieces, written as they come: a large file need not be whole in
    memory first."""
    if isinstance(text, str):
        atomic_write_bytes(path, text.encode("utf-8"))
    else:
        _atomic_write(path, (part.encode("utf-8") for part in text))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never half."""
    _atomic_write(path, (data,))


def _atomic_write(path: Path, parts: Iterable[bytes]) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates 0600; records are shared with the team like any file the user writes
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            fh.writelines(parts)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def append_whole(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` whole or not at all: a write cut short (disk full) is
    undone, so the caller can append the same data again later and readers never meet half
    a line followed by the next one."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def atomic_write_json(path: Path, data: Any, indent: int | None = 2) -> None:
    """Atomic JSON write; ``indent=None`` for large data (json's C encoder is used only then)."""
    atomic_write_text(path, encode_json(data, indent))


def encode_json(data: Any, indent: int | None = 2) -> str:
    """The text of every record file: keys sorted, numpy values and datetimes as JSON values."""
    return json.dumps(data, indent=indent, sort_keys=True, default=_json_default)


def write_new_folder(folder: str | os.PathLike, files: Mapping[str, bytes]) -> None:
    """Create ``folder`` holding ``files`` ({name: content}) so that readers see it whole or not
    at all: the files are written into a hidden sibling folder (``.new-<name>``, skipped by every
    reader of a store) that is then renamed into place. Each file is created once, no temporary
    file per file: a third of the system calls of ``atomic_write_bytes`` per file, for the many
    records a cluster submission writes. ``FileExistsError`` if ``folder`` exists; a crash leaves
    at most the hidden folder."""
    parent, name = os.path.split(os.fspath(folder))
    if os.path.lexists(folder):  # rename() would replace an empty folder
        raise FileExistsError(f"{folder} exists")
    staging = os.path.join(parent, f".new-{name}")
    os.mkdir(staging)
    try:
        for file_name, data in files.items():
            fd = os.open(os.path.join(staging, file_name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        os.rename(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return obj.tolist()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return repr(obj)


def parse_time(text: str | None) -> dt.datetime | None:
    """A record's ISO time as an aware datetime (naive times are UTC, as sacred writes them);
    None for a missing or unreadable value."""
    if not text:
        return None
    try:
        t = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def run_duration(run: dict, live: bool = False) -> float | None:
    """Seconds from a record's start to its stop (``live``: to its last heartbeat while it has
    no stop time); None when a time is missing or unreadable."""
    start = parse_time(run.get("start_time"))
    stop = parse_time(run.get("stop_time") or (run.get("heartbeat") if live else None))
    return None if start is None or stop is None else (stop - start).total_seconds()


def format_duration(seconds: float | None) -> str:
    """A duration as every sem command shows it: ``0.013s``, ``4.21s``, ``12.3s``, ``3m05s``,
    ``2h07m``; ``-`` when unknown."""
    if seconds is None or seconds != seconds:  # None or NaN
        return "-"
    seconds = float(seconds)
    if seconds < 1:
        return f"{seconds:.3f}s"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``1 run``, ``2 runs`` (``nouns``: the plural when it is not noun + s)."""
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"


def observed_status(run: dict) -> str:
    """The status to show for a record: a RUNNING run whose process is gone on this host is
    KILLED (its process could not record its end). The record itself is left as it is: the
    store may be read-only; ``sem status`` writes the verdict."""
    status = run.get("status", "UNKNOWN")
    if status == RunStatus.RUNNING:
        process = ((run.get("meta") or {}).get("sem") or {}).get("process")
        if process_alive(process) is False:
            return RunStatus.KILLED
    return status


@dataclass(frozen=True)
class Problem:
    """A record file that could not be read: its path and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


OnProblem = Callable[[Problem], None]


class CorruptRecord(SemError, ValueError):
    """A record file that cannot be read: not valid JSON, not a file, or not of the shape sacred
    writes. A ValueError too, so callers that catch ValueError for bad JSON still do."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.problem = Problem(str(path), reason)
        super().__init__(str(self.problem))


def raise_problem(problem: Problem) -> None:
    """``on_problem`` of strict readers: an unreadable record is an error."""
    raise CorruptRecord(problem.path, problem.reason)


class RecordWarning(UserWarning):
    """A record (or part of one) was skipped because it could not be read."""


def warn_problem(problem: Problem) -> None:
    """``on_problem`` of the Python API: skip and say so with a warning."""
    warnings.warn(f"unreadable record {problem}", RecordWarning, stacklevel=3)


class ProblemLog:
    """``on_problem`` of the commands: one warning line on stderr per damaged run folder (the
    first problem found in it), kept in ``problems`` for the exit code."""

    def __init__(self, command: str = "sem", stream: TextIO | None = None):
        self.command = command
        self.stream = stream
        self.problems: dict[str, Problem] = {}  # run folder -> its first problem

    def __call__(self, problem: Problem) -> None:
        folder = os.path.dirname(problem.path)
        if folder in self.problems:
            return
        self.problems[folder] = problem
        print(f"{self.command}: warning: unreadable record {problem}", file=self.stream or sys.stderr, flush=True)

    def __bool__(self) -> bool:
        return bool(self.problems)


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file; ``CorruptRecord`` when it is not valid JSON or not a readable file
    (FileNotFoundError passes through: a missing file is the caller's case)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise
    except OSError as exc:  # a directory in place of the file, no permission
        raise CorruptRecord(path, f"cannot be read ({exc.strerror or exc})") from None
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise CorruptRecord(path, f"not valid JSON ({exc})") from None


_NO_DEFAULT: Any = object()


def read_object(path: str | os.PathLike, default: Any = _NO_DEFAULT) -> dict:
    """A record file that must hold a JSON object (run.json, config.json, info.json);
    ``default`` when the file does not exist (if given)."""
    try:
        data = read_json(path)
    except FileNotFoundError:
        if default is _NO_DEFAULT:
            raise
        return default
    if type(data) is not dict:
        raise CorruptRecord(path, f"holds a JSON {_json_kind(data)}, not an object")
    return data


def _json_kind(data: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(data), "number")


SERIES_KEYS = ("steps", "values", "timestamps")
# in the order json.dumps(sort_keys=True) writes them
SERIES_KEYS_SORTED = tuple(sorted(SERIES_KEYS))


def check_metrics(data: Any, path: str | os.PathLike) -> dict:
    """``data`` if it has sacred's metrics shape, {name: {steps, values, timestamps}} with three
    lists of equal length; else ``CorruptRecord``."""
    if type(data) is not dict:
        raise CorruptRecord(path, f"holds a JSON {_json_kind(data)}, not {{name: {{steps, values, timestamps}}}}")
    for name, series in data.items():
        if type(series) is not dict or any(type(series.get(k)) is not list for k in SERIES_KEYS):
            raise CorruptRecord(path, f"metric {name!r} is not {{steps, values, timestamps}} lists")
        if not len(series["steps"]) == len(series["values"]) == len(series["timestamps"]):
            raise CorruptRecord(path, f"metric {name!r} has steps, values and timestamps of different lengths")
    return data


# the characters a JSON string holds as they are (json escapes '"', '\\', controls and non-ASCII)
_PLAIN_JSON_CHARS = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')
# what Python writes for a list of ints and finite floats alone (json: NaN, Infinity, true, null ...)
_JSON_NUMBER_CHARS = b"0123456789+-.e, []"


def encode_column(column: list) -> str:
    """The items of ``json.dumps(column, default=_json_default)``, without the brackets.

    A column of plain ASCII strings (metric timestamps) is joined in one step: json's encoder
    builds an escaped copy of each string first, which costs most of the time of writing the
    metrics of a run that logged many points."""
    try:
        body = '", "'.join(column)
    except TypeError:  # not all strings: numbers (steps, values)
        text = str(column)  # half the time of json's encoder for ints; the same text for ints and finite floats
        if text.isascii() and not text.encode("ascii").translate(None, _JSON_NUMBER_CHARS):
            return text[1:-1]
        return json.dumps(column, default=_json_default)[1:-1]
    if body.isascii():
        rest = body.encode("ascii").translate(None, _PLAIN_JSON_CHARS)
        if len(rest) == 2 * (len(column) - 1) and rest.count(b'"') == len(rest):  # only the separators' quotes
            return f'"{body}"'
    return json.dumps(column)[1:-1]


def encode_metrics(columns: Mapping[str, Mapping[str, str]]) -> str:
    """sacred's metrics JSON from each series' encoded columns (``{name: {key: encode_column(...)}}``),
    the same text as ``json.dumps(metrics, sort_keys=True, default=_json_default)``."""
    return (
        "{"
        + ", ".join(
            f"{json.dumps(str(name))}: {{"
            + ", ".join(f'"{key}": [{columns[name].get(key, "")}]' for key in SERIES_KEYS_SORTED)
            + "}"
            for name in sorted(columns)
        )
        + "}"
    )


def merge_series(into: dict, batch: Mapping[str, Mapping[str, list]]) -> int:
    """Append each series of ``batch`` to the series of the same name in ``into`` (both in
    sacred's ``{name: {steps, values, timestamps}}`` form); return the number of points added."""
    points = 0
    for name, series in batch.items():
        target = into.setdefault(name, {key: [] for key in SERIES_KEYS})
        for key in SERIES_KEYS:
            target[key].extend(series[key])
        points += len(series["steps"])
    return points


def read_metrics(run_dir: str | os.PathLike, on_problem: OnProblem = warn_problem) -> dict:
    """sacred-format metrics of a run: metrics.json, else the journal of a run still alive
    (or killed before it could write metrics.json). An unreadable metrics.json raises
    ``CorruptRecord``; a bad journal line is skipped (reported to ``on_problem``) and costs only
    the points it held."""
    run_dir = Path(run_dir)
    final = run_dir / METRICS_FILE
    try:
        return check_metrics(read_json(final), final)
    except FileNotFoundError:
        pass
    metrics: dict = {}
    journal = run_dir / METRICS_JOURNAL
    try:
        fh = open(journal, "rb")  # noqa: SIM115 - closed by the with below; opened here to tell "no journal" apart
    except FileNotFoundError:
        return metrics
    except OSError as exc:
        raise CorruptRecord(journal, f"cannot be read ({exc.strerror or exc})") from None
    bad: list[int] = []
    with fh:
        for number, line in enumerate(fh, 1):
            if not line.endswith(b"\n"):
                break  # a line cut short by a hard kill: everything before it is intact
            try:
                chunk = check_metrics(json.loads(line.decode("utf-8")), journal)
            except ValueError:  # JSONDecodeError, UnicodeDecodeError, CorruptRecord
                bad.append(number)
                continue
            merge_series(metrics, chunk)
    if bad:
        lines = ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else "")
        on_problem(Problem(str(journal), f"line(s) {lines} not valid metric points, skipped"))
    return metrics


@dataclass
class RunRecord:
    """One run, as read from a file store (``sem_core.mongo.reader.MongoRunRecord``: from MongoDB)."""

    location: str  # folder path of the run, or a mongodb URI naming it
    run: dict  # run.json
    config: dict  # config.json: the row plus the four ids
    _metrics: dict | None = field(default=None, repr=False)
    # where an unreadable metrics file is reported (the run is then shown without metrics)
    on_problem: OnProblem = field(default=raise_problem, repr=False, compare=False)

    @property
    def global_id(self) -> str:
        return str(self.config.get("global_id") or Path(self.location).name)

    @property
    def experiment_id(self) -> str | None:
        return self.config.get("experiment_id")

    @property
    def config_id(self) -> str | None:
        return self.config.get("config_id")

    @property
    def order_id(self) -> int | None:
        return self.config.get("order_id")

    @property
    def status(self) -> str:
        return self.run.get("status", "UNKNOWN")

    @property
    def observed_status(self) -> str:
        """``status``, or KILLED for a RUNNING run whose process is gone (``observed_status``)."""
        return observed_status(self.run)

    @property
    def model(self) -> str | None:
        """The model file's name, e.g. ``m_linear.py``."""
        return (self.run.get("experiment") or {}).get("mainfile")

    @property
    def start_time(self) -> str | None:
        """When the run started (when it was queued, for a run not started yet)."""
        return self.run.get("start_time") or self.run.get("queue_time")

    @property
    def metrics(self) -> dict:
        if self._metrics is None:
            try:
                self._metrics = read_metrics(Path(self.location), self.on_problem)
            except CorruptRecord as exc:
                self.on_problem(exc.problem)
                self._metrics = {}
        return self._metrics


def recency(start_time: Any, global_id: Any) -> tuple:
    """Sort key that decides which of a row's runs is the newest, for every command: the later
    start time, then the greater global_id (two runs started in the same second). A run without
    a readable start time is older than any run with one. ``start_time``: ISO text or datetime."""
    t: dt.datetime | None
    if isinstance(start_time, dt.datetime):
        t = start_time if start_time.tzinfo else start_time.replace(tzinfo=dt.timezone.utc)
    else:
        t = parse_time(start_time) if isinstance(start_time, str) else None
    if t is None or t != t:  # missing, unreadable, or pandas' NaT
        return (0, 0.0, str(global_id))
    return (1, t.timestamp(), str(global_id))


def read_run(run_dir: str | os.PathLike, on_problem: OnProblem = raise_problem) -> RunRecord:
    """One run folder; ``CorruptRecord`` when run.json or config.json is unreadable.
    ``on_problem`` receives a later problem with its metrics (see ``RunRecord.metrics``)."""
    run_dir = Path(run_dir)
    return RunRecord(
        location=str(run_dir),
        run=read_object(run_dir / RUN_FILE),
        config=read_object(run_dir / CONFIG_FILE, default={}),
        on_problem=on_problem,
    )


def load_each(items: Iterable[T], read: Callable[[T], R], on_problem: OnProblem) -> Iterator[R]:
    """The tolerant loader every reader of a store uses: ``read(item)`` for each item; an
    unreadable record goes to ``on_problem`` (which may raise, for strict callers) and the
    others are still read. A folder that vanished while the store was read (binned, moved) is
    skipped without a word: it is not damage."""
    for item in items:
        try:
            yield read(item)
        except FileNotFoundError:
            continue
        except CorruptRecord as exc:
            on_problem(exc.problem)


def iter_run_dirs(store: Path) -> Iterator[Path]:
    """Every run folder of a store (folders holding a run.json), in name order = start order."""
    for entry in run_dir_entries(store):
        candidate = Path(entry.path)
        if (candidate / RUN_FILE).exists():
            yield candidate


def iter_runs(store: Path, on_problem: OnProblem = raise_problem) -> Iterator[RunRecord]:
    """Every readable run of a store (``load_each``: unreadable ones go to ``on_problem``)."""
    return load_each(iter_run_dirs(store), lambda d: read_run(d, on_problem), on_problem)


def run_dir_entries(store: Path) -> list[os.DirEntry[str]]:
    """The folders of a store that may be runs, in name order = start order, as ``os.DirEntry``
    (a stat costs one call, on demand), not yet checked for a run.json: the fast path for
    scanning thousands of runs (sem results), which learns that from its read."""
    try:
        with os.scandir(store) as entries:
            found = [e for e in entries if not e.name.startswith(("_", ".")) and e.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    found.sort(key=lambda e: e.name)
    return found
