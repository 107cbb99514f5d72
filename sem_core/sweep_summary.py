"""The summary printed when a sweep ends: a line per job from its run record (the record is
the truth) and its launcher's return, then one line of counts.

Rows are read one at a time and not kept: a sweep of 10,000 rows holds the summary's counts
and the few lines it prints. Up to ``ROWS_LISTED`` jobs, every job has its line; beyond that
only the jobs that failed (or whose row ran elsewhere) do, up to ``ROWS_LISTED``, and the
completed, queued and running ones are counted: a list of 10,000 completed jobs hides the
three that failed, and ``sem ls`` lists every run."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sem_core import records
from sem_core.run_status import ACTIVE_STATUSES, RunStatus


def _error_of(run: dict, ret: Any) -> str:
    """Why a job did not complete: the last line of its record's trace, else the exception
    its launcher returned (an error before recording began: the run has no record)."""
    trace = run.get("fail_trace") or []
    if trace and trace[-1].strip():
        return trace[-1].strip().splitlines()[-1]
    value = getattr(ret, "_return_value", None)
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}".strip()
    return ""


ERROR_COLUMN_CHARS = 100  # piped output (no terminal, no $COLUMNS); a terminal gets what fits
ROWS_LISTED = 50
STATES = ("done", "failed", "active", "elsewhere")


def summary_rows(planned: Iterable[dict], outcomes: Iterable[Any], store: Path) -> Iterator[dict]:
    """One entry per job, made as it is read, from its run record (the record is the truth)
    and its launcher's return (a JobReturn, a JobStatus for a job that completed with nothing
    more to say, None for a job not launched): order_id, experiment_id, global_id, status,
    duration, error, and its ``state``: ``done``, ``failed``, ``active`` (submitted, not over
    yet) or ``elsewhere`` (another run holds the row's claim: nothing ran here)."""
    from hydra.core.utils import JobStatus

    # a job returns an Elsewhere only when its row's claim was taken in MongoDB, and unpickling
    # one loads sem_core.claims: a sweep that never loaded the module has none to look for
    claims = sys.modules.get("sem_core.claims")
    elsewhere_type = claims.Elsewhere if claims is not None else ()
    for record, ret in zip(planned, outcomes):
        run_file = store / record["global_id"] / records.RUN_FILE
        try:
            run = records.read_json(run_file) if run_file.exists() else {}
        except (OSError, ValueError) as exc:
            run = {"status": "UNREADABLE", "fail_trace": [f"{exc}\n"]}
        value = getattr(ret, "_return_value", None)
        if not run and isinstance(value, elsewhere_type):
            yield (
                {
                    "order_id": record["order_id"],
                    "experiment_id": record["experiment_id"],
                    "global_id": record["global_id"],
                    "status": "SKIPPED",
                    "duration": None,
                    "error": value.note,
                    "state": "elsewhere",
                }
            )
            continue
        if run:
            status = records.observed_status(run)  # KILLED: its worker died before recording its end
        elif ret is None:
            status = "NOT RUN"
        else:
            status = "NO RECORD"
        job_failed = ret is not None and getattr(ret, "status", None) == JobStatus.FAILED
        if status in ACTIVE_STATUSES and not job_failed:
            state = "active"
        elif status != RunStatus.COMPLETED or job_failed:
            state = "failed"
        else:
            state = "done"
        yield {
            "order_id": record["order_id"],
            "experiment_id": record["experiment_id"],
            "global_id": record["global_id"],
            "status": status,
            "duration": records.run_duration(run),
            "error": _error_of(run, ret) if state == "failed" else "",
            "state": state,
            "no_record": not run,
        }


class SweepSummary:
    """The counts of a sweep's jobs by state and the lines its summary lists, taken from the
    rows (``summary_rows``) one at a time."""

    def __init__(self, listed: int = ROWS_LISTED) -> None:
        self.listed = listed
        self.count = dict.fromkeys(STATES, 0)
        self.first: list[dict] = []  # the first rows, while there are at most `listed`
        self.troubled: list[dict] = []  # the first `listed` rows that failed or ran elsewhere

    def add(self, row: dict) -> None:
        self.count[row["state"]] += 1
        if len(self.first) <= self.listed:
            self.first.append(row)
        if row["state"] in ("failed", "elsewhere") and len(self.troubled) < self.listed:
            self.troubled.append(row)

    def extend(self, rows: Iterable[dict]) -> SweepSummary:
        for row in rows:
            self.add(row)
        return self

    @property
    def total(self) -> int:
        return sum(self.count.values())

    @property
    def failed(self) -> bool:
        return self.count["failed"] > 0

    def text(self, where: str, model_column: bool = False, skipped: int = 0, rerun_hint: bool = False) -> str:
        """The summary table, reasons too long for the table below it, and one line of counts;
        ``rerun_hint``: when a job did not complete, say how to run just those again."""
        count = self.count
        every_row = self.total <= self.listed
        lines = _table(self.first if every_row else self.troubled, model_column)
        if not every_row:
            left = count["failed"] + count["elsewhere"] - len(self.troubled)
            if left:
                lines.append(f"... and {left} more jobs that did not complete (sem ls --status STATUS lists them)")
            if count["done"]:
                lines.append(f"{count['done']} completed jobs not listed (sem ls lists every run)")
            if count["active"]:
                lines.append(f"{count['active']} queued or running jobs not listed (sem status follows them)")
        ran = self.total - count["elsewhere"]
        if not self.total and skipped:
            counts = f"all {skipped} selected rows were skipped (listed above); nothing to run"
        else:
            counts = f"{count['done']} of {ran} jobs completed, {count['failed']} not completed"
            if count["active"]:
                counts += f", {count['active']} queued or running"
            if count["elsewhere"]:
                counts += f"; {count['elsewhere']} row(s) skipped: another run holds them (see error)"
        lines.append(f"{counts}; runs in {where}")
        if rerun_hint and count["failed"]:
            lines.append("to run them again: the same command with sem.skip_completed=true")
        return "\n".join(lines)


def format_summary(rows: Iterable[dict], where: str, model_column: bool = False, skipped: int = 0) -> str:
    """The summary of a sweep's rows (``model_column``: of several model files, ``sem run``)."""
    return SweepSummary().extend(rows).text(where, model_column, skipped)


def _table(rows: Sequence[dict], model_column: bool) -> list[str]:
    """The table of ``rows`` and, below it, the reasons too long for it."""
    header = (("model",) if model_column else ()) + ("order_id", "experiment_id", "status", "duration", "error")
    table = []
    for r in rows:
        duration = records.format_duration(r.get("duration"))
        table.append(
            ((r["model"],) if model_column else ())
            + (str(r["order_id"]), r["experiment_id"], r["status"], duration, r.get("error") or "")
        )
    widths = [max(len(h), *(len(t[i]) for t in table)) if table else len(h) for i, h in enumerate(header)]
    # the error column gets what the terminal has left (at least 20 characters); a longer
    # error is cut there and printed in full below the table
    columns = shutil.get_terminal_size((0, 0)).columns
    room = max(20, columns - sum(w + 2 for w in widths[:-1])) if columns else ERROR_COLUMN_CHARS
    long_reasons = []
    for r, t in zip(rows, table):
        error = t[-1]
        if len(error) > room or (error and r.get("no_record") and r["state"] == "failed"):
            long_reasons.append(f"{r['model'] + ' ' if model_column else ''}order_id {r['order_id']}: {error}")
    table = [t[:-1] + (t[-1] if len(t[-1]) <= room else t[-1][: room - 3] + "...",) for t in table]
    widths[-1] = max([len(header[-1]), *(len(t[-1]) for t in table)])
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()] if table else []
    lines += ["  ".join(c.ljust(w) for c, w in zip(t, widths)).rstrip() for t in table]
    return lines + long_reasons
