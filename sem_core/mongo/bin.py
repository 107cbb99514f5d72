"""The database side of ``sem clean``: runs binned from a run store leave MongoDB too, and come back
with ``sem clean --restore``.

A binned run's document moves from ``runs`` to ``sem_bin.runs`` (one document per run, keyed by its
``global_id``: the run document as it was, its ``_id`` in ``runs``, the reason and the time), its
metric documents from ``metrics`` to ``sem_bin.metrics``. Omniboard and sacred's readers list the
``runs`` collection only, so a binned run disappears from them. GridFS files (sources, artifacts,
offloaded metrics and output) stay where they are: they are shared by content between runs, and the
bin's documents still point at them.

Every step can be repeated: a clean or a restore cut short is finished by running it again (the bin
document is written before the run leaves ``runs``, the run document before the bin lets go of it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sem_core.claims import COLLECTION as CLAIMS_COLLECTION
from sem_core.errors import SemError
from sem_core.mongo import connection

BIN_RUNS = "sem_bin.runs"
BIN_METRICS = "sem_bin.metrics"


@dataclass
class Database:
    """The database configured for a run store, connected lazily."""

    db: Any
    settings: connection.MongoSettings

    @property
    def display(self) -> str:
        return self.settings.display

    def error(self, exc: BaseException, doing: str) -> SemError:
        return SemError(
            f"MongoDB {self.settings.display} (from {self.settings.source}): "
            f"{connection.describe_error(exc, self.settings)}; {doing}"
        )


def database_of_store(store: Path) -> Database | None:
    """The database configured for the experiment around ``store`` (None: no database)."""
    from sem_core.mongo.reader import experiment_dir_of_store

    settings = connection.resolve_settings(experiment_dir=experiment_dir_of_store(store))
    if settings is None:
        return None
    return Database(connection.connect(settings), settings)


def runs_in_database(db: Any, global_ids: Iterable[str]) -> dict[str, Any]:
    """``{global_id: _id}`` of the given runs in the ``runs`` collection."""
    wanted = sorted(set(global_ids))
    if not wanted:
        return {}
    return {
        doc["config"]["global_id"]: doc["_id"]
        for doc in db.runs.find({"config.global_id": {"$in": wanted}}, {"_id": 1, "config.global_id": 1})
    }


def runs_in_bin(db: Any, global_ids: Iterable[str]) -> dict[str, Any]:
    """``{global_id: _id it had in runs}`` of the given runs in the bin."""
    wanted = sorted(set(global_ids))
    if not wanted:
        return {}
    return {doc["_id"]: doc.get("run_id") for doc in db[BIN_RUNS].find({"_id": {"$in": wanted}}, {"run_id": 1})}


def move_to_bin(db: Any, reasons: dict[str, str], batch: str) -> dict[str, Any]:
    """Move the runs ``{global_id: reason}`` (those the database holds) and their metrics out of
    ``runs``/``metrics`` into the bin; return ``{global_id: _id}`` of the runs moved."""
    moved = {}
    now = dt.datetime.now(dt.timezone.utc)
    for doc in db.runs.find({"config.global_id": {"$in": sorted(reasons)}}):
        gid = doc["config"]["global_id"]
        run_id = doc["_id"]
        metrics = list(db.metrics.find({"run_id": run_id}))
        # the bin's copy first: a run is never in neither place
        db[BIN_METRICS].delete_many({"global_id": gid})
        if metrics:
            db[BIN_METRICS].insert_many([{"_id": m["_id"], "global_id": gid, "doc": m} for m in metrics])
        db[BIN_RUNS].replace_one(
            {"_id": gid},
            {"_id": gid, "run_id": run_id, "reason": reasons[gid], "batch": batch, "binned": now, "doc": doc},
            upsert=True,
        )
        db.runs.delete_one({"_id": run_id})
        db.metrics.delete_many({"run_id": run_id})
        moved[gid] = run_id
    # a binned run no longer marks its row as done or running: the next sweep with
    # sem.skip_completed=true runs the row again (sem_core.claims)
    db[CLAIMS_COLLECTION].delete_many({"global_id": {"$in": sorted(reasons)}})
    return moved


@dataclass
class Restored:
    runs: dict[str, Any] = field(default_factory=dict)  # global_id -> _id in runs (after restore)
    renumbered: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # global_id -> (old _id, new _id)
    # global_id -> _id of the run the database holds again under that global_id (left in the bin)
    already_there: dict[str, Any] = field(default_factory=dict)


def restore_from_bin(db: Any, global_ids: Sequence[str]) -> Restored:
    """Move the given runs (those in the bin) back into ``runs``/``metrics``.

    A run keeps its ``_id`` unless another run took it meanwhile; then it gets the next free one
    (sacred's rule, as sync assigns them). A run whose ``global_id`` is in ``runs`` again (synced
    from another clone since) stays in the bin: the database never holds a run twice."""
    import pymongo.errors

    from sem_core.mongo.upload import _max_int_id

    out = Restored()
    present = runs_in_database(db, global_ids)
    for entry in db[BIN_RUNS].find({"_id": {"$in": sorted(set(global_ids))}}):
        gid, doc = entry["_id"], entry["doc"]
        if gid in present:
            out.already_there[gid] = present[gid]
            continue
        metrics = [m["doc"] for m in db[BIN_METRICS].find({"global_id": gid})]
        old_id = doc["_id"]
        for _ in range(20):
            try:
                for m in metrics:  # metrics first: a run document never points at missing metrics
                    m["run_id"] = doc["_id"]
                    db.metrics.replace_one({"_id": m["_id"]}, m, upsert=True)
                db.runs.insert_one(doc)
                break
            except pymongo.errors.DuplicateKeyError as exc:
                if "global_id" in str(exc):  # synced again by someone else this very moment
                    out.already_there[gid] = runs_in_database(db, [gid]).get(gid)
                    db.metrics.delete_many({"run_id": doc["_id"], "_id": {"$in": [m["_id"] for m in metrics]}})
                    doc = None
                    break
                doc["_id"] = _max_int_id(db) + 1  # the _id was taken meanwhile
        else:
            raise SemError(f"run {gid}: no free _id in {db.name}.runs after 20 attempts; restore again")
        if doc is None:
            continue
        if doc["_id"] != old_id:
            out.renumbered[gid] = (old_id, doc["_id"])
        db[BIN_METRICS].delete_many({"global_id": gid})
        db[BIN_RUNS].delete_one({"_id": gid})
        out.runs[gid] = doc["_id"]
    return out
