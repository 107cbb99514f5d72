"""Live sync: each job's run goes to MongoDB when it starts (status RUNNING, so a dashboard shows
running jobs) and in full when it ends; the whole store is synced again at the end of a sweep.

The file store stays the source of truth: this observer runs after the file observer (lower
priority) and uploads the run folder with ``upload.sync_runs``. When the database is unreachable
the job runs on and is recorded locally; its folder gets the ``.sem-unsynced`` marker and the
process logs ONE warning naming ``sem sync``. After a failure the process stops trying for its
later jobs (each attempt would cost the connection timeout); the sweep-end sync tries again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional

from sem_core.mongo import connection, upload
from sem_core.mongo.connection import MongoSettings
from sem_core.observers.base import RunObserver

log = logging.getLogger("sem.mongo")


class _ProcessState:
    """Per process: one client per database, and whether the database was found down."""

    def __init__(self) -> None:
        self.databases: dict[str, Any] = {}
        self.down = False
        self.warned = False


_state = _ProcessState()


def _database(settings: MongoSettings):
    db = _state.databases.get(settings.url)
    if db is None:
        db = _state.databases[settings.url] = connection.connect(settings)
    return db


def _warn_once(message: str) -> None:
    if _state.warned:
        log.debug(message)
        return
    _state.warned = True
    log.warning(message)


def sync_run_dirs(
    settings: MongoSettings, run_dirs: list[Path], when: str, mark: bool = True, known: Optional[dict] = None
) -> Optional[upload.SyncSummary]:
    """Sync run folders; never raises for database trouble: marks the runs unsynced (unless
    ``mark`` is False: the sweep-end sync cannot tell which runs reached the database before)
    and warns once per process."""
    import pymongo.errors

    if _state.down and when != "sweep end":
        for d in run_dirs:
            upload.mark_unsynced(d, f"not uploaded at {when}: {settings.display} was unreachable earlier")
        return None
    try:
        summary = upload.sync_runs(_database(settings), run_dirs, secrets=(settings.password,), known=known)
    except (pymongo.errors.PyMongoError, upload.SyncError, OSError) as exc:
        _state.down = True
        reason = connection.describe_error(exc, settings)
        for d in run_dirs if mark else ():
            if d.exists():
                upload.mark_unsynced(d, f"not uploaded at {when}: {reason}")
        _warn_once(
            f"sem: MongoDB {settings.display} (from {settings.source}) is unreachable ({reason}). "
            "Jobs go on and are recorded locally, marked unsynced; upload them later with `sem sync`."
        )
        return None
    _state.down = False
    for run_dir, reason in summary.failed:
        upload.mark_unsynced(Path(run_dir), reason)
        log.warning("sem: run %s was not uploaded to %s: %s", run_dir, settings.display, reason)
    return summary


class MongoLiveObserver(RunObserver):
    """Uploads the run folder written by the file observer: at start and after the last event."""

    priority = 10  # below FileStorageObserver (20): its files exist when this observer runs

    def __init__(self, settings: MongoSettings, store: Path):
        self.settings = settings
        self.store = Path(store)
        self.run_dir: Optional[Path] = None
        self.mongo_id: Optional[int] = None  # the run's _id once its start was synced

    def started_event(self, ex_info, command, host_info, start_time, config, meta_info, _id):
        self.run_dir = self.store / str(_id)
        # a global_id is minted per job: normally not in the database yet (skip the lookup)
        summary = sync_run_dirs(self.settings, [self.run_dir], "job start", known={})
        self.mongo_id = summary.run_ids.get(str(self.run_dir)) if summary else None

    def join(self):
        # after every observer's last event: run.json, metrics.json and artifacts are final
        if self.run_dir is not None:
            known = {self.run_dir.name: (self.mongo_id, None)} if self.mongo_id is not None else None
            sync_run_dirs(self.settings, [self.run_dir], "job end", known=known)


def live_observer(sem_cfg: Any, store: Path, experiment_dir: Optional[Path]) -> Optional[MongoLiveObserver]:
    """The live observer when a database is configured (``sem.mongo.url``, env, files), else None."""
    override = None
    mongo = getattr(sem_cfg, "mongo", None) if sem_cfg is not None else None
    if mongo is not None:
        override = getattr(mongo, "url", None)
    settings = connection.resolve_settings(override_url=override, experiment_dir=experiment_dir)
    if settings is None:
        return None
    return MongoLiveObserver(settings, store)


def sync_after_sweep(config: Any) -> Optional[upload.SyncSummary]:
    """``on_multirun_end``: sync the sweep's run store (catches up runs a dead database missed)."""
    from sem_core import records
    from sem_core.settings import experiment_dir_of
    from sem_core.sweep import SWEEP_MANIFEST

    try:
        sweep_dir = Path(str(config.hydra.sweep.dir))
    except Exception:  # not a sem sweep (another Hydra app using the callback)
        return None
    manifest_path = sweep_dir / SWEEP_MANIFEST
    if not manifest_path.exists():
        return None  # no sem experiment was swept (e.g. another app): nothing of sem's to sync
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    experiment_dir = experiment_dir_of(Path(manifest["model_file"]))
    mongo = config.sem.mongo if "sem" in config else None
    settings = connection.resolve_settings(
        override_url=getattr(mongo, "url", None) if mongo is not None else None, experiment_dir=experiment_dir
    )
    if settings is None:
        return None
    run_dirs = list(records.iter_run_dirs(Path(manifest["store"])))
    summary = sync_run_dirs(settings, run_dirs, "sweep end", mark=False)
    if summary is not None:
        c = summary.counts()
        log.info(
            "sem: synced %s to %s: %d uploaded, %d updated, %d unchanged, %d failed",
            manifest["store"], settings.display, c["uploaded"], c["updated"], c["unchanged"], c["failed"],
        )
    return summary
