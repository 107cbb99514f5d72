"""Binning a run store's failed runs, stale duplicates and orphans (``sem clean``), and
restoring them. The command (``sem_core.commands.clean``) only parses and prints.

Runs are moved whole with ``os.rename`` under their own name (never renamed, never renumbered,
never copied), into ``<store>/_bin/<clean time>/``, with a ``manifest.json`` saying why each was
moved.

What is binned (``plan_clean``, pure):
- finished runs that did not complete (FAILED, INTERRUPTED, TIMEOUT, KILLED, CANCELLED);
- stale duplicates: COMPLETED runs of a row (same experiment_id and model file) older than the
  row's latest COMPLETED run;
- unreadable records: run folders whose run.json or config.json cannot be read (not valid JSON,
  not a JSON object, not a file), at once (records are written atomically: a half-written one is
  damage, not a job starting);
- orphans: folders in the store with no run.json (a job killed before it wrote one),
  untouched for ``ORPHAN_MIN_AGE_S`` (a job starting right now is not an orphan).
Never binned: QUEUED/RUNNING runs; the latest COMPLETED run of a row; and, unless ``force``,
runs that are in neither the DVC-pushed version of the store nor MongoDB (the bin would then hold
their only copy).

With a database configured, the binned runs leave it too (``sem_core.mongo.bin``: to a bin
collection, GridFS files kept), so Omniboard and ``sem results`` agree with the store; a restore
puts them back on both sides. Unreadable records and orphans are about the local folder only: a
database copy of those stays.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sem_core import records
from sem_core.dvc import pushed_run_names
from sem_core.errors import SemError
from sem_core.run_status import ACTIVE_STATUSES, FAILED_STATUSES, RunStatus

if TYPE_CHECKING:
    from sem_core.mongo.bin import Database

BIN_DIR = "_bin"
MANIFEST = "manifest.json"
ORPHAN_MIN_AGE_S = 3600
UNREADABLE = "unreadable record"


# ------------------------------------------------------------------------------ planning (pure)
@dataclass(frozen=True)
class StoreEntry:
    name: str  # folder name in the store (= global_id for runs)
    status: str | None  # None: no run.json (an orphan candidate) or an unreadable record
    experiment_id: str | None = None
    model: str | None = None
    age_s: float = 0.0  # seconds since the folder last changed
    start_time: str | None = None  # with the name (global_id): which run of a row is the newest
    problem: str | None = None  # why the record cannot be read ("<file>: <reason>")


@dataclass(frozen=True)
class CleanItem:
    name: str
    reason: str


@dataclass(frozen=True)
class CleanPlan:
    move: list[CleanItem]
    protected: list[CleanItem]  # would be moved, but have no copy outside this store


def plan_clean(entries: Sequence[StoreEntry], shared: Iterable[str], force: bool = False) -> CleanPlan:
    """Which store entries to bin. ``shared``: names of runs that also exist outside this store
    (pushed to DVC, or synced to MongoDB)."""
    shared = set(shared)
    latest_completed: dict[tuple, StoreEntry] = {}
    for e in entries:
        if e.status == RunStatus.COMPLETED and e.experiment_id:
            key = (e.experiment_id, e.model)
            best = latest_completed.get(key)
            if best is None or records.recency(e.start_time, e.name) > records.recency(best.start_time, best.name):
                latest_completed[key] = e
    candidates = []
    for e in sorted(entries, key=lambda e: e.name):
        if e.problem is not None:
            candidates.append(CleanItem(e.name, f"{UNREADABLE}: {e.problem}"))
        elif e.status is None:
            if e.age_s >= ORPHAN_MIN_AGE_S:
                candidates.append(CleanItem(e.name, "orphan: no run.json"))
        elif e.status in ACTIVE_STATUSES:
            continue
        elif e.status in FAILED_STATUSES:
            candidates.append(CleanItem(e.name, e.status))
        elif e.status == RunStatus.COMPLETED and e.experiment_id:
            newest = latest_completed[(e.experiment_id, e.model)].name
            if newest != e.name:
                candidates.append(CleanItem(e.name, f"stale duplicate of {newest}"))
    move = [c for c in candidates if force or c.name in shared]
    protected = [c for c in candidates if not force and c.name not in shared]
    return CleanPlan(move=move, protected=protected)


# ------------------------------------------------------------------------------ store I/O
def scan_store(store: Path, now: float | None = None) -> list[StoreEntry]:
    now = time.time() if now is None else now
    children = [c for c in sorted(store.iterdir()) if c.is_dir() and not c.name.startswith(("_", "."))]
    problems: dict[str, str] = {}

    def unreadable(problem: records.Problem) -> None:
        path = Path(problem.path)
        problems.setdefault(path.parent.name, f"{path.name}: {problem.reason}")

    found = {
        Path(rec.location).name: rec
        for rec in records.load_each(
            [c for c in children if (c / records.RUN_FILE).exists()], records.read_run, unreadable
        )
    }
    entries = []
    for child in children:
        age = now - max((p.stat().st_mtime for p in [child, *child.iterdir()]), default=child.stat().st_mtime)
        rec = found.get(child.name)
        if rec is None:  # no run.json (an orphan candidate), or an unreadable record
            entries.append(StoreEntry(child.name, None, age_s=age, problem=problems.get(child.name)))
            continue
        entries.append(StoreEntry(child.name, rec.status, rec.experiment_id, rec.model, age, rec.start_time))
    return entries


def mongo_synced_names(store: Path) -> set[str]:
    """Runs of the store that the configured MongoDB holds in their current state; empty when
    no database is configured."""
    from sem_core.mongo import reader

    return set(reader.synced_global_ids(store))


def bin_stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")


def move_to_bin(store: Path, items: Sequence[CleanItem], stamp: str | None = None) -> Path:
    batch = store / BIN_DIR / (stamp or bin_stamp())
    batch.mkdir(parents=True)
    manifest = {"cleaned": dt.datetime.now(dt.timezone.utc).isoformat(), "items": [vars(i) for i in items]}
    records.atomic_write_json(batch / MANIFEST, manifest)
    for item in items:
        os.rename(store / item.name, batch / item.name)
    return batch


def binned_folders(store: Path) -> list[Path]:
    """The folders in the store's bin, batch by batch."""
    bin_dir = store / BIN_DIR
    if not bin_dir.is_dir():
        return []
    return [
        item
        for batch in sorted(p for p in bin_dir.iterdir() if p.is_dir())
        for item in sorted(p for p in batch.iterdir() if p.is_dir())
    ]


