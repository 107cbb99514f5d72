"""Which runs ``sem status`` / ``sem cancel`` act on: every run of an experiment's store (or
of a run store), or only the runs of one sweep (a multirun folder holding sem_sweep.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from sem_core import records
from sem_core.errors import SemError
from sem_core.sweep import SWEEP_MANIFEST


def select_runs(paths: Optional[Sequence[str]]) -> tuple[list[records.RunRecord], str]:
    from sem_core.results.load import resolve_stores

    selected: list[records.RunRecord] = []
    where: list[str] = []
    store_paths: list[str] = []
    for text in paths or []:
        manifest = Path(text).expanduser() / SWEEP_MANIFEST
        if manifest.is_file():
            sweep = json.loads(manifest.read_text(encoding="utf-8"))
            store = Path(sweep["store"])
            for job in sweep.get("jobs", []):
                run_dir = store / job["global_id"]
                if (run_dir / records.RUN_FILE).exists():
                    selected.append(records.read_run(run_dir))
            where.append(f"sweep {Path(text)} (store {store})")
        else:
            store_paths.append(text)
    if store_paths or not paths:
        for store in resolve_stores(store_paths or None):
            if isinstance(store, str):
                raise SemError(f"{store.split('@')[-1]}: status and cancel work on run stores (folders), not MongoDB")
            selected.extend(records.iter_runs(store))
            where.append(str(store))
    return selected, ", ".join(where)
