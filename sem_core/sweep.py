"""The body of sem's sweeper: plan the rows, register them, launch, summarise.

Each planned row is registered as a ConfigStore option ``sem_row/j<k>`` (package
``_global_``) and the job's only row override is ``+sem_row=j<k>``: values never go through
override strings (no quoting or type mangling), and Hydra composes the row like any config.
Jobs are not composed up front (BasicSweeper does, ~10-100 ms per job, hydra #1324).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import Any, List, Optional, Sequence

from hydra.core.config_store import ConfigNode
from omegaconf import OmegaConf

from sem_core import ids, records
from sem_core.errors import ConfigError, warn
from sem_core.experiment import ROW_GROUP
from sem_core.plan import PlannedJob, find_duplicates, job_record, plan_jobs
from sem_core.schema import validate_row

log = logging.getLogger(__name__)

SWEEP_MANIFEST = "sem_sweep.json"


def _escape_interpolations(value: Any) -> Any:
    """Row strings are data: ``${...}`` in them must not be resolved by OmegaConf."""
    if isinstance(value, str):
        return value.replace("${", "\\${")
    if isinstance(value, dict):
        return {k: _escape_interpolations(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape_interpolations(v) for v in value]
    return value


def plan_experiment(experiment, row_overrides) -> list[PlannedJob]:
    """Rows -> validated jobs (no I/O beyond calling ``@ex.configs``); warns about duplicates."""
    rows = experiment.rows()
    source = experiment.path.name
    jobs = plan_jobs(rows, row_overrides, experiment.replicate_keys, source=source)
    if experiment.schema is not None:
        for job in jobs:
            validate_row(job.row, experiment.schema, job.order_id, source)
    from sem_core.capture import with_seed

    for job in jobs:  # a row's own seed is checked here, so a bad one stops the sweep before any job
        if "seed" in job.row:
            try:
                with_seed({**job.row, "order_id": job.order_id}, job.experiment_id)
            except ConfigError as exc:
                raise ConfigError(f"{source} {exc}") from None
    duplicates = find_duplicates(jobs)
    if duplicates:
        shown = "; ".join(f"order_id {a} and order_id {b} (experiment_id {e})" for a, b, e in duplicates[:10])
        more = f" and {len(duplicates) - 10} more pairs" if len(duplicates) > 10 else ""
        warn(
            f"{source}: identical rows: {shown}{more}: each will run and be recorded separately; "
            "remove the duplicates or add a key that tells them apart"
        )
    return jobs


class _RowNode(ConfigNode):
    """A ConfigStore entry whose DictConfig is built when Hydra first loads it.

    ``ConfigStore.store`` converts every node to a DictConfig up front (~1 ms per row): 13 s
    for 10,000 rows, before the first job could start. Rows are built lazily instead, so a
    job composes only its own row; pickling the store (submitit, spawn) sends plain dicts,
    and ``job_row`` reads ``record`` without composing anything.
    Relies on ConfigStore's repository layout (``repo[group][name.yaml] = ConfigNode``),
    stable across hydra-core 1.3.x (pinned in setup.cfg).
    """

    def __init__(self, name: str, record: dict, group: str) -> None:  # dataclass fields set by hand
        self.name = name
        self.group = group
        self.package = "_global_"
        self.provider = "sem"
        self.record = record  # the planned row with its ids, as main receives it
        self._node = None

    @property  # type: ignore[override]
    def node(self):
        if self._node is None:
            self._node = OmegaConf.create(_escape_interpolations(self.record))
        return self._node

    @node.setter
    def node(self, value) -> None:
        self._node = value


def register_rows(records_: Sequence[dict], first_index: int = 0) -> list[str]:
    """Store each row as ``sem_row/j<k>``; return the job override for each."""
    from hydra.core.config_store import ConfigStore

    group = ConfigStore.instance().repo.setdefault(ROW_GROUP, {})
    overrides = []
    for k, record in enumerate(records_, start=first_index):
        name = f"j{k}"
        group[f"{name}.yaml"] = _RowNode(f"{name}.yaml", record, ROW_GROUP)
        overrides.append(f"+{ROW_GROUP}={name}")
    return overrides


def _registered_row(overrides: Sequence[str]) -> Optional[dict]:
    """The planned row behind a job's ``+sem_row=j<k>`` override (not a copy); None if none."""
    from hydra.core.config_store import ConfigStore

    prefix = f"+{ROW_GROUP}="
    for text in overrides:
        if text.startswith(prefix):
            entry = ConfigStore.instance().repo.get(ROW_GROUP, {}).get(f"{text[len(prefix):]}.yaml")
            return entry.record if entry is not None else None
    return None


def job_row(overrides: Sequence[str]) -> Optional[dict]:
    """The row (with ids) registered for a job, from its override list; None if not a sem job."""
    row = _registered_row(overrides)
    return copy.deepcopy(row) if row is not None else None


