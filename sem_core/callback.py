"""The Hydra callback that turns each job into a recorded run.

Hydra turns any exception raised inside a callback into a warning. sem does not let a
broken record pass silently: a failure while starting the run is re-raised by the task
(the job fails with it), and a failure while finishing it turns the job's return into
FAILED.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Optional

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from sem_core.errors import SemError

log = logging.getLogger(__name__)

_start_error: Optional[BaseException] = None


def raise_start_error() -> None:
    """Called by the task: re-raise what went wrong in ``on_job_start``."""
    global _start_error
    if _start_error is not None:
        exc, _start_error = _start_error, None
        raise SemError(f"sem could not start recording this run: {exc}") from exc


class RecordError(SemError):
    """Writing the run record failed after ``main`` returned."""


def build_observers(sem_cfg: DictConfig, store: Path, experiment_dir: Optional[Path] = None) -> list:
    """The observers of one run: the file store always; others when configured."""
    from sem_core.observers.file import FileStorageObserver

    observers: list = [FileStorageObserver(store)]
    # MongoDB live sync, only when a database is configured (sem_core.observers.mongo)
    from sem_core.observers.mongo import live_observer

    mongo = live_observer(sem_cfg, store, experiment_dir)
    if mongo is not None:
        observers.append(mongo)
    return observers


def job_row_of(config: DictConfig) -> dict:
    """The job's row (user keys + ids) as plain data: the config without ``hydra`` and ``sem``.
    (Converting only these keys: resolving the whole ``hydra`` node costs more than a short job.)"""
    row = {}
    for key in config:
        if key in ("hydra", "sem"):
            continue
        value = config[key]
        row[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return row


HYDRA_FILES = (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml")


def redact_hydra_files(job_dir: Path, sweep_dir: Path) -> None:
    """Hydra saves the command-line overrides and the composed config next to every job (and
    the sweep's config once): a ``sem.mongo.url=`` password there is replaced by ``***``."""
    from sem_core.mongo.connection import redact_uri
    from sem_core.records import atomic_write_text

    def redact(value: Any) -> Any:
        if isinstance(value, str):
            return redact_uri(value)
        if isinstance(value, dict):
            return {k: redact(v) for k, v in value.items()}
        if isinstance(value, list):
            return [redact(v) for v in value]
        return value

    for path in [job_dir / name for name in HYDRA_FILES] + [sweep_dir / "multirun.yaml"]:
        if not path.exists():
            continue
        saved = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        clean = redact(saved)
        if clean != saved:
            atomic_write_text(path, OmegaConf.to_yaml(OmegaConf.create(clean)))


class SemCallback(Callback):
    def on_job_start(self, config: DictConfig, *, task_function: Any = None, **kwargs: Any) -> None:
        global _start_error
        from sem_core.experiment import SemTask

        if not isinstance(task_function, SemTask):
            return
        try:
            self._start(config, task_function)
        except Exception as exc:  # re-raised by the task: see module docstring
            _start_error = exc

    def _start(self, config: DictConfig, task: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        from sem_core.host import host_info
        from sem_core.mongo.connection import redact_uri, uri_password
        from sem_core.run import Run

        experiment = task.experiment
        row = job_row_of(config)
        sem_cfg = config.sem
        store = experiment.store_dir(sem_cfg.storage)
        hydra_cfg = HydraConfig.get()
        ex_info = experiment.ex_info()
        meta = {
            "command": "main",
            "options": {},
            "sem": {
                # a sem.mongo.url=... override must not put its password into the record
                "argv": [redact_uri(a) for a in [str(experiment.path)] + list(sys.argv[1:])],
                "overrides": [redact_uri(o) for o in hydra_cfg.overrides.task],
                "job_num": hydra_cfg.job.get("num"),
                "output_dir": hydra_cfg.runtime.output_dir,
                "store": str(store),
                # `sem status` judges a heartbeat stale against this interval
                "heartbeat_interval": float(sem_cfg.heartbeat_interval),
                **task.sweep_meta,
            },
        }
        run = Run(
            global_id=row["global_id"],
            config=row,
            ex_info=ex_info,
            host_info=host_info(),
            command="main",
            meta_info=meta,
            observers=build_observers(sem_cfg, store, experiment.experiment_dir),
            heartbeat_interval=float(sem_cfg.heartbeat_interval),
            capture_mode=sem_cfg.capture.value,
        )
        run.start()
        if any(uri_password(o) for o in hydra_cfg.overrides.task):
            redact_hydra_files(Path(hydra_cfg.runtime.output_dir), Path(hydra_cfg.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        # MongoDB: upload what live sync missed (database down, submit-and-exit jobs)
        from sem_core.observers.mongo import sync_after_sweep

        sync_after_sweep(config)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        from sem_core import run as run_module

        run = run_module._current
        if run is None:
            return
        try:
            if job_return.status == JobStatus.COMPLETED:
                run.complete(job_return._return_value)
            else:
                run.fail(job_return._return_value)
        except Exception as exc:
            if run.recorded:  # e.g. the model's own SIGTERM handler raised once more: the record stands
                log.warning("run %s is recorded %s; then %s: %s", run.global_id, run.status, type(exc).__name__, exc)
                return
            log.error("sem could not record run %s: %s", run.global_id, exc)
            error = RecordError(f"sem could not record run {run.global_id}: {exc}")
            error.__cause__ = exc
            job_return.status = JobStatus.FAILED
            job_return.return_value = error
        finally:
            if run_module._current is run:
                run_module._current = None
