"""The work of ``LocalLauncher`` (kept out of the plugin module Hydra imports at start-up)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import sys
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, List, Optional, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, run_job, setup_globals
from omegaconf import open_dict

from sem_core.sweep import job_label

log = logging.getLogger(__name__)


class JobError(Exception):
    """A worker job's exception that could not travel back by pickle, with its traceback."""


def _run_one(launcher, overrides: Sequence[str], idx: int) -> JobReturn:
    sweep_config = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = idx
        sweep_config.hydra.job.num = idx
    return run_job(
        hydra_context=launcher.hydra_context,
        task_function=launcher.task_function,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


def launch(launcher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> List[JobReturn]:
    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    Path(str(launcher.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    n_jobs = launcher.n_jobs or os.cpu_count() or 1
    if n_jobs == 1:
        log.info(f"Launching {len(job_overrides)} jobs in this process")
        return _launch_in_process(launcher, job_overrides, initial_job_idx)
    log.info(f"Launching {len(job_overrides)} jobs in {n_jobs} processes")
    return _launch_in_pool(launcher, job_overrides, initial_job_idx, n_jobs)


def _launch_in_process(launcher, job_overrides, initial_job_idx) -> List[JobReturn]:
    runs: List[JobReturn] = []
    for offset, overrides in enumerate(job_overrides):
        idx = initial_job_idx + offset
        log.info(f"\t#{idx} : {job_label(overrides)}")
        ret = _run_one(launcher, overrides, idx)
        runs.append(ret)
        configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
        if launcher.fail_fast and ret.status == JobStatus.FAILED:
            launcher.stopped_early = True
            log.error(f"fail_fast: job #{idx} failed; {len(job_overrides) - offset - 1} jobs not started")
            break
    return runs


# -- worker processes -------------------------------------------------------------------
_worker_launcher = None


def _init_worker(launcher_bytes: Optional[bytes], singleton_state: Any) -> None:
    global _worker_launcher
    if launcher_bytes is not None:  # spawn: nothing is inherited
        import cloudpickle  # noqa: F401  (installed with submitit)

        Singleton.set_state(singleton_state)
        _worker_launcher = pickle.loads(launcher_bytes)
    setup_globals()


def _worker_job(overrides: Sequence[str], idx: int) -> JobReturn:
    ret = _run_one(_worker_launcher, overrides, idx)
    sys.stdout.flush()
    sys.stderr.flush()
    return _portable(ret)


def _portable(ret: JobReturn) -> JobReturn:
    """Make a JobReturn safe to send back: an unpicklable result or exception is replaced
    by its repr / formatted traceback instead of aborting the sweep."""
    value = ret._return_value
    try:
        pickle.dumps(value)
    except Exception:
        if isinstance(value, BaseException):
            text = "".join(traceback.format_exception(type(value), value, value.__traceback__))
            ret._return_value = JobError(text)
        else:
            ret._return_value = f"<unpicklable {type(value).__name__}: {value!r:.200}>"
    return ret


def _launch_in_pool(launcher, job_overrides, initial_job_idx, n_jobs) -> List[JobReturn]:
    global _worker_launcher
    # fork where it is safe (Linux): workers inherit the launcher, the ConfigStore rows and the
    # imported model file, and start in milliseconds. Elsewhere spawn, with everything pickled.
    if sys.platform.startswith("linux"):
        context = multiprocessing.get_context("fork")
        _worker_launcher, payload, state = launcher, None, None
    else:
        import cloudpickle

        context = multiprocessing.get_context("spawn")
        payload, state = cloudpickle.dumps(launcher), Singleton.get_state()
    results: List[Optional[JobReturn]] = [None] * len(job_overrides)
    with ProcessPoolExecutor(
        max_workers=min(n_jobs, len(job_overrides)) or 1,
        mp_context=context,
        initializer=_init_worker,
        initargs=(payload, state),
    ) as pool:
        pending: dict[Future, int] = {}
        for offset, overrides in enumerate(job_overrides):
            idx = initial_job_idx + offset
            log.info(f"\t#{idx} : {job_label(overrides)}")
            pending[pool.submit(_worker_job, list(overrides), idx)] = offset
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                offset = pending.pop(future)
                if future.cancelled():
                    continue
                ret = future.result()
                results[offset] = ret
                if launcher.fail_fast and ret.status == JobStatus.FAILED and not launcher.stopped_early:
                    launcher.stopped_early = True
                    cancelled = sum(f.cancel() for f in pending)
                    log.error(f"fail_fast: job #{initial_job_idx + offset} failed; {cancelled} jobs not started")
    return [r for r in results if r is not None]
