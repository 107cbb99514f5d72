"""The status of a run, one enum for every layer (records, observers, launchers, commands).

A ``str`` enum: a member *is* its string, so records on disk and documents in MongoDB keep the
words sacred and Omniboard know (``"COMPLETED"``), a status read back from a record (a plain
``str``) compares equal to the member, and members work as dict keys and set items next to plain
strings. ``str()`` and f-strings give the bare word on every Python version.

Lifecycle: QUEUED (row claimed, job not started) -> RUNNING -> one of the finished statuses.
"""

from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"  # the model raised, or the job ended without recording its end
    INTERRUPTED = "INTERRUPTED"  # stopped by a signal (Ctrl-C, SIGTERM) and recorded it
    CANCELLED = "CANCELLED"  # scancel / sem cancel
    TIMEOUT = "TIMEOUT"  # Slurm's time limit
    KILLED = "KILLED"  # the process died without recording its end (SIGKILL, out of memory, node lost)

    def __str__(self) -> str:
        return self.value

    def __format__(self, format_spec: str) -> str:
        return str.__format__(self.value, format_spec)


ACTIVE_STATUSES: tuple[RunStatus, ...] = (RunStatus.QUEUED, RunStatus.RUNNING)
FINISHED_STATUSES: tuple[RunStatus, ...] = tuple(s for s in RunStatus if s not in ACTIVE_STATUSES)
FAILED_STATUSES: tuple[RunStatus, ...] = tuple(s for s in FINISHED_STATUSES if s is not RunStatus.COMPLETED)
"""Ended without completing: the runs ``--rerun failed`` and ``sem clean`` pick."""
