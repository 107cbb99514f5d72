"""Resuming and splitting sweeps: which planned jobs to skip.

``select_jobs`` is pure: planned jobs + the runs that already exist (from the local store and,
when configured, MongoDB) + the settings -> the jobs to run and the skipped ones with a reason.

- ``sem.skip_completed=true``: skip a row when its experiment_id already has a COMPLETED run of
  the same model file (by anyone, anywhere: local store or the database);
- ``sem.rerun=failed``: run only rows whose latest run ended without completing (FAILED,
  INTERRUPTED, TIMEOUT, and the KILLED/CANCELLED a scheduler reports);
- ``sem.rerun=missing``: run only rows that were never run (no record in any status).

The settings combine as filters: a row runs only if every one of them lets it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sem_core import records
from sem_core.errors import ConfigError
from sem_core.run_status import FAILED_STATUSES, RunStatus

RERUN_CHOICES = ("failed", "missing")


@dataclass(frozen=True)
class ExistingRun:
    experiment_id: str
    model: str | None  # model file name, e.g. "m_linear.py"
    status: str
    global_id: str
    where: str = "local"  # "local" or "mongo"
    start_time: Any = None  # ISO text or datetime; with global_id, decides which run is the latest


@dataclass(frozen=True)
class Skipped:
    order_id: int
    experiment_id: str
    reason: str  # e.g. "COMPLETED as 20260101T000000-ab12cd34ef56 (mongo)"


@dataclass(frozen=True)
class Selection:
    to_run: list  # the planned jobs to launch, in plan order
    skipped: list[Skipped]


def validate_rerun(value: str | None) -> str | None:
    if value is None or value == "" or str(value).lower() in ("none", "null", "all"):
        return None
    if value not in RERUN_CHOICES:
        raise ConfigError(
            f"sem.rerun={value!r} is not one of {', '.join(RERUN_CHOICES)}: "
            "use sem.rerun=failed (only rows whose latest run failed) or sem.rerun=missing (only rows never run)"
        )
    return value


def select_jobs(
    jobs: Sequence[Any],
    existing: Iterable[ExistingRun],
    model: str | None,
    skip_completed: bool = False,
    rerun: str | None = None,
) -> Selection:
    """Split ``jobs`` (objects with ``order_id`` and ``experiment_id``) into those to run and
    those skipped. Only runs of ``model`` count (runs of other model files never match)."""
    rerun = validate_rerun(rerun)
    if not skip_completed and rerun is None:
        return Selection(to_run=list(jobs), skipped=[])
    by_id: dict[str, list[ExistingRun]] = {}
    for run in existing:
        if model is not None and run.model is not None and run.model != model:
            continue
        by_id.setdefault(run.experiment_id, []).append(run)
    for runs in by_id.values():
        runs.sort(key=lambda r: records.recency(r.start_time, r.global_id))

    to_run, skipped = [], []
    for job in jobs:
        runs = by_id.get(job.experiment_id, [])
        reason = _skip_reason(runs, skip_completed, rerun)
        if reason is None:
            to_run.append(job)
        else:
            skipped.append(Skipped(order_id=job.order_id, experiment_id=job.experiment_id, reason=reason))
    return Selection(to_run=to_run, skipped=skipped)


def _skip_reason(runs: list[ExistingRun], skip_completed: bool, rerun: str | None) -> str | None:
    if skip_completed:
        done = [r for r in runs if r.status == RunStatus.COMPLETED]
        if done:
            return f"COMPLETED as {done[-1].global_id} ({done[-1].where})"
    if rerun == "missing" and runs:
        latest = runs[-1]
        return f"already run: {latest.status} as {latest.global_id} ({latest.where})"
    if rerun == "failed":
        if not runs:
            return "never run (sem.rerun=failed runs only rows whose latest run failed)"
        latest = runs[-1]
        if latest.status not in FAILED_STATUSES:
            return f"latest run is {latest.status} ({latest.global_id}, {latest.where})"
    return None


def existing_from_records(records: Iterable[Any], where: str = "local") -> list[ExistingRun]:
    """``records.RunRecord``-like objects (``experiment_id``, ``model``, ``status``,
    ``global_id``, ``start_time``) -> ``ExistingRun``; records without an experiment_id are ignored."""
    return [
        ExistingRun(rec.experiment_id, rec.model, rec.status, rec.global_id, where, rec.start_time)
        for rec in records
        if rec.experiment_id
    ]


# ------------------------------------------------------------------------------ the I/O edge
def load_existing(
    store: Path,
    mongo_settings: Any = None,
    experiment_ids: Sequence[str] | None = None,
    on_problem: records.OnProblem | None = None,
) -> list[ExistingRun]:
    """The runs already recorded in the local store and, when a database is configured
    (``sem_core.mongo.connection.MongoSettings``), in MongoDB; there only those of ``experiment_ids``.
    A local record that cannot be read counts as no run (its row runs again) and goes to
    ``on_problem`` (default: one warning line on stderr per record)."""
    on_problem = on_problem or records.ProblemLog("sem")
    existing = existing_from_records(records.iter_runs(store, on_problem), "local")
    if mongo_settings is not None:
        existing += existing_from_records(_mongo_records(mongo_settings, experiment_ids), "mongo")
    return existing


def _mongo_records(settings: Any, experiment_ids: Sequence[str] | None) -> list[Any]:
    import pymongo.errors

    from sem_core.mongo import connection, reader

    query = {"config.experiment_id": {"$in": list(experiment_ids)}} if experiment_ids is not None else None
    try:
        return list(reader.iter_runs(settings.url, query))
    except pymongo.errors.PyMongoError as exc:
        raise ConfigError(
            f"sem.skip_completed/sem.rerun: cannot read the runs in MongoDB ({settings.display}, configured in "
            f"{settings.source}): {connection.describe_error(exc, settings)}; start the database, or unset it to "
            "decide from the local store only"
        ) from None


def resume_sweep(jobs: Sequence[Any], store: Path, sem_cfg: Any, model: str, experiment_dir: Any = None) -> Selection:
    """``select_jobs`` with the sweep's settings and the runs on disk and in the configured MongoDB."""
    skip_completed = bool(sem_cfg.get("skip_completed", False))
    rerun = validate_rerun(sem_cfg.get("rerun"))
    if not skip_completed and rerun is None:
        return Selection(to_run=list(jobs), skipped=[])
    from sem_core.mongo import connection

    mongo_cfg = sem_cfg.get("mongo") or {}
    settings = connection.resolve_settings(override_url=mongo_cfg.get("url"), experiment_dir=experiment_dir)
    existing = load_existing(store, settings, sorted({j.experiment_id for j in jobs}))
    selection = select_jobs(jobs, existing, model, skip_completed=skip_completed, rerun=rerun)
    if skip_completed and settings is not None and selection.to_run:
        selection = _skip_claimed(selection, settings, model, sem_cfg)
    return selection