def restore_from_bin(store: Path) -> list[str]:
    """Move every binned folder back under its own name; refuse (moving nothing) on a name clash."""
    bin_dir = store / BIN_DIR
    if not bin_dir.is_dir():
        return []
    moves = [(item, store / item.name) for item in binned_folders(store)]
    clashes = [str(dest) for _, dest in moves if dest.exists()]
    if clashes:
        raise SemError(f"cannot restore: {', '.join(clashes[:10])} already exist(s) in the store; move them away first")
    restored = []
    for source, dest in moves:
        os.rename(source, dest)
        restored.append(dest.name)
    for batch in sorted(p for p in bin_dir.iterdir() if p.is_dir()):
        if not any(p.is_dir() for p in batch.iterdir()):
            (batch / MANIFEST).unlink(missing_ok=True)
            batch.rmdir()
    if not any(bin_dir.iterdir()):
        bin_dir.rmdir()
    return restored


def store_of(path: str | None) -> Path:
    from sem_core.results.load import find_experiment_dir, is_run_store, store_of_experiment

    if path is not None and is_run_store(Path(path)):
        return Path(path).resolve()
    return store_of_experiment(find_experiment_dir(Path(path) if path else None)).resolve()


def database_of(store: Path) -> Database | None:
    """The store's database (``sem_core.mongo.bin.Database``), or None when none is configured."""
    from sem_core.mongo import bin as mongo_bin

    return mongo_bin.database_of_store(store)


def moves_database_copy(item: CleanItem) -> bool:
    """Whether binning ``item`` moves its database copy too: not for a damaged or orphan local folder."""
    return not item.reason.startswith((UNREADABLE, "orphan"))


def shared_names(store: Path) -> set[str]:
    """Runs of the store with a copy elsewhere: pushed to DVC or synced to MongoDB."""
    return pushed_run_names(store) | mongo_synced_names(store)


def bin_runs(store: Path, move: Sequence[CleanItem], in_db: Mapping[str, object], database: Any) -> Path:
    """Move ``move`` to a new bin batch; the runs of ``in_db`` leave ``database`` first, so a
    database failure leaves nothing half moved that a rerun cannot finish. Returns the batch."""
    stamp = bin_stamp()
    if in_db:
        import pymongo.errors

        from sem_core.mongo import bin as mongo_bin

        reasons = {i.name: i.reason for i in move if i.name in in_db}
        try:
            mongo_bin.move_to_bin(database.db, reasons, stamp)
        except pymongo.errors.PyMongoError as exc:
            raise database.error(exc, "no folder was moved; run sem clean again") from None
    return move_to_bin(store, move, stamp)


def runs_in_database(database: Any, move: Sequence[CleanItem]) -> dict:
    """global_id -> database _id of the runs in ``move`` whose database copy moves with them."""
    import pymongo.errors

    from sem_core.mongo import bin as mongo_bin

    try:
        return mongo_bin.runs_in_database(database.db, [i.name for i in move if moves_database_copy(i)])
    except pymongo.errors.PyMongoError as exc:
        raise database.error(exc, "nothing was moved") from None


def binned_in_database(database: Any, store: Path, folders: Sequence[Path]) -> dict:
    """global_id -> _id of the database runs in the bin collection that a restore brings back:
    those of the binned folders, and of folders back in the store already (a restore the
    database missed), so both sides agree again."""
    import pymongo.errors

    from sem_core.mongo import bin as mongo_bin

    names = {f.name for f in folders} | {
        p.name for p in store.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))
    }
    try:
        return mongo_bin.runs_in_bin(database.db, names)
    except pymongo.errors.PyMongoError as exc:
        raise database.error(exc, "nothing was restored") from None


def restore_database_runs(database: Any, global_ids: Sequence[str]) -> Any:
    """Move the database runs back from the bin collection (``sem_core.mongo.bin.Restored``)."""
    import pymongo.errors

    from sem_core.mongo import bin as mongo_bin

    try:
        return mongo_bin.restore_from_bin(database.db, sorted(global_ids))
    except pymongo.errors.PyMongoError as exc:
        raise database.error(exc, "the folders are back; run `sem clean --restore` again for the database") from None
