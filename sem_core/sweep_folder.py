"""A sweep's folder (Hydra's ``hydra.sweep.dir``): Hydra's ``multirun.yaml`` and sem's
manifest ``sem_sweep.json`` (the model file, the store, every planned job's ids, the rows
skipped), which ``sem status``, ``sem cancel`` and ``sem run`` read."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sem_core import ids, records
from sem_core.config_yaml import write_yaml

SWEEP_MANIFEST = "sem_sweep.json"


def start_sweep_folder(
    sweep_dir: Path, config: Any, task: Any, store: Path, planned: Sequence[dict], skipped: Sequence[Any]
) -> dict:
    """The sweep folder with Hydra's ``multirun.yaml`` and sem's manifest. Returns the sweep's
    part of every run's ``meta.sem``: the folder, the sweep's capture (git, packages, DVC state,
    taken once for every job) and the row overrides as typed."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    write_yaml(config, sweep_dir / "multirun.yaml")
    from sem_core.capture import capture_sweep

    sweep_meta = {
        "sweep_dir": str(sweep_dir.resolve()),
        # git/python/packages/DVC state, captured once for all jobs (sem_core.capture)
        "capture": capture_sweep(task.experiment.path, store),
        # the row overrides as typed (sem show --repro replays them)
        "row_overrides": [ov.text for ov in task.row_overrides],
    }
    manifest = {
        "model_file": str(task.experiment.path),
        "store": str(store),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(),
        "skipped": [vars(s) for s in skipped],
    }
    records.atomic_write_text(sweep_dir / SWEEP_MANIFEST, _manifest_text(manifest, planned))
    return sweep_meta


def _manifest_text(manifest: dict, planned: Sequence[dict]) -> Iterator[str]:
    """The manifest's JSON in pieces, its ``jobs`` last, one line per job: encoded whole (and
    indented), a sweep of 10,000 rows took 12 MB for a moment, more than the sweep then held."""
    head = records.encode_json(manifest)
    yield head[: head.rindex("}")].rstrip() + ',\n  "jobs": ['
    for k, r in enumerate(planned):
        yield f"{',' if k else ''}\n    {records.encode_json({key: r[key] for key in ids.ID_KEYS}, indent=None)}"
    yield "\n  ]\n}\n" if len(planned) else "]\n}\n"
