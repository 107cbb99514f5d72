"""``sem clean [PATH]``: move failed runs, stale duplicates and orphans of a run store to a bin.

Dry run by default (prints what it would move); ``--yes`` moves; ``--restore`` moves everything
in the bin back. Runs are moved whole with ``os.rename`` under their own name (never renamed,
never renumbered, never copied), into ``<store>/_bin/<clean time>/``, with a ``manifest.json``
saying why each was moved.

What is binned (``plan_clean``, pure):
- finished runs that did not complete (FAILED, INTERRUPTED, TIMEOUT, KILLED, CANCELLED);
- stale duplicates: COMPLETED runs of a row (same experiment_id and model file) older than the
  row's latest COMPLETED run;
- unreadable records: run folders whose run.json or config.json cannot be read (not valid JSON,
  not a JSON object, not a file), at once (records are written atomically: a half-written one is
  damage, not a job starting);
- orphans: folders in the store with no run.json (a job killed before it wrote one),
  untouched for ``ORPHAN_MIN_AGE_S`` (a job starting right now is not an orphan).
Never binned: QUEUED/RUNNING runs; the latest COMPLETED run of a row; and, unless ``--force``,
runs that are in neither the DVC-pushed version of the store nor MongoDB (the bin would then hold
their only copy).

With a database configured, the binned runs leave it too (``sem_core.mongo.bin``: to a bin
collection, GridFS files kept), so Omniboard and ``sem results`` agree with the store; ``--restore``
puts them back on both sides. Unreadable records and orphans are about the local folder only: a
database copy of those stays.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from sem_core import records
from sem_core.run_status import ACTIVE_STATUSES, FAILED_STATUSES, RunStatus

BIN_DIR = "_bin"
MANIFEST = "manifest.json"
ORPHAN_MIN_AGE_S = 3600
UNREADABLE = "unreadable record"


# ------------------------------------------------------------------------------ pure planning
@dataclass(frozen=True)
class StoreEntry:
    name: str  # folder name in the store (= global_id for runs)
    status: Optional[str]  # None: no run.json (an orphan candidate) or an unreadable record
    experiment_id: Optional[str] = None
    model: Optional[str] = None
    age_s: float = 0.0  # seconds since the folder last changed
    start_time: Optional[str] = None  # with the name (global_id): which run of a row is the newest
    problem: Optional[str] = None  # why the record cannot be read ("<file>: <reason>")


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
def scan_store(store: Path, now: Optional[float] = None) -> list[StoreEntry]:
    now = time.time() if now is None else now
    children = [c for c in sorted(store.iterdir()) if c.is_dir() and not c.name.startswith(("_", "."))]
    problems: dict[str, str] = {}

    def unreadable(problem: records.Problem) -> None:
        path = Path(problem.path)
        problems.setdefault(path.parent.name, f"{path.name}: {problem.reason}")

    found = {
        Path(rec.location).name: rec
        for rec in records.load_each([c for c in children if (c / records.RUN_FILE).exists()],
                                     records.read_run, unreadable)
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


def dvc_pushed_names(store: Path) -> set[str]:
    """Run folders whose every file is in the DVC-tracked version of the store (``<store>.dvc``)
    with the same content, and that version is in the local DVC cache (it was pushed or pulled)."""
    dvc_file = store.with_name(store.name + ".dvc")
    if not dvc_file.exists():
        return set()
    from sem_core import dvc
    from sem_core.sources import file_md5

    root = dvc.git_root(store)
    listing_file = dvc._cache_object(dvc._cache_dir(root), dvc._tracked_dir_md5(dvc_file))
    if not listing_file.exists():
        return set()
    tracked: dict[str, dict[str, str]] = {}
    for entry in json.loads(listing_file.read_text(encoding="utf-8")):
        top, _, rest = entry["relpath"].partition("/")
        tracked.setdefault(top, {})[rest] = entry["md5"]
    pushed = set()
    for name, files in tracked.items():
        folder = store / name
        if not folder.is_dir():
            continue
        local = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
        if set(local) == set(files) and all(file_md5(local[rel]) == md5 for rel, md5 in files.items()):
            pushed.add(name)
    return pushed


def mongo_synced_names(store: Path) -> set[str]:
    """Runs of the store that the configured MongoDB holds in their current state (through the
    Mongo reader); empty when no database is configured."""
    try:
        from sem_core.mongo import reader
    except ImportError:
        return set()
    synced = getattr(reader, "synced_global_ids", None)
    if synced is None:
        return set()
    return set(synced(store))


def bin_stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")


def move_to_bin(store: Path, items: Sequence[CleanItem], stamp: Optional[str] = None) -> Path:
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
    return [item for batch in sorted(p for p in bin_dir.iterdir() if p.is_dir())
            for item in sorted(p for p in batch.iterdir() if p.is_dir())]


def restore_from_bin(store: Path) -> list[str]:
    """Move every binned folder back under its own name; refuse (moving nothing) on a name clash."""
    bin_dir = store / BIN_DIR
    if not bin_dir.is_dir():
        return []
    moves = [(item, store / item.name) for item in binned_folders(store)]
    clashes = [str(dest) for _, dest in moves if dest.exists()]
    if clashes:
        from sem_core.errors import SemError

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


# ------------------------------------------------------------------------------ command
def register(subparsers) -> None:
    p = subparsers.add_parser("clean", help="move failed runs, stale duplicates and orphans to a bin (dry run by default)")
    p.add_argument("path", nargs="?", default=None, help="experiment folder or run store (default: the experiment around .)")
    p.add_argument("--yes", action="store_true", help="move them (without it: only print what would move)")
    p.add_argument("--dry-run", action="store_true",
                   help="only print what would move, in the store and in MongoDB (the default without --yes)")
    p.add_argument("--restore", action="store_true",
                   help="move everything in the bin back into the store (and the database; dry run with --dry-run)")
    p.add_argument("--force", action="store_true",
                   help="also bin runs that are neither pushed to DVC nor synced to MongoDB (the bin is then their only copy)")
    p.set_defaults(func=run)


def store_of(path: Optional[str]) -> Path:
    from sem_core.results.load import find_experiment_dir, is_run_store, store_of_experiment

    if path is not None and is_run_store(Path(path)):
        return Path(path).resolve()
    return store_of_experiment(find_experiment_dir(Path(path) if path else None)).resolve()


def _database_side(store: Path):
    """The store's database (``sem_core.mongo.bin.Database``), or None when none is configured."""
    from sem_core.mongo import bin as mongo_bin

    return mongo_bin.database_of_store(store)