def job_label(overrides: Sequence[str], width: int = 120) -> str:
    """What the launcher logs for a job: ``order_id=6 noise=0.1 fold=1`` for a sem row (its
    override ``+sem_row=j6`` means nothing to a reader), the overrides as Hydra shows them
    otherwise."""
    from hydra.core.utils import filter_overrides

    from sem_core.mongo.connection import redact_uri

    # redacted before the cut: a cut URL could leave part of a password behind
    shown = [redact_uri(o) for o in filter_overrides(overrides)]
    row = _registered_row(overrides)
    if row is None:
        return " ".join(shown)
    words = [f"order_id={row['order_id']}"]
    words += [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in ids.user_keys(row).items()]
    words += [o for o in shown if not o.startswith(f"+{ROW_GROUP}=")]
    label = " ".join(words)
    return label if len(label) <= width else label[: width - 3] + "..."


def sweep_experiment(sweeper, arguments: List[str]) -> Any:
    task = sweeper.task_function
    experiment = task.experiment
    config = sweeper.config
    passthrough = _passthrough_overrides(sweeper, arguments)
    jobs = plan_experiment(experiment, task.row_overrides)
    check_settings(config, sweeper)

    store = experiment.store_dir(config.sem.storage)
    # sem.skip_completed / sem.rerun (issue 6): drop rows already done, list them in the summary
    from sem_core.resume import format_skipped, resume_sweep

    selection = resume_sweep(jobs, store, config.sem, experiment.path.name, experiment.experiment_dir)
    jobs = selection.to_run
    planned = [job_record(job, ids.new_global_id()) for job in jobs]
    # under `sem run`: every model file's sweep is planned before any starts (sem_core.multi)
    from sem_core import multi

    multi.wait_at_gate(experiment.path, len(planned))

    sweep_dir = Path(str(config.hydra.sweep.dir))
    # no sweep folder when no job runs (every row skipped), but for the one `sem run` reads
    if planned or multi.in_run():
        _start_sweep_folder(sweep_dir, config, task, experiment, store, planned, selection.skipped)

    batch_size = sweeper.max_batch_size or len(planned) or 1
    returns = []
    outcomes: list = [None] * len(planned)
    try:
        for start in range(0, len(planned), batch_size):
            chunk = planned[start : start + batch_size]
            row_overrides = register_rows(chunk, first_index=start)
            batch = [list(passthrough) + [ov] for ov in row_overrides]
            results = sweeper.launcher.launch(batch, initial_job_idx=start)
            returns.append(results)
            # by the row override, not by position: a fail_fast launcher returns fewer results
            position = {ov: start + i for i, ov in enumerate(row_overrides)}
            for ret in results:
                key = next((o for o in (ret.overrides or []) if o in position), None)
                if key is not None:
                    outcomes[position[key]] = ret
            if getattr(sweeper.launcher, "stopped_early", False):
                break
    except BaseException as exc:
        # a job unwound past Hydra (Ctrl-C, SIGTERM between its callbacks): its run still ends
        experiment.lifecycle.abandon(exc)
        raise
    finally:
        rows = summary_rows(planned, outcomes, store)
        if multi.in_run():
            multi.write_outcomes(sweep_dir, rows)  # `sem run` prints one table for every model file
        else:
            if selection.skipped:
                print(format_skipped(selection.skipped), file=sys.stdout, flush=True)
            print(format_summary(rows, str(store), skipped=len(selection.skipped)), file=sys.stdout, flush=True)
        task.failed = task.failed or any(r["state"] == "failed" for r in rows)
    database = task.database_settings()
    if database is not None:
        # upload what live sync missed (a database that was down, submit-and-exit Slurm jobs)
        from sem_core.observers.mongo import sync_after_sweep

        sync_after_sweep(database, sweep_dir, store)
    return returns


# hydra.launcher.<key> -> (smallest value, what it counts). Below it a launcher would start no
# job, wait forever or busy-loop (n_jobs=-1 ran nothing and reported success).
LAUNCHER_MINIMUMS = {
    "n_jobs": (1, "jobs at once, or null for one per CPU"),
    "timeout_min": (1, "minutes"),
    "array_parallelism": (1, "array tasks at once"),
    "configs_per_task": (1, "rows per array task"),
    "max_requeue": (0, "requeues"),
    "signal_delay_s": (0, "seconds"),
    "cpus_per_task": (1, "CPUs, or null for the cluster's default"),
    "gpus_per_task": (0, "GPUs, or null"),
    "gpus_per_node": (0, "GPUs, or null"),
}
LAUNCHER_POSITIVE = {"poll_interval_s": "seconds", "mem_gb": "GB, or null for the cluster's default"}


