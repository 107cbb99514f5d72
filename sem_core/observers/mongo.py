"""Live sync: each job's run goes to MongoDB when it starts (status RUNNING, so a dashboard shows
running jobs) and in full when it ends; the whole store is synced again at the end of a sweep.

The file store stays the source of truth: this observer runs after the file observer (lower
priority) and uploads the run folder the file observer wrote (``upload.prepare_run``: the same
documents as ``sem sync``). The job does not wait for the database while it works: the start's
documents and each artifact are sent by the process's ``BackgroundWriter`` thread while ``main``
runs (on 2 cores the database's work overlaps the job's instead of adding to it); the job's end
waits for them, then sends the run's final documents and returns once the database has them.
The end sets only the run document's fields that changed since the start wrote it.

When the database is unreachable the job runs on and is recorded locally; its folder gets the
``.sem-unsynced`` marker and the sweep logs ONE warning naming ``sem sync`` (a marker file in
the sweep folder tells the jobs, each its own process, that one already did). After a failure
the sweep's later jobs do not try again (each attempt would cost the connection timeout); the
sweep-end sync tries again and says how many runs wait for ``sem sync``. A job killed while
the writer sends leaves a run the database holds in part, with a fingerprint that no longer
matches the folder: ``sem sync`` repairs it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import queue
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sem_core.mongo import connection, upload
from sem_core.mongo.connection import MongoSettings
from sem_core.observers.base import Info, RunObserver

log = logging.getLogger("sem.mongo")


class BackgroundWriter:
    """One thread of the process that runs the tasks handed to it in order (FIFO): a job's
    start, then its artifacts, are sent while the job goes on. A daemon thread: a process
    that exits while it sends (killed, or a Ctrl-C during the wait) leaves the rest to
    ``sem sync``. Made again in a forked child (a thread does not survive ``fork``)."""

    def __init__(self) -> None:
        self._tasks: queue.SimpleQueue[tuple[Callable[[], None], threading.Event]] | None = None
        self._pid: int | None = None

    def submit(self, task: Callable[[], None]) -> threading.Event:
        """Queue ``task``; the event is set once it ran (whatever its outcome: a task reports
        its own errors)."""
        if self._tasks is None or self._pid != os.getpid():
            self._tasks, self._pid = queue.SimpleQueue(), os.getpid()
            threading.Thread(target=_run_tasks, args=(self._tasks,), name="sem-mongo-writer", daemon=True).start()
        done = threading.Event()
        self._tasks.put((task, done))
        return done


def _run_tasks(tasks: queue.SimpleQueue[tuple[Callable[[], None], threading.Event]]) -> None:
    while True:
        task, done = tasks.get()
        try:
            task()
        except BaseException:  # noqa: BLE001 - a task keeps its own errors; the thread must live on
            # a URL in the trace is shown without its password, as everything sem writes
            log.warning("sem: the MongoDB writer thread failed:\n%s", connection.redact_uri(traceback.format_exc()))
        finally:
            done.set()


class MongoClients:
    """The MongoDB clients of one process, and whether the database was found down. Owned by
    the experiment's ``RunLifecycle`` (one per process), so that every job a worker runs reuses
    one connection (connecting costs more than a short job's sync) and a database found down
    is not waited for again by each later job."""

    def __init__(self) -> None:
        self.databases: dict[str, upload.SyncTarget] = {}  # by URL: the database, and what syncs learnt of it
        self.down = False
        self.warned = False
        self.writer = BackgroundWriter()
        # the sweep folder by hydra.sweep.dir as configured (unresolved): resolving it is slow
        # (OmegaConf's grammar), and every job of a sweep has the same one
        self.sweep_dirs: dict[str, Path] = {}

    def database(self, settings: MongoSettings) -> upload.SyncTarget:
        target = self.databases.get(settings.url)
        if target is None:
            target = self.databases[settings.url] = upload.SyncTarget(connection.connect(settings))
        return target

    def close(self) -> None:
        for target in self.databases.values():
            try:
                target.db.client.close()
            except Exception:  # noqa: BLE001 - closing a client of a dead server
                pass
        self.databases.clear()


# in the sweep folder: the database was found unreachable during this sweep, and warned about
DOWN_MARKER = ".sem-mongo-unreachable"


def _job_sweep_dir(known: dict[str, Path] | None = None) -> Path | None:
    """The sweep folder of the Hydra job going on in this process, if any. ``known``: sweep
    folders already resolved, by ``hydra.sweep.dir`` as configured (read, updated)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf

        if not HydraConfig.initialized():
            return None
        sweep = HydraConfig.get().sweep
        configured = str(OmegaConf.to_container(sweep, resolve=False).get("dir"))  # type: ignore[union-attr]
        if known is not None and configured in known:
            return known[configured]
        found = Path(str(sweep.dir))
        if known is not None:
            known[configured] = found
        return found
    except Exception:  # outside a Hydra job
        return None


def _down_in_sweep(sweep_dir: Path | None) -> bool:
    return sweep_dir is not None and (sweep_dir / DOWN_MARKER).exists()


def _warn_once(message: str, sweep_dir: Path | None, clients: MongoClients) -> None:
    """Once per sweep: the first process to create the sweep's marker warns; once per process
    outside a sweep."""
    if clients.warned:
        log.debug(message)
        return
    clients.warned = True
    if sweep_dir is not None:
        try:
            fd = os.open(sweep_dir / DOWN_MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            log.debug(message)
            return
        except OSError:
            pass  # no marker possible: warn from this process
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(message + "\n")
    log.warning(message)


def sync_run_dirs(
    settings: MongoSettings,
    run_dirs: list[Path],
    when: str,
    clients: MongoClients,
    mark: bool = True,
    known: dict | None = None,
    sweep_dir: Path | None = None,
    known_metrics: dict | None = None,
    whole_stores: bool = False,
) -> upload.SyncSummary | None:
    """Sync run folders; never raises for database trouble: marks the runs unsynced (unless
    ``mark`` is False: the sweep-end sync cannot tell which runs reached the database before)
    and warns once per process. ``whole_stores``: ``run_dirs`` are every run of their stores (the
    stores' sync-state files are trusted and written, ``sem_core.mongo.sync_state``)."""
    return _synced(
        settings,
        run_dirs,
        when,
        clients,
        lambda target: upload.sync_runs(
            target,
            run_dirs,
            secrets=settings.secrets,
            known=known,
            known_metrics=known_metrics,
            state_key=settings.display if whole_stores else None,
        ),
        mark=mark,
        sweep_dir=sweep_dir,
    )


def _synced(
    settings: MongoSettings,
    run_dirs: list[Path],
    when: str,
    clients: MongoClients,
    sync: Callable[[upload.SyncTarget], upload.SyncSummary],
    mark: bool = True,
    sweep_dir: Path | None = None,
) -> upload.SyncSummary | None:
    """``sync`` (the upload of ``run_dirs``) to the database, guarded as ``sync_run_dirs`` says."""
    import pymongo.errors

    sweep_dir = sweep_dir or _job_sweep_dir(clients.sweep_dirs)
    if (clients.down or _down_in_sweep(sweep_dir)) and when != "sweep end":
        for d in run_dirs:
            upload.mark_unsynced(d, f"not uploaded at {when}: {settings.display} was unreachable earlier")
        return None
    try:
        summary = sync(clients.database(settings))
    except (pymongo.errors.PyMongoError, upload.SyncError, OSError) as exc:
        clients.down = True
        reason = connection.describe_error(exc, settings)
        for d in run_dirs if mark else ():
            if d.exists():
                upload.mark_unsynced(d, f"not uploaded at {when}: {reason}")
        _warn_once(
            f"sem: MongoDB {settings.display} (from {settings.source}) is unreachable ({reason}). "
            "Jobs go on and are recorded locally, marked unsynced; upload them later with `sem sync`.",
            sweep_dir,
            clients,
        )
        return None
    clients.down = False
    for run_dir, reason in summary.failed:
        _not_uploaded(Path(run_dir), reason, settings)
    return summary


def _not_uploaded(run_dir: Path, reason: str, settings: MongoSettings) -> None:
    upload.mark_unsynced(run_dir, reason)
    log.warning("sem: run %s was not uploaded to %s: %s", run_dir, settings.display, reason)


class MongoLiveObserver(RunObserver):
    """Uploads the run folder written by the file observer: at start and after the last event.

    Threads: the start and the artifacts are sent by the process's ``BackgroundWriter``, one
    task after another; ``join`` waits for them before the end is sent from the calling thread,
    so the writer's fields (``mongo_id``, ``metric_ids``, ``sent_doc``) are read only after it
    set them, and the database gets the run's documents in the order the events came."""

    priority = 10  # below FileStorageObserver (20): its files exist when this observer runs

    def __init__(self, settings: MongoSettings, store: Path, clients: MongoClients):
        self.settings = settings
        self.store = Path(store)
        self.clients = clients
        self.run_dir: Path | None = None
        self.mongo_id: int | None = None  # the run's _id once its start was synced
        self.metric_ids: dict[str, Any] = {}  # its metric documents then: {name: _id}
        self.sent_doc: dict | None = None  # its run document as the start wrote it
        self.sweep_dir: Path | None = None
        self._sent: threading.Event | None = None  # set once the writer has done what it was handed

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
        run_dir = self.run_dir = self.store / str(_id)
        self.sweep_dir = _job_sweep_dir(self.clients.sweep_dirs)
        if self.clients.down or _down_in_sweep(self.sweep_dir):
            upload.mark_unsynced(run_dir, f"not uploaded at job start: {self.settings.display} was unreachable earlier")
            return
        # read now, as the folder is at the start (the job's output is not in it yet); sent meanwhile
        prepared = self._prepare(run_dir)
        if prepared is not None:
            self._sent = self.clients.writer.submit(lambda: self._send_start(run_dir, prepared))

    def _send_start(self, run_dir: Path, prepared: upload.PreparedRun) -> None:
        """In the writer thread."""
        summary = self._send(run_dir, prepared, "job start")
        if summary is not None and str(run_dir) in summary.run_ids:
            self.mongo_id = summary.run_ids[str(run_dir)]
            self.metric_ids = summary.metric_ids.get(str(run_dir), {})
            self.sent_doc = prepared.doc

    def artifact_event(
        self,
        name: str,
        filename: str,
        metadata: dict | None = None,
        content_type: str | None = None,
    ) -> None:
        # the file observer (higher priority) has copied it into the run folder: sent from there
        if self._sent is not None and self.run_dir is not None:
            run_dir = self.run_dir
            self._sent = self.clients.writer.submit(lambda: self._send_artifact(run_dir, name))

    def _send_artifact(self, run_dir: Path, name: str) -> None:
        """In the writer thread. A failure costs nothing but time: the run's end sends what is missing."""
        import pymongo.errors

        if self.mongo_id is None or self.clients.down:
            return
        try:
            upload.store_artifact(self.clients.database(self.settings), run_dir, name, self.mongo_id)
        except (pymongo.errors.PyMongoError, upload.SyncError, OSError) as exc:
            log.debug("sem: artifact %s of %s not sent ahead (%s)", name, run_dir, type(exc).__name__)

    def join(self) -> None:
        # after every observer's last event: run.json, metrics.json and artifacts are final
        run_dir = self.run_dir
        if run_dir is None:
            return
        if self._sent is not None:
            self._sent.wait()  # the start and the artifacts: sent, or given up on
        if self.mongo_id is None:
            # the start did not reach the database: a sync as `sem sync` does it (asks the database first)
            sync_run_dirs(self.settings, [run_dir], "job end", self.clients, sweep_dir=self.sweep_dir)
            return
        # read after the wait, not during it: reading holds the interpreter the writer needs to finish
        prepared = self._prepare(
            run_dir, existing_id=self.mongo_id, known_metrics=self.metric_ids, sent_doc=self.sent_doc
        )
        if prepared is not None:
            self._send(run_dir, prepared, "job end")

    def _prepare(self, run_dir: Path, **known: Any) -> upload.PreparedRun | None:
        try:
            return upload.prepare_run(run_dir, self.settings.secrets, **known)
        except (upload.SyncError, OSError) as exc:
            _not_uploaded(run_dir, str(exc), self.settings)
            return None

    def _send(self, run_dir: Path, prepared: upload.PreparedRun, when: str) -> upload.SyncSummary | None:
        return _synced(
            self.settings,
            [run_dir],
            when,
            self.clients,
            lambda target: upload.send_prepared(target, [prepared]),
            sweep_dir=self.sweep_dir,
        )


def sync_after_sweep(settings: MongoSettings, sweep_dir: Path, store: Path) -> upload.SyncSummary | None:
    """At the sweep's end: sync its run store (catches up runs a dead database missed, and
    submit-and-exit Slurm jobs) and say how many runs wait for ``sem sync``."""
    from sem_core import records

    run_dirs = list(records.iter_run_dirs(store))
    # once per sweep, in the sweeper's process: a client of its own, closed when done
    clients = MongoClients()
    try:
        summary = sync_run_dirs(
            settings, run_dirs, "sweep end", clients, mark=False, sweep_dir=sweep_dir, whole_stores=True
        )
    finally:
        clients.close()
    waiting = sum(1 for d in run_dirs if (d / upload.UNSYNCED_MARKER).exists())
    if waiting:
        log.warning(
            "sem: %d run%s in %s %s waiting for `sem sync` (not in MongoDB %s)",
            waiting,
            "" if waiting == 1 else "s",
            store,
            "is" if waiting == 1 else "are",
            settings.display,
        )
    if summary is not None:
        c = summary.counts()
        log.info(
            "sem: synced %s to %s: %d uploaded, %d updated, %d unchanged, %d failed",
            store,
            settings.display,
            c["uploaded"],
            c["updated"],
            c["unchanged"],
            c["failed"],
        )
    return summary
