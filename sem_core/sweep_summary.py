"""The summary table printed when a sweep ends: one line per job from its run record (the
record is the truth) and its launcher's return."""

from __future__ import annotations

import sys
from collections.abc import Sequence
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


ERROR_COLUMN_CHARS = 100


def summary_rows(planned: Sequence[dict], outcomes: Sequence[Any], store: Path) -> list[dict]:
    """One entry per job from its run record (the record is the truth) and its launcher's
    return: order_id, experiment_id, global_id, status, duration, error, and its ``state``:
    ``done``, ``failed``, ``active`` (submitted, not over yet) or ``elsewhere`` (another run
    holds the row's claim: nothing ran here)."""
    from hydra.core.utils import JobStatus

    # a job returns an Elsewhere only when its row's claim was taken in MongoDB, and unpickling
    # one loads sem_core.claims: a sweep that never loaded the module has none to look for
    claims = sys.modules.get("sem_core.claims")
    elsewhere_type = claims.Elsewhere if claims is not None else ()
    out = []
    for record, ret in zip(planned, outcomes):
        run_file = store / record["global_id"] / records.RUN_FILE
        try:
            run = records.read_json(run_file) if run_file.exists() else {}
        except (OSError, ValueError) as exc:
            run = {"status": "UNREADABLE", "fail_trace": [f"{exc}\n"]}
        value = getattr(ret, "_return_value", None)
        if not run and isinstance(value, elsewhere_type):
            out.append(
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
        out.append(
            {
                "order_id": record["order_id"],
                "experiment_id": record["experiment_id"],
                "global_id": record["global_id"],
                "status": status,
                "duration": records.run_duration(run),
                "error": _error_of(run, ret) if state == "failed" else "",
                "state": state,
                "no_record": not run,
            }
        )
    return out


def format_summary(rows: Sequence[dict], where: str, model_column: bool = False, skipped: int = 0) -> str:
    """The summary table of a sweep (``model_column``: of several model files, ``sem run``),
    reasons too long for the table below it, and one line of counts."""
    header = (("model",) if model_column else ()) + ("order_id", "experiment_id", "status", "duration", "error")
    table = []
    long_reasons = []
    for r in rows:
        error = r.get("error") or ""
        if len(error) > ERROR_COLUMN_CHARS or (error and r.get("no_record") and r["state"] == "failed"):
            long_reasons.append(f"{r['model'] + ' ' if model_column else ''}order_id {r['order_id']}: {error}")
        shown = error if len(error) <= ERROR_COLUMN_CHARS else error[: ERROR_COLUMN_CHARS - 3] + "..."
        duration = records.format_duration(r.get("duration"))
        table.append(
            ((r["model"],) if model_column else ())
            + (str(r["order_id"]), r["experiment_id"], r["status"], duration, shown)
        )
    widths = [max(len(h), *(len(t[i]) for t in table)) if table else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()] if table else []
    lines += ["  ".join(c.ljust(w) for c, w in zip(t, widths)).rstrip() for t in table]
    lines += long_reasons
    count = {state: sum(1 for r in rows if r["state"] == state) for state in ("done", "failed", "active", "elsewhere")}
    ran = len(rows) - count["elsewhere"]
    if not rows and skipped:
        counts = f"all {skipped} selected rows were skipped (listed above); nothing to run"
    else:
        counts = f"{count['done']} of {ran} jobs completed, {count['failed']} not completed"
        if count["active"]:
            counts += f", {count['active']} queued or running"
        if count["elsewhere"]:
            counts += f"; {count['elsewhere']} row(s) skipped: another run holds them (see error)"
    lines.append(f"{counts}; runs in {where}")
    return "\n".join(lines)
