"""The body of sem's sweeper: plan the rows, register them, launch, summarise.

One step per function, in the order ``sweep_experiment`` takes them: plan the model file's
jobs (``sem_core.sweep_plan``), check the settings (``sem_core.sweep_checks``), drop the rows
already done (``sem_core.resume``), start the sweep folder (``sem_core.sweep_folder``),
register each row in the ConfigStore and launch them in batches (``sem_core.row_store``),
print the summary (``sem_core.sweep_summary``) and upload what live sync missed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus

from sem_core import ids, run_gate
from sem_core.errors import ConfigError
from sem_core.job_return import JobReturns, read_by_sweep
from sem_core.plan import PlannedRecords
from sem_core.resume import Selection, format_skipped, resume_sweep
from sem_core.row_store import job_overrides, row_index
from sem_core.sweep_checks import check_settings
from sem_core.sweep_folder import start_sweep_folder
from sem_core.sweep_plan import plan_experiment
from sem_core.sweep_summary import SweepSummary, summary_rows


@dataclass
class Launched:
    """What the launcher returned: Hydra's batches (the sweeper's return value) and, for each
    planned job, what the summary needs of its return: None (not launched), ``JobStatus.COMPLETED``
    (completed, nothing more to read) or its ``JobReturn``."""

    batches: list = field(default_factory=list)
    outcomes: list = field(default_factory=list)

    def keep(self, index: int, ret: JobReturn) -> None:
        """Planned job ``index`` returned ``ret``."""
        self.outcomes[index] = ret if read_by_sweep(ret) else JobStatus.COMPLETED


def sweep_experiment(sweeper: Any, arguments: list[str]) -> Any:
    """The sweep of a sem experiment: ``SemSweeper.sweep`` hands over here."""
    task = sweeper.task_function
    experiment = task.experiment
    config = sweeper.config
    passthrough = _passthrough_overrides(sweeper, arguments)
    jobs = plan_experiment(experiment, task.row_overrides)
    check_settings(config, sweeper)
    store = experiment.store_dir(config.sem.storage)
    # sem.skip_completed / sem.rerun: drop rows already done, list them in the summary
    selection = resume_sweep(jobs, store, config.sem, experiment.path.name, experiment.experiment_dir)
    planned = PlannedRecords.new(selection.to_run, ids.new_global_id)
    # from here the planned jobs are the records' columns, not an object per row
    del jobs
    selection = Selection(to_run=[], skipped=selection.skipped)
    # under `sem run`: every model file's sweep is planned before any starts (sem_core.run_gate)
    run_gate.wait_at_gate(experiment.path, len(planned))
    sweep_dir = Path(str(config.hydra.sweep.dir))
    # no sweep folder when no job runs (every row skipped), but for the one `sem run` reads
    if planned or run_gate.in_run():
        # the task is what every job receives: it carries the sweep's part of each run's record
        task.sweep_meta = start_sweep_folder(sweep_dir, config, task, store, planned, selection.skipped)
    launched = Launched(outcomes=[None] * len(planned))
    try:
        _launch_in_batches(sweeper, passthrough, planned, launched)
    except BaseException as exc:
        # a job unwound past Hydra (Ctrl-C, SIGTERM between its callbacks): its run still ends
        experiment.lifecycle.abandon(exc)
        raise
    finally:
        failed = _report(summary_rows(planned, launched.outcomes, store), sweep_dir, store, selection)
        task.failed = task.failed or failed
    _sync_after_sweep(task, sweep_dir, store)
    return launched.batches


def _launch_in_batches(sweeper: Any, passthrough: Sequence[str], planned: Sequence[dict], launched: Launched) -> None:
    """Register and launch the planned rows ``hydra.sweeper.max_batch_size`` at a time,
    keeping each job's return in ``launched`` as it comes (a fault in a later batch keeps the
    earlier ones for the summary)."""
    batch_size = sweeper.max_batch_size or len(planned) or 1
    for start in range(0, len(planned), batch_size):
        jobs = job_overrides(planned[start : start + batch_size], sweeper.task_function.experiment, start)
        results = sweeper.launcher.launch(jobs.with_before(passthrough), initial_job_idx=start)
        # Hydra gets the launch's returns back when they are lean (sem's local launcher); another
        # launcher's list, a JobReturn per job, is not held to the sweep's end (10 MB at 10,000 rows)
        launched.batches.append(results if isinstance(results, JobReturns) else [])
        # by the row override, not by position: a fail_fast launcher returns fewer results
        for ret in results:
            index = row_index(ret.overrides or [])
            if index is not None and start <= index < len(planned):
                launched.keep(index, ret)
        if getattr(sweeper.launcher, "stopped_early", False):
            break


def _report(rows: Iterable[dict], sweep_dir: Path, store: Path, selection: Selection) -> bool:
    """The summary of the sweep, or under ``sem run`` its rows for the table of every model
    file that ``sem run`` prints. True if a job did not complete."""
    if run_gate.in_run():
        kept = list(rows)
        run_gate.write_outcomes(sweep_dir, kept)
        return any(r["state"] == "failed" for r in kept)
    summary = SweepSummary().extend(rows)
    if selection.skipped:
        print(format_skipped(selection.skipped), file=sys.stdout, flush=True)
    print(summary.text(str(store), skipped=len(selection.skipped), rerun_hint=True), file=sys.stdout, flush=True)
    return summary.failed


def _sync_after_sweep(task: Any, sweep_dir: Path, store: Path) -> None:
    """Upload what live sync missed (a database that was down, submit-and-exit Slurm jobs)."""
    database = task.database_settings()
    if database is not None:
        from sem_core.observers.mongo import sync_after_sweep

        sync_after_sweep(database, sweep_dir, store)


def _passthrough_overrides(sweeper: Any, arguments: Sequence[str]) -> list[str]:
    """The sweep's overrides every job gets (``sem.*``, ``hydra.*``, config groups); a sweep
    over them is refused: sem sweeps over rows."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    for text, ov in zip(arguments, parser.parse_overrides(list(arguments))):
        if ov.is_sweep_override():
            raise ConfigError(
                f"{text}: sweeping over {ov.get_key_element()} is not supported; sem sweeps over the rows "
                "of @ex.configs (use +KEY=v1,v2 to cross a new row key with the rows)"
            )
    return list(arguments)
