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

Statuses: QUEUED, RUNNING, COMPLETED, FAILED, INTERRUPTED, TIMEOUT, KILLED, CANCELLED.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

from sem_core.errors import SemError
from sem_core.host import process_alive

RUN_FILE = "run.json"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
METRICS_JOURNAL = "metrics.jsonl"
INFO_FILE = "info.json"
COUT_FILE = "cout.txt"
SOURCES_DIR = "_sources"
RESOURCES_DIR = "_resources"

FINISHED_STATUSES = ("COMPLETED", "FAILED", "INTERRUPTED", "TIMEOUT", "KILLED", "CANCELLED")
ACTIVE_STATUSES = ("QUEUED", "RUNNING")
FAILED_STATUSES = tuple(s for s in FINISHED_STATUSES if s != "COMPLETED")  # ended, not completed


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates 0600; records are shared with the team like any file the user writes
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
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
                view = view[os.write(fd, view):]
        except BaseException:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def atomic_write_json(path: Path, data: Any, indent: Optional[int] = 2) -> None:
    """Atomic JSON write; ``indent=None`` for large data (json's C encoder is used only then)."""
    atomic_write_text(path, json.dumps(data, indent=indent, sort_keys=True, default=_json_default))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return obj.tolist()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return repr(obj)


def parse_time(text: Optional[str]) -> Optional[dt.datetime]:
    """A record's ISO time as an aware datetime (naive times are UTC, as sacred writes them);
    None for a missing or unreadable value."""
    if not text:
        return None
    try:
        t = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def run_duration(run: dict, live: bool = False) -> Optional[float]:
    """Seconds from a record's start to its stop (``live``: to its last heartbeat while it has
    no stop time); None when a time is missing or unreadable."""
    start = parse_time(run.get("start_time"))
    stop = parse_time(run.get("stop_time") or (run.get("heartbeat") if live else None))
    return None if start is None or stop is None else (stop - start).total_seconds()


def observed_status(run: dict) -> str:
    """The status to show for a record: a RUNNING run whose process is gone on this host is
    KILLED (its process could not record its end). The record itself is left as it is: the
    store may be read-only; ``sem status`` writes the verdict."""
    status = run.get("status", "UNKNOWN")
    if status == "RUNNING":
        process = ((run.get("meta") or {}).get("sem") or {}).get("process")
        if process_alive(process) is False:
            return "KILLED"
    return status


class CorruptRecord(SemError, ValueError):
    """A record file that is not valid JSON. A ValueError too, so the readers that treat such
    folders as orphans (``sem clean``) still do."""


def corrupt_record(path: str | os.PathLike, exc: Exception) -> CorruptRecord:
    return CorruptRecord(
        f"{path}: not valid JSON ({exc}); repair the file, or move its run folder out of the store "
        "(`sem clean` bins folders without a readable run.json once they are an hour old)"
    )


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        try:
            return json.load(fh)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise corrupt_record(path, exc) from None


def read_metrics(run_dir: Path) -> dict:
    """sacred-format metrics of a run: metrics.json, else the journal of a run still alive
    (or killed before it could write metrics.json)."""
    run_dir = Path(run_dir)
    final = run_dir / METRICS_FILE
    if final.exists():
        return read_json(final)
    metrics: dict = {}
    journal = run_dir / METRICS_JOURNAL
    if journal.exists():
        with open(journal, encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break  # a line cut short by a hard kill: everything before it is intact
                chunk = json.loads(line)
                for name, series in chunk.items():
                    target = metrics.setdefault(name, {"steps": [], "values": [], "timestamps": []})
                    for key in ("steps", "values", "timestamps"):
                        target[key].extend(series[key])
    return metrics


@dataclass
class RunRecord:
    """One run, as read from a file store (or, with the Mongo issue, from MongoDB)."""

    location: str  # folder path of the run, or a mongodb URI naming it
    run: dict  # run.json
    config: dict  # config.json: the row plus the four ids
    _metrics: Optional[dict] = field(default=None, repr=False)

    @property
    def global_id(self) -> str:
        return str(self.config.get("global_id") or Path(self.location).name)

    @property
    def experiment_id(self) -> Optional[str]:
        return self.config.get("experiment_id")

    @property
    def config_id(self) -> Optional[str]:
        return self.config.get("config_id")

    @property
    def order_id(self) -> Optional[int]:
        return self.config.get("order_id")

    @property
    def status(self) -> str:
        return self.run.get("status", "UNKNOWN")

    @property
    def observed_status(self) -> str:
        """``status``, or KILLED for a RUNNING run whose process is gone (``observed_status``)."""
        return observed_status(self.run)

    @property
    def model(self) -> Optional[str]:
        """The model file's name, e.g. ``m_linear.py``."""
        return (self.run.get("experiment") or {}).get("mainfile")

    @property
    def metrics(self) -> dict:
        if self._metrics is None:
            self._metrics = read_metrics(Path(self.location))
        return self._metrics


def read_run(run_dir: Path) -> RunRecord:
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    return RunRecord(
        location=str(run_dir),
        run=read_json(run_dir / RUN_FILE),
        config=read_json(config_path) if config_path.exists() else {},
    )


def iter_run_dirs(store: Path) -> Iterator[Path]:
    """Every run folder of a store (folders holding a run.json), in name order = start order."""
    store = Path(store)
    if not store.is_dir():
        return
    with os.scandir(store) as entries:
        names = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith(("_", ".")))
    for name in names:
        candidate = store / name
        if (candidate / RUN_FILE).exists():
            yield candidate


def iter_runs(store: Path) -> Iterator[RunRecord]:
    for run_dir in iter_run_dirs(store):
        yield read_run(run_dir)


def iter_run_dir_stats(store: Path) -> Iterator[tuple[str, os.stat_result, os.stat_result]]:
    """Fast path of ``iter_run_dirs`` for scanning thousands of runs (sem results): the same
    folders in the same order, as ``(folder path, stat of the folder, stat of its run.json)``,
    with plain strings and two stat calls per run."""
    store = Path(store)
    if not store.is_dir():
        return
    with os.scandir(store) as entries:
        found = sorted((e.name, e) for e in entries if not e.name.startswith(("_", ".")) and e.is_dir())
    for _, entry in found:
        try:
            run_stat = os.stat(os.path.join(entry.path, RUN_FILE))
        except FileNotFoundError:
            continue
        yield entry.path, entry.stat(), run_stat