def _in_database(item: CleanItem) -> bool:
    """Whether binning ``item`` moves its database copy too: not for a damaged or orphan local folder."""
    return not item.reason.startswith((UNREADABLE, "orphan"))


def restore(store: Path, dry_run: bool) -> int:
    import pymongo.errors

    from sem_core.mongo import bin as mongo_bin

    folders = binned_folders(store)
    database = _database_side(store)
    in_bin: dict = {}
    if database is not None:
        # also runs whose folder is back already (a restore the database missed): both sides agree again
        names = {f.name for f in folders} | {p.name for p in store.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
        try:
            in_bin = mongo_bin.runs_in_bin(database.db, names)
        except pymongo.errors.PyMongoError as exc:
            raise database.error(exc, "nothing was restored") from None
    if dry_run:
        for folder in folders:
            extra = f"  + database run {in_bin[folder.name]}" if folder.name in in_bin else ""
            print(f"would restore  {folder.name}{extra}")
        for gid in sorted(set(in_bin) - {f.name for f in folders}):
            print(f"would restore  database run {in_bin[gid]} ({gid}; its folder is in the store already)")
        print(f"dry run: {len(folders)} folder(s) would move back into {store}"
              + (f", {len(in_bin)} run(s) from {mongo_bin.BIN_RUNS} into runs of MongoDB {database.display}" if database else ""))
        return 0
    restored = restore_from_bin(store)
    print(f"restored {len(restored)} folder(s) into {store}" + (f": {', '.join(restored)}" if restored else ""))
    if database is None or not in_bin:
        return 0
    try:
        back = mongo_bin.restore_from_bin(database.db, sorted(in_bin))
    except pymongo.errors.PyMongoError as exc:
        raise database.error(exc, "the folders are back; run `sem clean --restore` again for the database") from None
    print(f"restored {len(back.runs)} run(s) into runs of MongoDB {database.display}")
    for gid, (old, new) in sorted(back.renumbered.items()):
        print(f"  run {gid}: _id {old} was taken meanwhile; it is _id {new} now")
    for gid, run_id in sorted(back.already_there.items()):
        print(f"  run {gid}: the database holds it again (_id {run_id}, synced since); its binned copy stays in {mongo_bin.BIN_RUNS}")
    return 0


def run(args: argparse.Namespace) -> int:
    from sem_core.errors import SemError

    if args.yes and args.dry_run:
        raise SemError("sem clean: --yes and --dry-run contradict each other; give one")
    store = store_of(args.path)
    if not store.is_dir():
        raise SemError(f"{store}: no run store here (nothing has run yet)")
    if args.restore:
        return restore(store, dry_run=args.dry_run)
    shared = set() if args.force else dvc_pushed_names(store) | mongo_synced_names(store)
    plan = plan_clean(scan_store(store), shared, force=args.force)
    database = _database_side(store) if plan.move else None
    in_db: dict = {}
    if database is not None:
        import pymongo.errors

        from sem_core.mongo import bin as mongo_bin

        try:
            in_db = mongo_bin.runs_in_database(database.db, [i.name for i in plan.move if _in_database(i)])
        except pymongo.errors.PyMongoError as exc:
            raise database.error(exc, "nothing was moved") from None
    for item in plan.move:
        extra = f"  + database run {in_db[item.name]}" if item.name in in_db else ""
        print(f"{'move' if args.yes else 'would move'}  {item.name}  ({item.reason}){extra}")
    for item in plan.protected:
        print(f"keep  {item.name}  ({item.reason}; not pushed to DVC nor synced to MongoDB: --force to bin it)")
    # unreadable records left in the store: no other command can handle them, so say so in the exit code
    left = [i for i in plan.protected if i.reason.startswith(UNREADABLE)]
    if not args.yes:
        left += [i for i in plan.move if i.reason.startswith(UNREADABLE)]
    code = 1 if left else 0
    if left:
        print(f"sem clean: {len(left)} unreadable record(s) remain in {store}: repair them, or bin them "
              f"(--yes{', --force' if any(i in plan.protected for i in left) else ''})", file=sys.stderr)
    if not plan.move:
        print(f"nothing to clean in {store}")
        return code
    from sem_core.mongo import bin as mongo_bin

    db_part = (f", and {len(in_db)} run(s) of MongoDB {database.display} from runs to {mongo_bin.BIN_RUNS} "
               "(with their metrics; GridFS files kept)") if in_db else ""
    if not args.yes:
        print(f"dry run: {len(plan.move)} folder(s) would move to {store / BIN_DIR}{db_part}; "
              "run again with --yes to move them")
        return code
    stamp = bin_stamp()
    if in_db:
        import pymongo.errors

        reasons = {i.name: i.reason for i in plan.move if i.name in in_db}
        try:
            # the database first: if it fails, nothing has moved on either side that a rerun cannot finish
            mongo_bin.move_to_bin(database.db, reasons, stamp)
        except pymongo.errors.PyMongoError as exc:
            raise database.error(exc, "no folder was moved; run sem clean again") from None
    batch = move_to_bin(store, plan.move, stamp)
    print(f"moved {len(plan.move)} folder(s) to {batch}{db_part}; `sem clean --restore` brings them back")
    return code
