"""The plan of one model file's sweep: its rows -> validated jobs with their ids, before any
job starts (``sem plan``, ``sem run`` and the sweeper share it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sem_core.errors import ConfigError, warn
from sem_core.plan import PlannedJob, RowOverride, find_duplicates, plan_jobs


def plan_experiment(experiment: Any, row_overrides: Sequence[RowOverride]) -> list[PlannedJob]:
    """Rows -> validated jobs (no I/O beyond calling ``@ex.configs``); warns about duplicates."""
    rows = experiment.rows()
    source = experiment.path.name
    tree = experiment.config_tree()
    jobs = plan_jobs(rows, row_overrides, experiment.replicate_keys, source=source, dotted_keys=tree is not None)
    # types checked directly: OmegaConf's merge per row would take 40 s for 100,000 rows
    if experiment.schema is not None:
        # imported here: a model file without a schema does not pay for its checkers at start-up
        from sem_core.schema import check_rows as check_schema

        check_schema(jobs, experiment.schema, source)
    if tree is not None:
        tree.check(jobs, source)
    from sem_core.seeding import with_seed

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
