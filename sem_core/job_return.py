"""A job's ``JobReturn`` made safe to send to another process (local workers, Slurm tasks),
and a launch's returns kept as lean as its sweep allows (``JobReturns``)."""

from __future__ import annotations

import pickle
import sys
import traceback
from array import array
from collections.abc import Sequence

from hydra.core.utils import JobReturn, JobStatus

from sem_core.sequences import MadeWhenRead


class JobError(Exception):
    """A job's exception that could not travel back by pickle, with its traceback."""


def portable(ret: JobReturn) -> JobReturn:
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


class JobReturns(MadeWhenRead[JobReturn]):
    """The returns of a launch's jobs, in job order, keeping of a sem job only what its sweep
    reads.

    A sem job's outcome is in its run record (its status, its result, its error); the sweep's
    summary reads the record and, from the JobReturn, only whether the job failed, its
    exception and whether another run held its row. Kept whole, every JobReturn (the job's
    overrides, its folder, whatever ``main`` returned) grew a sweep of 10,000 rows by about
    10 MB. So a completed job is kept as its position, and read back as a JobReturn with its
    overrides, status COMPLETED and no return value; a failed one, or one whose row another run
    holds, is kept whole. ``keep_all``: keep every JobReturn as it is (any other Hydra app,
    as Hydra's launchers do)."""

    def __init__(self, job_overrides: Sequence[Sequence[str]], keep_all: bool = False) -> None:
        self.job_overrides = job_overrides
        self.keep_all = keep_all
        self._offsets = array("l")  # the launched jobs' offsets in job_overrides, in order
        self._kept: dict[int, JobReturn] = {}  # offset -> a return kept whole

    def add(self, offset: int, ret: JobReturn) -> None:
        """Job ``job_overrides[offset]`` returned ``ret``."""
        self._offsets.append(offset)
        if self.keep_all or read_by_sweep(ret):
            self._kept[offset] = ret

    def in_job_order(self) -> JobReturns:
        """The same returns ordered by job (workers finish jobs out of order)."""
        ordered = JobReturns(self.job_overrides, self.keep_all)
        ordered._offsets = array("l", sorted(self._offsets))
        ordered._kept = self._kept
        return ordered

    def __len__(self) -> int:
        return len(self._offsets)

    def _item(self, i: int) -> JobReturn:
        offset = self._offsets[i]
        kept = self._kept.get(offset)
        if kept is not None:
            return kept
        return JobReturn(overrides=list(self.job_overrides[offset]), status=JobStatus.COMPLETED)


def read_by_sweep(ret: JobReturn) -> bool:
    """Whether a sem sweep reads more of this job's return than that it completed: the job
    failed (its exception), or another run held its row (``sem_core.claims.Elsewhere``; looked
    up, not imported: a sweep that never loaded the module, no MongoDB, has no such return)."""
    if ret.status != JobStatus.COMPLETED:
        return True
    claims = sys.modules.get("sem_core.claims")
    return claims is not None and isinstance(ret._return_value, claims.Elsewhere)
