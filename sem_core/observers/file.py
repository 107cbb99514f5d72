"""File storage in sacred's FileStorageObserver layout (see ``sem_core.records``).

Differences from sacred's own FileStorageObserver, each for a reason:
- run folders are named by global_id, not by a counter: parallel jobs, machines and users
  never collide;
- every JSON file is written atomically (temp file + rename);
- metrics are appended to ``metrics.jsonl`` while the run lives and ``metrics.json`` is
  written once at the end: sacred rewrites all of metrics.json at every heartbeat
  (quadratic in the number of points);
- sacred's file readers (incense's ``FileSystemExperimentLoader``, sacred's own observer
  counting runs) expect folders named by integers: ``<store>/_sacred/<n>`` is a relative
  symlink to each run's folder, ``n`` taken at the run's start by creating the link (atomic:
  two jobs never get the same number), kept in run.json as ``sacred_id``; ``index_for_sacred``
  links the runs a store holds without a link (pulled with DVC, recorded before the view).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sem_core import records
from sem_core.observers.base import Info, Metrics, RunObserver
from sem_core.run_status import ACTIVE_STATUSES, RunStatus
from sem_core.sources import file_md5

# the integer-named view of a store for sacred's file readers
SACRED_INDEX_DIR = "_sacred"
# in SACRED_INDEX_DIR: where the next free number probably is (a hint; the links decide)
SACRED_NEXT_FILE = ".next"


def link_sacred_id(store: Path, run_name: str, wanted: int | None = None) -> int | None:
    """Give the run folder ``run_name`` a free integer in ``<store>/_sacred``: ``wanted`` when it
    is free, else the next free one; None when the file system has no symlinks (the view is a
    convenience: a run never fails for it)."""
    if wanted is not None:
        index = store / SACRED_INDEX_DIR
        try:
            index.mkdir(exist_ok=True)
            if _link(index, wanted, run_name):
                return wanted
        except OSError:
            return None
    return link_sacred_ids(store, [run_name])[0]


def link_sacred_ids(store: Path, run_names: Sequence[str]) -> list[int | None]:
    """``link_sacred_id`` for many runs in a go (a sweep's QUEUED records): the hint is read and
    written once, each number is still taken by creating its link, so jobs linking at the same
    time never share one. None for the runs not linked when the file system has no symlinks."""
    index = store / SACRED_INDEX_DIR
    numbers: list[int | None] = []
    try:
        index.mkdir(exist_ok=True)
        try:
            n = int((index / SACRED_NEXT_FILE).read_text())
        except (OSError, ValueError):
            n = sum(1 for e in os.scandir(index) if not e.name.startswith(".")) + 1
        for name in run_names:
            while not _link(index, n, name):
                n += 1  # taken by another job (or the hint is behind): the next one
            numbers.append(n)
            n += 1
        _write_hint(index / SACRED_NEXT_FILE, n)
    except OSError:
        pass
    return numbers + [None] * (len(run_names) - len(numbers))


def _link(index: Path, n: int, run_name: str) -> bool:
    """Create ``index/<n>`` -> ``../<run_name>``; False when ``n`` is taken (the atomic step)."""
    try:
        os.symlink(os.path.join(os.pardir, run_name), index / str(n), target_is_directory=True)
    except FileExistsError:
        return False
    return True


def index_for_sacred(store: str | os.PathLike) -> Path:
    """The integer-named view of ``store`` with every run folder in it, for sacred's file readers
    (``FileSystemExperimentLoader(index_for_sacred(store))``). Runs recorded before sem made the
    view, or brought by ``sem dvc pull`` (DVC does not carry links), are linked under the
    ``sacred_id`` their run.json holds when it is free, else under the next free number."""
    store = Path(store)
    index = store / SACRED_INDEX_DIR
    linked: set[str] = set()
    if index.is_dir():
        with os.scandir(index) as entries:
            linked = {os.path.basename(os.readlink(e.path)) for e in entries if e.is_symlink()}
    missing: list[tuple[str, int | None]] = []
    for run_dir in records.iter_run_dirs(store):
        if run_dir.name not in linked:
            try:
                wanted = records.read_json(run_dir / records.RUN_FILE).get("sacred_id")
            except (OSError, records.CorruptRecord, AttributeError):
                wanted = None  # a damaged record still gets a number: incense reports what it can read
            missing.append((run_dir.name, wanted if isinstance(wanted, int) else None))
    index.mkdir(exist_ok=True)
    # every recorded number first, so that a run given a new number never takes another run's own
    unplaced = [name for name, wanted in missing if wanted is None or not _link(index, wanted, name)]
    for name in unplaced:
        link_sacred_id(store, name)
    return index


def _write_hint(path: Path, n: int) -> None:
    """One fixed-width write in place (a third of the cost of a temp file + rename, per job): a
    torn or stale hint costs a scan or a few more tries, never a shared number."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, f"{n:012d}".encode(), 0)
    finally:
        os.close(fd)


def _iso(t: dt.datetime) -> str:
    return t.isoformat()


def run_entry(
    experiment: Any, command: str, host: Any, times: dict, meta_info: Info, status: str, sacred_id: int | None
) -> dict:
    """A run's run.json as its first event writes it (``times``: its queue or start time)."""
    return {
        "experiment": experiment,
        "command": command,
        "host": host,
        **times,
        "meta": meta_info,
        "status": status,
        "resources": [],
        "artifacts": [],
        "heartbeat": None,
        "sacred_id": sacred_id,
    }


class FileStorageObserver(RunObserver):
    priority = 20
    holds_the_record = True

    def __init__(self, basedir: os.PathLike | str):
        self.basedir = Path(basedir)
        self.dir: Path | None = None
        self.run_entry: dict = {}
        # every point taken so far, as JSON text: {name: {key: [each batch's encoded column]}};
        # metrics.json is put together from these pieces, no point is encoded twice
        self._encoded: dict[str, dict[str, list[str]]] = {}
        self._last_values: dict[str, Any] = {}
        self._output_by_capture = False  # the capture appends to cout.txt itself

    @property
    def run_dir(self) -> Path:
        """The run's folder (set by its first event)."""
        if self.dir is None:
            raise RuntimeError("FileStorageObserver: no run was started (started_event or queued_event first)")
        return self.dir

    # -- lifecycle -------------------------------------------------------------------
    def _begin(
        self,
        ex_info: Info,
        command: str,
        host_info: Info,
        config: Info,
        meta_info: Info,
        _id: Any,
        status: str,
        time_key: str,
        time: dt.datetime,
    ) -> Any:
        self.dir = self.basedir / str(_id)
        # The folder may exist already: a QUEUED record (Slurm, submit-and-exit) or a requeued
        # job restarts under the same global_id. Anything already finished is never overwritten.
        created = not self.dir.exists()
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            return self._begin_in(ex_info, command, host_info, config, meta_info, _id, status, time_key, time)
        except BaseException:
            if created:  # no empty or half-made run folder is left behind
                shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def _begin_in(
        self,
        ex_info: Info,
        command: str,
        host_info: Info,
        config: Info,
        meta_info: Info,
        _id: Any,
        status: str,
        time_key: str,
        time: dt.datetime,
    ) -> Any:
        existing = self.run_dir / records.RUN_FILE
        previous: dict = {}
        if existing.exists():
            previous = records.read_json(existing)
            if previous.get("status") not in ACTIVE_STATUSES:
                raise FileExistsError(
                    f"run folder {self.dir} already holds a {previous.get('status')} run; "
                    "global ids are minted once per job and must not be reused"
                )
        sources = self._save_sources(ex_info)
        self.run_entry = run_entry(
            dict(ex_info, sources=sources),
            command,
            dict(host_info),
            {time_key: _iso(time)},
            meta_info,
            status,
            # a requeued run keeps its number
            previous.get("sacred_id") or link_sacred_id(self.basedir, self.run_dir.name),
        )
        records.atomic_write_json(self.run_dir / records.CONFIG_FILE, config)
        self._write_run()
        return _id

    def queued_event(
        self,
        ex_info: Info,
        command: str,
        host_info: Info,
        queue_time: dt.datetime,
        config: Info,
        meta_info: Info,
        _id: Any,
    ) -> Any:
        return self._begin(
            ex_info, command, host_info, config, meta_info, _id, RunStatus.QUEUED, "queue_time", queue_time
        )

    def started_event(
        self,
        ex_info: Info,
        command: str,
        host_info: Info,
        start_time: dt.datetime,
        config: Info,
        meta_info: Info,
        _id: Any,
    ) -> Any:
        return self._begin(
            ex_info, command, host_info, config, meta_info, _id, RunStatus.RUNNING, "start_time", start_time
        )

    def hand_over_output_file(self) -> Path | None:
        self._output_by_capture = True
        return self.run_dir / records.COUT_FILE

    def heartbeat_event(self, info: Info, captured_out: str, beat_time: dt.datetime, result: Any) -> None:
        # Each part either lands whole or raises with nothing written, so the run can hand the
        # same data again at the next beat: the output is appended last and undone on failure.
        if info is not None:
            records.atomic_write_json(self.run_dir / records.INFO_FILE, info)
        self.run_entry["heartbeat"] = _iso(beat_time)
        self.run_entry["result"] = result
        self._write_run()
        if captured_out and not self._output_by_capture:
            records.append_whole(self.run_dir / records.COUT_FILE, captured_out.encode("utf-8", errors="replace"))

    def completed_event(self, stop_time: dt.datetime, result: Any) -> None:
        self._finish(RunStatus.COMPLETED, stop_time, result=result)

    def interrupted_event(self, interrupt_time: dt.datetime, status: str) -> None:
        self._finish(status, interrupt_time)

    def failed_event(self, fail_time: dt.datetime, fail_trace: list[str]) -> None:
        self._finish(RunStatus.FAILED, fail_time, fail_trace=fail_trace)

    def _finish(self, status: str, stop_time: dt.datetime, **fields: Any) -> None:
        self._write_final_metrics()
        # the last value of every metric, so that results tables need not parse metrics.json
        self.run_entry["last_metrics"] = dict(self._last_values)
        self.run_entry.update(fields)
        self.run_entry["status"] = status
        self.run_entry["stop_time"] = _iso(stop_time)
        self._write_run()

    def sources_event(self, sources: list) -> None:
        base = Path(self.run_entry["experiment"].get("base_dir", "."))
        known = {name for name, _ in self.run_entry["experiment"]["sources"]}
        for name, md5 in sources:
            if name not in known:
                self.run_entry["experiment"]["sources"].append(
                    [name, self._store_once(base / name, records.SOURCES_DIR, md5)]
                )
        self._write_run()

    # -- files -----------------------------------------------------------------------
    def resource_event(self, filename: str) -> None:
        stored = self._store_once(Path(filename), records.RESOURCES_DIR)
        self.run_entry["resources"].append([str(filename), stored])
        self._write_run()

    def artifact_event(
        self,
        name: str,
        filename: str,
        metadata: dict | None = None,
        content_type: str | None = None,
    ) -> None:
        target = self.run_dir / name
        if target.exists():
            raise FileExistsError(f"artifact {name!r} already exists in {self.dir}; give it another name=")
        shutil.copyfile(filename, target)
        self.run_entry["artifacts"].append(name)
        self._write_run()

    def log_metrics(self, metrics_by_name: Metrics, info: Info) -> None:
        if not metrics_by_name:
            return
        batch = {
            name: {key: records.encode_column(series[key]) for key in records.SERIES_KEYS}
            for name, series in metrics_by_name.items()
        }
        text = records.encode_metrics(batch) + "\n"
        records.append_whole(self.run_dir / records.METRICS_JOURNAL, text.encode("utf-8"))
        # kept only once the batch is in the journal: after a failed write the run hands it again
        for name, columns in batch.items():
            kept = self._encoded.setdefault(name, {key: [] for key in records.SERIES_KEYS})
            for key, encoded in columns.items():
                if encoded:  # an empty column adds no item (and no separator)
                    kept[key].append(encoded)
            values = metrics_by_name[name]["values"]
            if values:
                self._last_values[name] = values[-1]

    def _write_final_metrics(self) -> None:
        journal = self.run_dir / records.METRICS_JOURNAL
        if self._encoded or journal.exists():
            whole = {
                name: {key: ", ".join(parts) for key, parts in kept.items()} for name, kept in self._encoded.items()
            }
            records.atomic_write_text(self.run_dir / records.METRICS_FILE, records.encode_metrics(whole))
            # the journal only covered the time before metrics.json existed; it is a subset of it
            journal.unlink(missing_ok=True)

    def _write_run(self) -> None:
        # Indented once the run has ended; before, run.json is rewritten at the start and at each
        # heartbeat, where json's indenting encoder (pure Python) cost a job more than the rest
        # of its record (meta holds every installed package).
        ended = self.run_entry["status"] not in ACTIVE_STATUSES
        records.atomic_write_json(self.run_dir / records.RUN_FILE, self.run_entry, indent=2 if ended else None)

    def _save_sources(self, ex_info: Info) -> list:
        base = Path(ex_info.get("base_dir", "."))
        return [
            [name, self._store_once(base / name, records.SOURCES_DIR, md5)] for name, md5 in ex_info.get("sources", [])
        ]

    def _store_once(self, path: Path, folder: str, md5: str | None = None) -> str:
        """Copy a file into ``folder`` once per content; return its path relative to the store."""
        md5 = md5 or file_md5(path)
        stored = Path(folder) / f"{path.stem}_{md5}{path.suffix}"
        target = self.basedir / stored
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        return str(stored)


# what a QUEUED record holds in place of a value every record of a submission shares
# (``QueuedRuns.shared``), until the value's JSON text, encoded once, is put in its place; json
# writes the NUL as \u0000, which no command-line argument can hold
_SHARED_SLOT = "\x00sem-shared:{}"
_SHARED_SLOT_RE = re.compile(r'"\\u0000sem-shared:(\d+)"')


class QueuedRuns:
    """The QUEUED records of many runs of one experiment submitted together (a sweep sent to a
    cluster): the same files as ``FileStorageObserver.queued_event`` writes for each, for a
    fraction of the cost. The model's sources are stored and the parts of run.json the runs
    share are encoded once; the sacred numbers are linked in a go (``link_sacred_ids``); each
    run folder appears whole (``records.write_new_folder``: no reader ever sees half a file,
    and no temporary file per file). Each run then starts as any queued run does
    (``started_event`` finds its record and keeps its number)."""

    def __init__(self, store: Path, ex_info: Info, command: str, host_info: Info, queue_time: dt.datetime):
        self.store = Path(store)
        self.command = command
        self.queue_time = _iso(queue_time)
        self._linked: list[tuple[int, str]] = []
        self._encoded: list[str] = []  # each shared value's JSON text
        self._experiment = self.shared(dict(ex_info, sources=FileStorageObserver(self.store)._save_sources(ex_info)))
        self._host = self.shared(dict(host_info))

    def shared(self, value: Any) -> str:
        """A stand-in to put in the records written here in place of ``value``, which is
        encoded once and put in at the stand-in's place in each record (sem's meta, the model's
        sources, the host: most of a QUEUED run.json's text)."""
        self._encoded.append(records.encode_json(value, None))
        return _SHARED_SLOT.format(len(self._encoded) - 1)

    def link(self, run_ids: Sequence[str]) -> list[int | None]:
        """The sacred numbers of these runs, linked to their folders (before they exist)."""
        numbers = link_sacred_ids(self.store, run_ids)
        self._linked += [(n, run_id) for n, run_id in zip(numbers, run_ids) if n is not None]
        return numbers

    def unlink_unwritten(self) -> None:
        """Remove the links of runs whose record was never written (the submission failed):
        no sacred number is left pointing at nothing."""
        index = self.store / SACRED_INDEX_DIR
        for n, run_id in self._linked:
            if not os.path.isdir(os.path.join(self.store, run_id)):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(index / str(n))

    def write(self, run_id: str, config: Info, meta_info: Info, sacred_id: int | None) -> None:
        """One run's folder with its config.json and QUEUED run.json; ``FileExistsError`` if
        the run folder exists (a global id is minted once per job)."""
        entry = run_entry(
            self._experiment,
            self.command,
            self._host,
            {"queue_time": self.queue_time},
            meta_info,
            RunStatus.QUEUED,
            sacred_id,
        )
        text = _SHARED_SLOT_RE.sub(lambda m: self._encoded[int(m.group(1))], records.encode_json(entry, None))
        # config.json compact, as run.json: json's C encoder (the indenting one is pure Python);
        # it is written again, indented, when the run starts
        records.write_new_folder(
            os.path.join(self.store, run_id),
            {records.CONFIG_FILE: records.encode_json(config, None).encode(), records.RUN_FILE: text.encode()},
        )
