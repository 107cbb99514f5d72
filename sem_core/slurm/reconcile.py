"""Bring run records that still say QUEUED/RUNNING in line with Slurm and with heartbeats.

Used by ``sem status``, ``sem cancel`` and the launcher while it waits. Verdicts come from
the pure ``sem_core.slurm.status``; this module reads and writes the records.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sem_core import records
from sem_core.host import process_alive
from sem_core.run_status import RunStatus
from sem_core.slurm import status as st


def slurm_info(run: dict) -> dict | None:
    """The Slurm ids a run record carries (``meta.sem.slurm``), or None for a local run."""
    info = ((run.get("meta") or {}).get("sem") or {}).get("slurm")
    return info if isinstance(info, dict) and info.get("job_id") else None


def write_verdict(
    run_dir: Path,
    status: str,
    reason: str,
    only_if: Iterable[str] = st.ACTIVE,
    *,
    details: Sequence[str] = (),
    stop_time: str | None = None,
) -> bool:
    """Set a record's final status with the reason in ``fail_trace`` - only if it still has one
    of the ``only_if`` statuses when re-read (the job may have finished meanwhile).
    ``details`` (e.g. the last lines of a dead job's output) go into ``fail_trace`` before the
    reason, which stays its last entry: the line a sweep summary shows."""
    run_file = Path(run_dir) / records.RUN_FILE
    run = records.read_json(run_file)
    if run.get("status") not in set(only_if):
        return False
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    run["status"] = status
    # stop_time: when the run is known to have ended (a dead run's last heartbeat), else now
    run["stop_time"] = run.get("stop_time") or stop_time or now
    trace = list(run.get("fail_trace") or [])
    trace.extend(text if text.endswith("\n") else text + "\n" for text in details)
    trace.append(f"sem: {reason} (recorded {now})\n")
    run["fail_trace"] = trace
    records.atomic_write_json(run_file, run)
    return True


@dataclass
class RunState:
    record: records.RunRecord
    shown: str  # the status to show
    reason: str = ""
    updated: bool = False  # the record was rewritten with a verdict


def reconcile_runs(
    runs: Iterable[records.RunRecord],
    stale_after_s: float | None = None,
    write: bool = True,
    now: dt.datetime | None = None,
) -> tuple[list[RunState], list[str]]:
    """Every run with the status to show; active records Slurm (or a stale heartbeat) shows to
    be over are rewritten when ``write``. Returns the states and the Slurm query errors."""
    runs = list(runs)
    now = now or dt.datetime.now(dt.timezone.utc)
    active_slurm = [info for r in runs if r.status in st.ACTIVE and (info := slurm_info(r.run))]
    query = st.query_jobs(info["job_id"] for info in active_slurm) if active_slurm else st.QueryResult()
    out = []
    for rec in runs:
        info = slurm_info(rec.run)
        stop_time: str | None = None
        if rec.status not in st.ACTIVE:
            out.append(RunState(rec, rec.status))
            continue
        if info:
            verdict = st.reconcile_slurm(rec.status, query.states.get(str(info["job_id"])))
        else:
            interval = float(((rec.run.get("meta") or {}).get("sem") or {}).get("heartbeat_interval") or 10.0)
            limit = stale_after_s if stale_after_s is not None else max(10 * interval, 120.0)
            beat = records.parse_time(rec.run.get("heartbeat")) or records.parse_time(rec.run.get("start_time"))
            if rec.status == RunStatus.QUEUED:
                verdict = st.Verdict(RunStatus.QUEUED)
            else:
                alive = process_alive(((rec.run.get("meta") or {}).get("sem") or {}).get("process"))
                verdict = st.reconcile_local(rec.status, beat, now, limit, alive)
                stop_time = beat.isoformat() if beat is not None else None
        updated = False
        if write and verdict.write:
            updated = write_verdict(Path(rec.location), verdict.write, verdict.reason, stop_time=stop_time)
            if not updated:  # it finished while we looked: show what it says now
                rec = records.read_run(Path(rec.location))
                out.append(RunState(rec, rec.status))
                continue
        out.append(RunState(rec, verdict.status, verdict.reason, updated))
    return out, query.errors