def check_settings(config, sweeper) -> None:
    """The merged ``sem.*`` settings and the launcher and sweeper options, before any job:
    one ConfigError naming the key. (Values from experiment_config.yaml were checked as it
    was read, naming the file; what fails here came from the command line.)"""
    import math

    from sem_core import settings

    for key in settings.SEM_SETTING_CHECKS:
        value = config.sem.get(key)
        problem = settings.sem_setting_problem(key, value)
        if problem:
            raise ConfigError(f"sem.{key}={getattr(value, 'value', value)}: {problem}")
    batch = sweeper.max_batch_size
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ConfigError(
            f"hydra.sweeper.max_batch_size={batch}: must be a whole number of jobs at least 1, "
            "or null for the whole sweep in one batch"
        )
    launcher = config.hydra.launcher
    for key, (least, unit) in LAUNCHER_MINIMUMS.items():
        value = launcher.get(key) if key in launcher else None
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise ConfigError(f"hydra.launcher.{key}={value}: must be a whole number at least {least} ({unit})")
    for key, unit in LAUNCHER_POSITIVE.items():
        value = launcher.get(key) if key in launcher else None
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ConfigError(f"hydra.launcher.{key}={value}: must be a number above 0 ({unit})")


def _start_sweep_folder(sweep_dir: Path, config, task, experiment, store: Path, planned, skipped) -> None:
    """The sweep folder with Hydra's ``multirun.yaml`` and sem's manifest; the sweep's capture
    (git, packages, DVC state), taken once for every job."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, sweep_dir / "multirun.yaml")
    from sem_core.capture import capture_sweep

    task.sweep_meta = {
        "sweep_dir": str(sweep_dir.resolve()),
        # git/python/packages/DVC state, captured once for all jobs (sem_core.capture)
        "capture": capture_sweep(experiment.path, store),
        # the row overrides as typed (sem show --repro replays them)
        "row_overrides": [ov.text for ov in task.row_overrides],
    }
    records.atomic_write_json(
        sweep_dir / SWEEP_MANIFEST,
        {
            "model_file": str(experiment.path),
            "store": str(store),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(),
            "jobs": [{k: r[k] for k in ids.ID_KEYS} for r in planned],
            "skipped": [vars(s) for s in skipped],
        },
    )


def _passthrough_overrides(sweeper, arguments: Sequence[str]) -> list[str]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    out = []
    for ov in parser.parse_overrides(list(arguments)):
        if ov.is_sweep_override():
            raise ConfigError(
                f"{ov.input_line}: sweeping over {ov.get_key_element()} is not supported; sem sweeps over the rows "
                "of @ex.configs (use +KEY=v1,v2 to cross a new row key with the rows)"
            )
        out.append(ov.input_line)
    return out


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

    from sem_core.claims import Elsewhere

    out = []
    for record, ret in zip(planned, outcomes):
        run_file = store / record["global_id"] / records.RUN_FILE
        try:
            run = records.read_json(run_file) if run_file.exists() else {}
        except (OSError, ValueError) as exc:
            run = {"status": "UNREADABLE", "fail_trace": [f"{exc}\n"]}
        value = getattr(ret, "_return_value", None)
        if not run and isinstance(value, Elsewhere):
            out.append({"order_id": record["order_id"], "experiment_id": record["experiment_id"],
                        "global_id": record["global_id"], "status": "SKIPPED", "duration": None,
                        "error": value.note, "state": "elsewhere"})
            continue
        if run:
            status = records.observed_status(run)  # KILLED: its worker died before recording its end
        elif ret is None:
            status = "NOT RUN"
        else:
            status = "NO RECORD"
        job_failed = ret is not None and getattr(ret, "status", None) == JobStatus.FAILED
        if status in records.ACTIVE_STATUSES and not job_failed:
            state = "active"
        elif status != "COMPLETED" or job_failed:
            state = "failed"
        else:
            state = "done"
        out.append({"order_id": record["order_id"], "experiment_id": record["experiment_id"],
                    "global_id": record["global_id"], "status": status, "duration": records.run_duration(run),
                    "error": _error_of(run, ret) if state == "failed" else "", "state": state,
                    "no_record": not run})
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
        table.append(((r["model"],) if model_column else ()) + (str(r["order_id"]), r["experiment_id"],
                                                               r["status"], duration, shown))
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


def print_summary(planned: Sequence[dict], outcomes: Sequence[Any], store: Path, stream=sys.stdout,
                  skipped: int = 0) -> bool:
    """Print one line per job from its run record, every row counted once; return True if any
    job did not complete. Reasons too long for the table follow it in full, once each."""
    rows = summary_rows(planned, outcomes, store)
    if stream is not None:
        print(format_summary(rows, str(store), skipped=skipped), file=stream, flush=True)
    return any(r["state"] == "failed" for r in rows)
