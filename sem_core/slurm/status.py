"""Slurm job states -> sem run statuses, and the reconciliation of run records with Slurm.

Pure functions except ``query_jobs`` (one ``sacct`` call, one ``squeue`` call when needed).
A state Slurm did not report, or a query that failed, maps to ``UNKNOWN``: it is shown as
unknown and never written into a record (SEML marks pending jobs KILLED when squeue parsing
fails, seml #18, #90; sem does not guess).
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sem_core.run_status import ACTIVE_STATUSES, RunStatus

UNKNOWN = "UNKNOWN"

# Slurm job states (sacct/squeue long names) -> sem statuses.
SLURM_TO_SEM = {
    # waiting to run
    "PENDING": RunStatus.QUEUED,
    "REQUEUED": RunStatus.QUEUED,
    "REQUEUE_FED": RunStatus.QUEUED,
    "REQUEUE_HOLD": RunStatus.QUEUED,
    "RESV_DEL_HOLD": RunStatus.QUEUED,
    "CONFIGURING": RunStatus.QUEUED,
    "SPECIAL_EXIT": RunStatus.QUEUED,
    # running (or stopped while holding its allocation)
    "RUNNING": RunStatus.RUNNING,
    "COMPLETING": RunStatus.RUNNING,
    "SIGNALING": RunStatus.RUNNING,
    "STAGE_OUT": RunStatus.RUNNING,
    "RESIZING": RunStatus.RUNNING,
    "SUSPENDED": RunStatus.RUNNING,
    "STOPPED": RunStatus.RUNNING,
    # finished
    "COMPLETED": RunStatus.COMPLETED,
    "FAILED": RunStatus.FAILED,
    "CANCELLED": RunStatus.CANCELLED,
    "TIMEOUT": RunStatus.TIMEOUT,
    "DEADLINE": RunStatus.TIMEOUT,
    "OUT_OF_MEMORY": RunStatus.KILLED,
    "NODE_FAIL": RunStatus.KILLED,
    "BOOT_FAIL": RunStatus.KILLED,
    "PREEMPTED": RunStatus.KILLED,
    "REVOKED": RunStatus.KILLED,
}
ACTIVE = ACTIVE_STATUSES


def sem_status(slurm_state: str | None) -> str:
    """``'CANCELLED by 0'`` -> ``'CANCELLED'``; an unreported or unheard-of state -> UNKNOWN."""
    if not slurm_state:
        return UNKNOWN
    word = slurm_state.strip().split(" ")[0].rstrip("+").upper()
    return SLURM_TO_SEM.get(word, UNKNOWN)


@dataclass(frozen=True)
class SlurmJobState:
    job_id: str  # "123" or "123_4" (array task)
    state: str  # Slurm's word, e.g. "RUNNING", "CANCELLED by 0"
    exit_code: str = ""
    node: str = ""
    partition: str = ""
    reason: str = ""

    @property
    def status(self) -> str:
        return sem_status(self.state)


_ARRAY_RANGE_RE = re.compile(r"^(?P<main>\d+)_\[(?P<ranges>[0-9,\-]+)(%\d+)?\]$")


def expand_job_id(job_id: str) -> list[str]:
    """``'12_[3-5,9%2]'`` -> ``['12_3', '12_4', '12_5', '12_9']``; plain ids unchanged."""
    match = _ARRAY_RANGE_RE.match(job_id.strip())
    if match is None:
        return [job_id.strip()]
    out = []
    for part in match.group("ranges").split(","):
        if "-" in part:
            lo, hi = part.split("-", 1)
            out += [f"{match.group('main')}_{i}" for i in range(int(lo), int(hi) + 1)]
        elif part:
            out.append(f"{match.group('main')}_{int(part)}")
    return out


SACCT_FIELDS = ("JobID", "State", "ExitCode", "NodeList", "Partition", "Reason")
SQUEUE_FORMAT = "%i|%T|%N|%P|%r"


def parse_sacct(text: str) -> dict[str, SlurmJobState]:
    """``sacct -X --parsable2 -o JobID,State,ExitCode,NodeList,Partition,Reason`` (with header)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return {}
    names = lines[0].split("|")
    out: dict[str, SlurmJobState] = {}
    for line in lines[1:]:
        values = dict(zip(names, line.split("|")))
        raw_id = values.get("JobID", "")
        if not raw_id or "." in raw_id:  # job steps (123.batch) are not jobs
            continue
        node = values.get("NodeList", "")
        for job_id in expand_job_id(raw_id):
            out[job_id] = SlurmJobState(
                job_id=job_id,
                state=values.get("State", ""),
                exit_code=values.get("ExitCode", ""),
                node="" if node == "None assigned" else node,
                partition=values.get("Partition", ""),
                reason=values.get("Reason", ""),
            )
    return out


