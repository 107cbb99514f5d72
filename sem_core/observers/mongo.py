"""Live sync: each job's run goes to MongoDB when it starts (status RUNNING, so a dashboard shows
running jobs) and in full when it ends; the whole store is synced again at the end of a sweep.

The file store stays the source of truth: this observer runs after the file observer (lower
priority) and uploads the run folder with ``upload.sync_runs``. When the database is unreachable
the job runs on and is recorded locally; its folder gets the ``.sem-unsynced`` marker and the
sweep logs ONE warning naming ``sem sync`` (a marker file in the sweep folder tells the jobs,
each its own process, that one already did). After a failure the sweep's later jobs do not try
again (each attempt would cost the connection timeout); the sweep-end sync tries again and
says how many runs wait for ``sem sync``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path
from typing import Any

from sem_core.mongo import connection, upload
from sem_core.mongo.connection import MongoSettings
from sem_core.observers.base import Info, RunObserver

log = logging.getLogger("sem.mongo")


class MongoClients:
    """The MongoDB clients of one process, and whether the database was found down. Owned by
    the experiment's ``RunLifecycle`` (one per process), so that every job a worker runs reuses
    one connection (connecting costs more than a short job's sync) and a database found down
    is not waited for again by each later job."""

    def __init__(self) -> None:
        self.databases: dict[str, upload.SyncTarget] = {}  # by URL: the database, and what syncs learnt of it
        self.down = False
        self.warned = False

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


def _job_sweep_dir() -> Path | None:
    """The sweep folder of the Hydra job going on in this process, if any."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(str(HydraConfig.get().sweep.dir)) if HydraConfig.initialized() else None
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
    import pymongo.errors

    sweep_dir = sweep_dir or _job_sweep_dir()
    if (clients.down or _down_in_sweep(sweep_dir)) and when != "sweep end":
        for d in run_dirs:
            upload.mark_unsynced(d, f"not uploaded at {when}: {settings.display} was unreachable earlier")
        return None
    try:
        summary = upload.sync_runs(
            clients.database(settings),
            run_dirs,
            secrets=settings.secrets,
            known=known,
            known_metrics=known_metrics,
            state_key=settings.display if whole_stores else None,
        )
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
        upload.mark_unsynced(Path(run_dir), reason)
        log.warning("sem: run %s was not uploaded to %s: %s", run_dir, settings.display, reason)
    return summary


class MongoLiveObserver(RunObserver):
    """Uploads the run folder written by the file observer: at start and after the last event."""

    priority = 10  # below FileStorageObserver (20): its files exist when this observer runs

    def __init__(self, settings: MongoSettings, store: Path, clients: MongoClients):
        self.settings = settings
        self.store = Path(store)
        self.clients = clients
        self.run_dir: Path | None = None
        self.mongo_id: int | None = None  # the run's _id once its start was synced
        self.metric_ids: dict[str, Any] = {}  # its metric documents then: {name: _id}
        self.sweep_dir: Path | None = None  # found once per job: resolving it from Hydra's config is slow

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
        self.run_dir = self.store / str(_id)
        self.sweep_dir = _job_sweep_dir()
        # a global_id is minted per job: normally not in the database yet (skip the lookup)
        summary = sync_run_dirs(
            self.settings, [self.run_dir], "job start", self.clients, known={}, sweep_dir=self.sweep_dir
        )
        self.mongo_id = summary.run_ids.get(str(self.run_dir)) if summary else None
        self.metric_ids = summary.metric_ids.get(str(self.run_dir), {}) if summary else {}

    def join(self) -> None:
        # after every observer's last event: run.json, metrics.json and artifacts are final
        if self.run_dir is not None:
            known, known_metrics = None, None
            if self.mongo_id is not None:
                # what the job-start upload left in the database: the job's end asks nothing first
                known = {self.run_dir.name: (self.mongo_id, None)}
                known_metrics = {self.run_dir.name: self.metric_ids}
            sync_run_dirs(
                self.settings,
                [self.run_dir],
                "job end",
                self.clients,
                known=known,
                sweep_dir=self.sweep_dir,
                known_metrics=known_metrics,
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
