"""``sem clean [PATH]``: move failed runs, stale duplicates and orphans of a run store to a bin
(what is binned and why: ``sem_core.clean``).

Dry run by default (prints what it would move); ``--yes`` moves; ``--restore`` moves everything
in the bin back (in the store and, when one is configured, in MongoDB).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sem_core import clean
from sem_core.errors import SemError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "clean", help="move failed runs, stale duplicates and orphans to a bin (dry run by default)"
    )
    p.add_argument(
        "path", nargs="?", default=None, help="experiment folder or run store (default: the experiment around .)"
    )
    p.add_argument("--yes", action="store_true", help="move them (without it: only print what would move)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="only print what would move, in the store and in MongoDB (the default without --yes)",
    )
    p.add_argument(
        "--restore",
        action="store_true",
        help="move everything in the bin back into the store (and the database; dry run with --dry-run)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="also bin runs that are neither pushed to DVC nor synced to MongoDB (the bin is then their only copy)",
    )
    p.set_defaults(func=run)


def restore(store: Path, dry_run: bool) -> int:
    from sem_core.mongo.bin import BIN_RUNS

    folders = clean.binned_folders(store)
    database = clean.database_of(store)
    in_bin = clean.binned_in_database(database, store, folders) if database is not None else {}
    if dry_run:
        for folder in folders:
            extra = f"  + database run {in_bin[folder.name]}" if folder.name in in_bin else ""
            print(f"would restore  {folder.name}{extra}")
        for gid in sorted(set(in_bin) - {f.name for f in folders}):
            print(f"would restore  database run {in_bin[gid]} ({gid}; its folder is in the store already)")
        print(
            f"dry run: {len(folders)} folder(s) would move back into {store}"
            + (f", {len(in_bin)} run(s) from {BIN_RUNS} into runs of MongoDB {database.display}" if database else "")
        )
        return 0
    restored = clean.restore_from_bin(store)
    print(f"restored {len(restored)} folder(s) into {store}" + (f": {', '.join(restored)}" if restored else ""))
    if database is None or not in_bin:
        return 0
    back = clean.restore_database_runs(database, sorted(in_bin))
    print(f"restored {len(back.runs)} run(s) into runs of MongoDB {database.display}")
    for gid, (old, new) in sorted(back.renumbered.items()):
        print(f"  run {gid}: _id {old} was taken meanwhile; it is _id {new} now")
    for gid, run_id in sorted(back.already_there.items()):
        print(
            f"  run {gid}: the database holds it again (_id {run_id}, synced since); "
            f"its binned copy stays in {BIN_RUNS}"
        )
    return 0


def run(args: argparse.Namespace) -> int:
    if args.yes and args.dry_run:
        raise SemError("sem clean: --yes and --dry-run contradict each other; give one")
    store = clean.store_of(args.path)
    if not store.is_dir():
        raise SemError(f"{store}: no run store here (nothing has run yet)")
    if args.restore:
        return restore(store, dry_run=args.dry_run)
    shared = set() if args.force else clean.shared_names(store)
    plan = clean.plan_clean(clean.scan_store(store), shared, force=args.force)
    database = clean.database_of(store) if plan.move else None
    in_db = clean.runs_in_database(database, plan.move) if database is not None else {}
    for item in plan.move:
        extra = f"  + database run {in_db[item.name]}" if item.name in in_db else ""
        print(f"{'move' if args.yes else 'would move'}  {item.name}  ({item.reason}){extra}")
    for item in plan.protected:
        print(f"keep  {item.name}  ({item.reason})")
    if plan.protected:
        print(
            f"{len(plan.protected)} run(s) kept: they exist only here (not pushed to DVC nor synced to MongoDB); "
            "--force bins them too"
        )
    # unreadable records left in the store: no other command can handle them, so say so in the exit code
    left = [i for i in plan.protected if i.reason.startswith(clean.UNREADABLE)]
    if not args.yes:
        left += [i for i in plan.move if i.reason.startswith(clean.UNREADABLE)]
    code = 1 if left else 0
    if left:
        print(
            f"sem clean: {len(left)} unreadable record(s) remain in {store}: repair them, or bin them "
            f"(--yes{', --force' if any(i in plan.protected for i in left) else ''})",
            file=sys.stderr,
        )
    if not plan.move:
        if not plan.protected:
            print(f"nothing to clean in {store}")
        return code
    from sem_core.mongo.bin import BIN_RUNS

    db_part = (
        (
            f", and {len(in_db)} run(s) of MongoDB {database.display} from runs to {BIN_RUNS} "
            "(with their metrics; GridFS files kept)"
        )
        if in_db and database is not None
        else ""
    )
    if not args.yes:
        print(
            f"dry run: {len(plan.move)} folder(s) would move to {store / clean.BIN_DIR}{db_part}; "
            "run again with --yes to move them"
        )
        return code
    batch = clean.bin_runs(store, plan.move, in_db, database)
    print(f"moved {len(plan.move)} folder(s) to {batch}{db_part}; `sem clean --restore` brings them back")
    return code
