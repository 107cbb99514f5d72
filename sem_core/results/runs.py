"""``get_runs``: configs, results and artifacts of the runs matching some config values (experiment_manager's
``get_results_that_match_dict``)."""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sem_core.errors import SemError
from sem_core.mongo.reader import MongoRunRecord
from sem_core.results.load import SourceLike, flatten, load_runs, record_at, run_columns
from sem_core.results.table import DEFAULT_STATUSES, counted_runs, filter_runs

PICKLE_SUFFIXES = (".pkl", ".pickle")


@dataclass
class RunResult:
    """One run: its ids, config (as the model's ``main`` received it), last metric values and
    artifact paths; ``loaded`` holds the artifacts loaded on request (name -> object)."""

    global_id: str
    experiment_id: str | None
    config_id: str | None
    order_id: int | None
    model: str | None
    status: str
    path: str
    config: dict
    metrics: dict
    artifacts: dict[str, Any]  # name -> Path of the file (a location string for MongoDB runs)
    loaded: dict[str, Any] = field(default_factory=dict)


def load_artifact(path: Path) -> Any:
    """Load a pickled (``.pkl``/``.pickle``), JSON or numpy (``.npy``/``.npz``) artifact file.

    Pickles run code from the file: load only artifacts of runs you trust (your own)."""
    return load_artifact_bytes(str(path), Path(path).read_bytes())


def load_artifact_bytes(name: str, data: bytes) -> Any:
    """``load_artifact`` for bytes (artifacts stored in MongoDB's GridFS); ``name`` gives the type."""
    suffix = Path(name).suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        return pickle.loads(data)
    if suffix == ".json":
        return json.loads(data)
    if suffix in (".npy", ".npz"):
        import io

        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    raise SemError(
        f"{name}: don't know how to load a {suffix or 'suffix-less'} artifact "
        "(.pkl/.pickle, .json, .npy/.npz); open the path yourself"
    )


def get_runs(
    source: SourceLike | Any | None = None,
    match: Mapping[str, Any] | None = None,
    *,
    statuses: Sequence[str] | None = DEFAULT_STATUSES,
    newest_only: bool = True,
    load_artifacts: bool | Sequence[str] = False,
) -> list[RunResult]:
    """Runs whose config matches every item of ``match`` (nested dicts or dotted keys; ``{"fold": 0,
    "model": {"lr": 0.1}}`` == ``{"fold": 0, "model.lr": 0.1}``), in start order. ``source`` is
    anything ``load_runs`` takes, or its DataFrame. Same run selection as ``results_table``
    (COMPLETED, newest per experiment_id) unless told otherwise.
    ``load_artifacts``: True loads every pickled artifact into ``RunResult.loaded``, a list of
    names loads those (pickle, JSON or numpy)."""
    import pandas as pd

    runs = source if isinstance(source, pd.DataFrame) else load_runs(source)
    if match:
        runs = filter_runs(runs, flatten(dict(match)))
    runs, _ = counted_runs(runs, statuses, newest_only)
    metric_cols = run_columns(runs).metrics
    out = []
    for _, row in runs.iterrows():
        record = record_at(row["path"])
        names = [str(n) for n in record.run.get("artifacts") or []]
        artifacts: dict[str, Any]
        if isinstance(record, MongoRunRecord):  # artifacts live in GridFS
            artifacts = {name: f"{record.location}/artifacts/{name}" for name in names}
        else:
            artifacts = {name: Path(record.location) / name for name in names}
        metrics = {}
        for name, col in metric_cols.items():
            value = row[col]
            if not (isinstance(value, float) and math.isnan(value)):
                metrics[name] = value
        result = RunResult(
            global_id=row["global_id"],
            experiment_id=row["experiment_id"],
            config_id=row["config_id"],
            order_id=None if pd.isna(row["order_id"]) else int(row["order_id"]),
            model=row["model"],
            status=row["status"],
            path=row["path"],
            config=dict(record.config),
            metrics=metrics,
            artifacts=artifacts,
        )
        if load_artifacts:
            if load_artifacts is True:
                wanted = [n for n in artifacts if Path(n).suffix.lower() in PICKLE_SUFFIXES]
            else:
                wanted = list(load_artifacts)
                missing = [n for n in wanted if n not in artifacts]
                if missing:
                    raise SemError(
                        f"run {result.global_id} ({row['path']}) has no artifact {missing}; "
                        f"its artifacts: {sorted(artifacts) or '(none)'}"
                    )
            result.loaded = {
                n: load_artifact_bytes(n, record.artifact_bytes(n))
                if isinstance(record, MongoRunRecord)
                else load_artifact(artifacts[n])
                for n in wanted
            }
        out.append(result)
    return out