def parse_squeue(text: str) -> dict[str, SlurmJobState]:
    """``squeue -h -o '%i|%T|%N|%P|%r'`` (no header)."""
    out: dict[str, SlurmJobState] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 2 or not parts[0]:
            continue
        parts += [""] * (5 - len(parts))
        for job_id in expand_job_id(parts[0]):
            out[job_id] = SlurmJobState(job_id, parts[1], "", parts[2], parts[3], parts[4])
    return out


def array_parent(job_id: str) -> str:
    """``'123_4'`` -> ``'123'`` (the id sacct/squeue/scancel accept for the whole array)."""
    return job_id.split("_", 1)[0]


@dataclass
class QueryResult:
    states: dict[str, SlurmJobState] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # failed queries, reported as they are

    def status_of(self, job_id: str) -> str:
        state = self.states.get(job_id)
        return state.status if state is not None else UNKNOWN


def _run(cmd: Sequence[str], timeout: float) -> tuple[str | None, str | None]:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        return None, f"{cmd[0]}: not found on PATH"
    except subprocess.TimeoutExpired:
        return None, f"{cmd[0]}: no answer within {timeout:.0f} s"
    if out.returncode != 0:
        return None, f"{' '.join(cmd[:2])}...: exit {out.returncode}: {(out.stderr or out.stdout).strip()[:300]}"
    return out.stdout, None


def query_jobs(job_ids: Iterable[str], timeout: float = 60.0) -> QueryResult:
    """Ask Slurm about ``job_ids`` ("123" or "123_4"): sacct for everything (finished jobs
    too), then squeue for the ids sacct does not know yet (accounting lags a few seconds, and
    clusters without accounting have no sacct) or says have ended. squeue is the controller's
    live view and wins for a job it still lists: while a job is requeued, sacct briefly
    reports the attempt that just stopped (FAILED, exit 1:0) although the job is pending
    again. If squeue cannot be asked (e.g. slurmctld too busy to answer), sacct's ended
    states are not confirmed and stay UNKNOWN. What neither reports stays UNKNOWN."""
    wanted = sorted(set(job_ids))
    result = QueryResult()
    if not wanted:
        return result
    parents = ",".join(sorted({array_parent(j) for j in wanted}))
    text, error = _run(["sacct", "-X", "--parsable2", "-o", ",".join(SACCT_FIELDS), "-j", parents], timeout)
    if error:
        result.errors.append(error)
    else:
        result.states.update(parse_sacct(text or ""))
    if any(j not in result.states or result.states[j].status not in ACTIVE for j in wanted):
        text, error = _run(["squeue", "-h", "-r", "-o", SQUEUE_FORMAT, "-j", parents], timeout)
        if error and "Invalid job id" in error:
            pass  # squeue lists none of them: sacct's word stands, the rest stay UNKNOWN
        elif error:
            result.errors.append(error)
            result.states = live_states(wanted, result.states, None)
        else:
            result.states = live_states(wanted, result.states, parse_squeue(text or ""))
    return result