def _skip_claimed(selection: Selection, settings: Any, model: str, sem_cfg: Any) -> Selection:
    """Rows whose claim a live run elsewhere holds are skipped up front, so the plan says so
    (a row claimed between now and its job's start is caught by the job's own claim)."""
    import pymongo.errors

    from sem_core import claims

    try:
        held = claims.live_claims(
            settings, model, [j.experiment_id for j in selection.to_run], claims.stale_after_s(sem_cfg)
        )
    except pymongo.errors.PyMongoError:
        return selection  # each job claims its row again (and warns) when it starts
    if not held:
        return selection
    to_run = [j for j in selection.to_run if j.experiment_id not in held]
    skipped = list(selection.skipped) + [
        Skipped(order_id=j.order_id, experiment_id=j.experiment_id, reason=held[j.experiment_id].note)
        for j in selection.to_run
        if j.experiment_id in held
    ]
    skipped.sort(key=lambda s: s.order_id)
    return Selection(to_run=to_run, skipped=skipped)


def format_skipped(skipped: Sequence[Skipped]) -> str:
    """The skipped rows as lines for the sweep summary."""
    if not skipped:
        return ""
    lines = [f"skipped {len(skipped)} row(s) (sem.skip_completed / sem.rerun):"]
    lines += [f"  order_id {s.order_id}  {s.experiment_id}  {s.reason}" for s in skipped]
    return "\n".join(lines)
