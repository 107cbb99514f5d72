"""One owner of a job's run, from the callback that starts it to its final record.

Hydra calls three parties for a job: the callback's ``on_job_start`` (sem attaches the
observers there, as Hydra intends), the task function (``main``), and the callback's
``on_job_end``. The ``RunLifecycle`` of the experiment is what they share: the callback
begins the run through it, the task enters it (and ends it INTERRUPTED on Ctrl-C), the
callback ends it from Hydra's job return, and whatever unwinds a job past Hydra (a signal
between two callbacks, a requeue) closes it through ``abandon`` or ``interrupt``. Whatever
happens, the run leaves a final record; nothing about it lives in a module global.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from sem_core.errors import NoActiveRun, SemError
from sem_core.run import RecordError, Run
from sem_core.run_status import RunStatus
from sem_core.signals import signals_held
from sem_core.stdio import OutputCopier

log = logging.getLogger(__name__)

# how long a job waits for a full disk to take the start of its record
START_RETRY_S = 30.0
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)

NO_RUN = (
    "no sem run is active: ex.log_scalar, ex.log_metrics, ex.add_artifact, ex.add_resource and ex.info "
    "work only inside main() while the model file runs (python m_<model>.py ...)"
)


class RunStartError(SemError):
    """Recording could not begin; the job fails with this instead of running unrecorded."""


class MainExited(SemError):
    """``main`` called ``sys.exit`` with a failure code (an argparse error, say)."""


class RunLifecycle:
    """The current job's run of one experiment in this process (at most one at a time)."""

    def __init__(self) -> None:
        self.run: Run | None = None
        self._start_error: BaseException | None = None
        # the job's claim of its row in MongoDB (sem_core.claims) and its place in the job
        # budget `sem run` shares between model files (sem_core.multi); both held until the run ends
        self.claim: Any = None
        self.slot: Any = None
        # the run holding the row's claim when this job lost it: the job returns it instead of running
        self.elsewhere: Any = None
        # this process's MongoDB clients (sem_core.observers.mongo.MongoClients), made by the first
        # job that syncs and reused by the next ones: one connection per worker, not per job
        self.mongo_clients: Any = None
        # this process's output copier (fd capture), forked at the first job and reused by the next
        self.output_copier: OutputCopier | None = OutputCopier() if hasattr(os, "fork") else None

    def __getstate__(self) -> dict:
        # the experiment travels to workers by pickle; a run (threads, open files) never does
        return {
            "run": None,
            "_start_error": None,
            "claim": None,
            "slot": None,
            "elsewhere": None,
            "mongo_clients": None,
            "output_copier": OutputCopier() if hasattr(os, "fork") else None,
        }

    # -- the callback ------------------------------------------------------------------
    def begin(self, make_run: Callable[[], Run], claim: Any = None, slot: Any = None) -> None:
        """Build and start the job's run. A failure is kept for the task to raise (Hydra would
        turn an exception of a callback into a warning and run the job unrecorded); a run
        that had started writing its record is ended FAILED.

        ``slot``: waited for first (a job that waits holds no claim, so another sweep may run
        the row meanwhile). ``claim``: taken before the record starts; lost to a live or
        completed run elsewhere, the job starts no run and returns that run (``elsewhere``)."""
        self.run, self._start_error, self.elsewhere = None, None, None
        self._release()
        if slot is not None:
            slot.acquire()
            self.slot = slot
        if claim is not None:
            holder = claim.take()
            if holder is not None:
                self.elsewhere = holder
                self._release()
                return
            self.claim = claim
        try:
            # a Ctrl-C or SIGTERM while the record starts is delivered once ``self.run`` is
            # set, so that whatever it unwinds can end the run (``abandon``)
            with signals_held():
                self._start(make_run)
        except Exception as exc:
            self._start_error = exc
            # into the job's log too (Hydra's <job>.log), where a user looks for why it failed
            log.error("sem could not start recording this run: %s: %s", type(exc).__name__, exc)
            run, self.run = self.run, None
            if run is not None and run.status == RunStatus.RUNNING:
                try:
                    run.fail(RunStartError(f"sem could not start recording this run: {exc}"))
                except Exception:  # noqa: BLE001 - the start error above is what the user must see
                    pass
            self._release(run)

    def _start(self, make_run: Callable[[], Run]) -> None:
        deadline = time.monotonic() + START_RETRY_S
        delay = 0.05
        while True:
            self.run = make_run()
            try:
                self.run.start()
                return
            except OSError as exc:
                # a disk full for a moment: nothing of the record was kept, so start again
                if exc.errno not in DISK_FULL or self.run.status != "NOT_STARTED" or time.monotonic() > deadline:
                    raise
                if delay == 0.05:
                    print(
                        f"sem: run {self.run.global_id}: {exc}; waiting for space to start its record",
                        file=sys.stderr,
                        flush=True,
                    )
                time.sleep(delay)
                delay = min(2 * delay, 2.0)

    def end(self, job_return: Any) -> None:
        """End the run from Hydra's job return: COMPLETED with main's result, or FAILED with
        its exception. A run whose record could not be written in full turns the job FAILED."""
        run, self.run = self.run, None
        if run is None:
            self._release()
            return
        try:
            self._end(run, job_return)
        finally:
            self._release(run)

    def _end(self, run: Run, job_return: Any) -> None:
        from hydra.core.utils import JobStatus

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
            return
        if job_return.status == JobStatus.COMPLETED and run.status != RunStatus.COMPLETED:
            job_return.status = JobStatus.FAILED
            job_return.return_value = RecordError(
                f"run {run.global_id} ended {run.status}: " + "; ".join(run.record_errors)
            )

    # -- the task ----------------------------------------------------------------------
    def enter(self) -> Run:
        """The run ``main`` is about to use; raises what kept recording from starting."""
        if self._start_error is not None:
            exc, self._start_error = self._start_error, None
            raise RunStartError(f"sem could not start recording this run: {type(exc).__name__}: {exc}") from exc
        if self.run is None:
            raise NoActiveRun(NO_RUN)
        return self.run

    def current(self) -> Run:
        if self.run is None:
            raise NoActiveRun(NO_RUN)
        return self.run

    # -- anything that unwinds the job -------------------------------------------------
    def interrupt(self, status: RunStatus = RunStatus.INTERRUPTED) -> None:
        """End the run as ``status`` (INTERRUPTED; QUEUED when Slurm requeues the job)."""
        run, self.run = self.run, None
        try:
            if run is not None and not run.recorded:
                run.interrupt(status)
        finally:
            self._release(run)

    def abandon(self, exc: BaseException) -> None:
        """The job unwound past Hydra's ``on_job_end`` (a signal outside ``main``, a
        ``SystemExit`` from a library): its run still ends, INTERRUPTED for a KeyboardInterrupt
        (Ctrl-C, SIGTERM), FAILED otherwise."""
        run, self.run = self.run, None
        try:
            if run is None or run.recorded:
                return
            if isinstance(exc, KeyboardInterrupt):
                run.interrupt()
            else:
                run.fail(exc)
        finally:
            self._release(run)

    def _release(self, run: Run | None = None) -> None:
        """The run has ended (or never started): mark the row's claim with its final status
        (removed when no run started) and give the job's slot back."""
        claim, self.claim = self.claim, None
        slot, self.slot = self.slot, None
        try:
            if claim is not None:
                status = run.status if run is not None and run.status != "NOT_STARTED" else None
                claim.release(status)
        finally:
            if slot is not None:
                slot.release()

    def take_elsewhere(self) -> Any:
        """The run elsewhere that holds this job's row (None: the job runs its row)."""
        holder, self.elsewhere = self.elsewhere, None
        return holder
