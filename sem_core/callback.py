"""The Hydra callback that turns each job into a recorded run.

The callback attaches the observers and begins the run through the experiment's
``RunLifecycle`` (``sem_core.lifecycle``), the one object the callback and the task share.
Hydra turns any exception raised inside a callback into a warning, so a failure to start
recording is kept there and raised by the task (the job fails with it), and a failure while
finishing turns the job's return into FAILED.
"""

from __future__ import annotations

import logging
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from sem_core.lifecycle import RunLifecycle

if TYPE_CHECKING:
    from sem_core.claims import RowClaim
    from sem_core.run import Run

log = logging.getLogger(__name__)


def build_observers(store: Path, database: Any, lifecycle: RunLifecycle) -> list:
    """sem's observers of one run: the file store always; MongoDB live sync when the sweep has
    a database (``database``: its resolved settings), through the clients ``lifecycle`` keeps
    for every job of this process."""
    from sem_core.observers.file import FileStorageObserver

    observers: list = [FileStorageObserver(store)]
    if database is not None:
        from sem_core.observers.mongo import MongoClients, MongoLiveObserver

        if lifecycle.mongo_clients is None:
            lifecycle.mongo_clients = MongoClients()
        observers.append(MongoLiveObserver(database, store, lifecycle.mongo_clients))
    return observers


def job_row_of(config: DictConfig) -> dict:
    """The job's row (user keys + ids) as plain data: the config without ``hydra`` and ``sem``.
    (Converting only these keys: resolving the whole ``hydra`` node costs more than a short job.)"""
    row = {}
    for key in config:
        if key in ("hydra", "sem"):
            continue
        value = config[key]
        if OmegaConf.is_config(value):
            row[key] = OmegaConf.to_container(value, resolve=True, enum_to_str=True)
        else:  # a schema's Enum field: its name, as in YAML
            row[key] = value.name if isinstance(value, Enum) else value
    return row


def _row_claim(config: DictConfig, task: Any) -> RowClaim | None:
    """The claim of the job's row in MongoDB when two sweeps may race for it: a database is
    configured and ``sem.skip_completed=true`` (sem_core.claims); else None."""
    if not config.sem.get("skip_completed"):
        return None
    database = task.database_settings()
    if database is None:
        return None
    from sem_core.claims import RowClaim, stale_after_s

    return RowClaim(
        database,
        task.experiment.path.name,
        str(config.experiment_id),
        str(config.global_id),
        float(config.sem.heartbeat_interval),
        stale_after_s(config.sem),
        database.display,
    )


class SemCallback(Callback):
    def __init__(self) -> None:
        # the lifecycle of the job started last in this process: Hydra's on_job_end does not
        # name the task, so the callback remembers which run it began
        self._lifecycle: RunLifecycle | None = None

    def on_job_start(self, config: DictConfig, *, task_function: Any = None, **kwargs: Any) -> None:
        from sem_core.task import SemTask

        if not isinstance(task_function, SemTask):
            self._lifecycle = None
            return
        lifecycle = self._lifecycle = task_function.experiment.lifecycle
        from sem_core.run_gate import job_slot

        lifecycle.begin(
            lambda: self._make_run(config, task_function),
            claim=_row_claim(config, task_function),
            slot=job_slot(config),
        )

    def _make_run(self, config: DictConfig, task: Any) -> Run:
        from hydra.core.hydra_config import HydraConfig

        from sem_core.host import host_info, process_info
        from sem_core.mongo.connection import redact_uri
        from sem_core.observers.attached import job_observers
        from sem_core.run import Run

        experiment = task.experiment
        row = job_row_of(config)
        sem_cfg = config.sem
        store = experiment.store_dir(sem_cfg.storage)
        hydra_cfg = HydraConfig.get()
        if experiment.schema is not None or experiment.config_dir is not None:
            from sem_core.compose import record_config
            from sem_core.row_store import job_row

            # config.json: the row as written (the ids hash it) and the job's config as composed
            row = record_config(job_row(hydra_cfg.overrides.task), row)
        meta = {
            "command": "main",
            "options": {},
            "sem": {
                # a sem.mongo.url=... override must not put its password into the record
                "argv": [redact_uri(a) for a in [str(experiment.path)] + list(sys.argv[1:])],
                "overrides": [redact_uri(o) for o in hydra_cfg.overrides.task],
                "job_num": cast(DictConfig, hydra_cfg.job).get("num"),
                "output_dir": hydra_cfg.runtime.output_dir,
                "store": str(store),
                # `sem status` judges a heartbeat stale against this interval
                "heartbeat_interval": float(sem_cfg.heartbeat_interval),
                # `sem ls`/`sem status` tell a run whose process is gone at once on this host
                "process": process_info(),
                **task.sweep_meta,
            },
        }
        return Run(
            global_id=row["global_id"],
            config=row,
            ex_info=experiment.ex_info(),
            host_info=host_info(),
            command="main",
            meta_info=meta,
            # the user's (ex.observers, sem.observers: sacred's observers) come after sem's own
            observers=build_observers(store, task.database_settings(), experiment.lifecycle)
            + job_observers(experiment.experiment_dir, experiment.observers, sem_cfg),
            heartbeat_interval=float(sem_cfg.heartbeat_interval),
            capture_mode=sem_cfg.capture.value,
            copier=experiment.lifecycle.output_copier,
        )

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        lifecycle, self._lifecycle = self._lifecycle, None
        if lifecycle is not None:
            lifecycle.end(job_return)