def live_states(
    wanted: Iterable[str], accounting: Mapping[str, SlurmJobState], queue: Mapping[str, SlurmJobState] | None
) -> dict[str, SlurmJobState]:
    """sacct's states of ``wanted`` jobs corrected by squeue's: a job squeue lists is in the
    queue whatever sacct says (it may still report the attempt a requeue just stopped).
    ``queue`` None: squeue did not answer, so no job is known to have left the queue; sacct's
    ended states are dropped (UNKNOWN) and only its live ones are kept."""
    out = {j: accounting[j] for j in wanted if j in accounting}
    if queue is None:
        return {j: state for j, state in out.items() if state.status in ACTIVE}
    for job_id in wanted:
        if job_id in queue and (job_id not in out or out[job_id].status not in ACTIVE):
            out[job_id] = queue[job_id]
    return out


def still_in_queue(job_ids: Iterable[str], timeout: float = 60.0) -> tuple[set[str] | None, str | None]:
    """The ids squeue still lists (pending, running or completing); None and the error if
    squeue failed."""
    wanted = set(job_ids)
    parents = ",".join(sorted({array_parent(j) for j in wanted}))
    text, error = _run(["squeue", "-h", "-r", "-o", SQUEUE_FORMAT, "-j", parents], timeout)
    if error:
        if "Invalid job id" in error:  # every one of them has left the queue
            return set(), None
        return None, error
    return {j for j in parse_squeue(text or "") if j in wanted or array_parent(j) in wanted}, None


# -- reconciliation ----------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    status: str  # what `sem status` shows
    write: str | None = None  # new record status to write, None = leave the record alone
    reason: str = ""  # why (shown, and written into the record's fail_trace)


def reconcile_slurm(record_status: str, slurm: SlurmJobState | None) -> Verdict:
    """A record's status against what Slurm says about its job.

    Only records still QUEUED/RUNNING are reconciled. An active record whose job Slurm
    reports finished is written with Slurm's verdict (a job killed by Slurm never reaches
    the code that would have recorded its end); an unknown Slurm state leaves it alone."""
    if record_status not in ACTIVE:
        return Verdict(record_status)
    if slurm is None:
        return Verdict(record_status, None, "Slurm does not report this job (unknown)")
    status = slurm.status
    if status == UNKNOWN:
        return Verdict(record_status, None, f"unrecognised Slurm state {slurm.state!r}")
    if status in ACTIVE:
        # the worker writes RUNNING itself; a record a step behind is shown as Slurm sees it
        return Verdict(status)
    where = f"Slurm job {slurm.job_id}" + (f" on {slurm.node}" if slurm.node else "")
    exit_part = f", exit code {slurm.exit_code}" if slurm.exit_code and slurm.exit_code != "0:0" else ""
    if status == RunStatus.COMPLETED:
        # the job script ended cleanly but the run never recorded its end (e.g. the worker
        # could not import the model file, or the process was killed between jobs of a pack)
        return Verdict(
            RunStatus.FAILED, RunStatus.FAILED, f"{where} ended COMPLETED but the run never recorded its end"
        )
    return Verdict(status, status, f"{where} ended {slurm.state}{exit_part}")


def reconcile_local(
    record_status: str,
    last_beat: dt.datetime | None,
    now: dt.datetime,
    stale_after_s: float,
    process_alive: bool | None,
) -> Verdict:
    """A local (non-Slurm) run against its heartbeat and, when it ran on this host, its process.

    ``process_alive`` is None when it cannot be checked (another host, no pid recorded)."""
    if record_status != RunStatus.RUNNING:
        return Verdict(record_status)
    if process_alive is True:
        return Verdict(RunStatus.RUNNING)
    if process_alive is False:
        return Verdict(
            RunStatus.KILLED, RunStatus.KILLED, "the process of this run is gone and it never recorded its end"
        )
    if last_beat is None:
        return Verdict(RunStatus.RUNNING, None, "no heartbeat recorded yet")
    age = (now - last_beat).total_seconds()
    if age > stale_after_s:
        return Verdict(
            RunStatus.KILLED,
            RunStatus.KILLED,
            f"no heartbeat for {age:.0f} s (more than {stale_after_s:.0f} s): the run is dead",
        )
    return Verdict(RunStatus.RUNNING)
