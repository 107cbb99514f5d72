"""Which runs ``sem status`` / ``sem cancel`` act on: every run of an experiment's store (or
of a run store), or only the runs of one sweep (a multirun folder holding sem_sweep.json)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from sem_core import records
from sem_core.errors import SemError
from sem_core.sweep_folder import SWEEP_MANIFEST


def select_runs(
    paths: Sequence[str] | None, on_problem: records.OnProblem = records.warn_problem
) -> tuple[list[records.RunRecord], str]:
    """The readable runs of ``paths`` and a description of where they are; unreadable records
    go to ``on_problem``."""
    from sem_core.results.load import resolve_stores

    selected: list[records.RunRecord] = []
    where: list[str] = []
    store_paths: list[str] = []
    for text in paths or []:
        manifest = Path(text).expanduser() / SWEEP_MANIFEST
        if manifest.is_file():
            sweep = json.loads(manifest.read_text(encoding="utf-8"))
            store = Path(sweep["store"])
            run_dirs = [store / job["global_id"] for job in sweep.get("jobs", [])]
            run_dirs = [d for d in run_dirs if (d / records.RUN_FILE).exists()]
            selected.extend(records.load_each(run_dirs, lambda d: records.read_run(d, on_problem), on_problem))
            where.append(f"sweep {Path(text)} (store {store})")
        else:
            store_paths.append(text)
    if store_paths or not paths:
        for source in resolve_stores(store_paths or None):
            if isinstance(source, str):
                raise SemError(f"{source.split('@')[-1]}: status and cancel work on run stores (folders), not MongoDB")
            selected.extend(records.iter_runs(source, on_problem))
            where.append(str(source))
    return selected, ", ".join(where)
