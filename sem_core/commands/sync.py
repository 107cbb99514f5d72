"""``sem sync [PATH...] [--dry-run]``: upload local runs to the configured MongoDB.

PATH: an experiment folder, its models folder or a run store (default: the experiment around the
current directory). Uploads every run missing from the database or changed since its last sync
(``sem_core.mongo.upload``); running it twice adds nothing. What it left in the database is
remembered next to each store (``sem_core.mongo.sync_state``), so a re-sync of an unchanged store
asks the database one cheap question; ``--verify`` asks for every run instead. Exit code 0 when every run is in the
database, 1 when some failed (listed with the reason; with --dry-run: would fail), 2 for a setting
to fix.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sync",
        help="upload local runs to MongoDB (sacred's schema, read by Omniboard)",
        description="Upload every local run that is missing from the configured MongoDB or has changed "
        "since its last sync, in the layout sacred's MongoObserver writes (Omniboard reads it). Running it "
        "twice adds nothing.\n\nExit code: 0 when every run is in the database; 1 when some could not be "
        "uploaded (each is listed with the reason); 2 for a setting to fix.",
    )
    p.add_argument(
        "path",
        nargs="*",
        metavar="PATH",
        help="experiment folder, models folder or run store (default: the current experiment)",
    )
    p.add_argument("--dry-run", action="store_true", help="say what would be uploaded or updated, change nothing")
    p.add_argument(
        "--verify",
        action="store_true",
        help="ask the database for every run's state instead of trusting what the last sync of the store "
        "remembered (finds a run deleted from the database while another was added since)",
    )
    p.add_argument(
        "--url",
        default=None,
        metavar="MONGODB_URL",
        help="database to use instead of the configured one (like sem.mongo.url; keep passwords "
        "out of the command line: use SEM_MONGO_URL or ~/.config/sem/mongo.yaml)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _stores(paths: list[str]) -> list[Path]:
    from sem_core.results.load import resolve_stores

    stores = []
    for item in resolve_stores(paths or None):
        if isinstance(item, str):
            from sem_core.errors import SemError

            raise SemError(f"sem sync uploads local runs: PATH must be a folder, not a database URL ({item})")
        path = Path(item)
        if path.name == "models" and not (path / "runs").exists():
            path = path / "runs"
        stores.append(path)
    return stores


def run(args: argparse.Namespace) -> int:
    import pymongo.errors

    from sem_core import records
    from sem_core.errors import SemError
    from sem_core.mongo import connection, upload
    from sem_core.mongo.reader import experiment_dir_of_store

    stores = _stores(args.path)
    settings = connection.require_settings(args.url, experiment_dir_of_store(stores[0]))
    run_dirs: list[Path] = []
    for store in stores:
        run_dirs += list(records.iter_run_dirs(store))
    where = ", ".join(str(s) for s in stores)
    print(f"{len(run_dirs)} runs in {where} -> {settings.display} (from {settings.source})")

    db = connection.connect(settings)
    summary = upload.SyncSummary()
    try:
        summary = _sync_with_progress(db, run_dirs, settings, args)
    except pymongo.errors.PyMongoError as exc:
        raise SemError(f"MongoDB {settings.display}: {connection.describe_error(exc, settings)}") from None
    except upload.SyncError as exc:
        raise SemError(str(exc)) from None

    c = summary.counts()
    if args.dry_run:
        for d in summary.uploaded:
            print(f"would upload  {Path(d).name}")
        for d in summary.updated:
            print(f"would update  {Path(d).name}")
        for d, reason in summary.failed:
            print(f"would fail  {d}: {reason}")
        print(
            f"dry run: {c['uploaded']} to upload, {c['updated']} to update, {c['unchanged']} unchanged, "
            f"{c['failed']} would fail"
        )
        return 1 if summary.failed else 0
    for d, reason in summary.failed:
        print(f"failed  {d}: {reason}")
    print(f"uploaded {c['uploaded']}, updated {c['updated']}, unchanged {c['unchanged']}, failed {c['failed']}")
    return 1 if summary.failed else 0


def _sync_with_progress(db: Any, run_dirs: Sequence[Path], settings: Any, args: argparse.Namespace) -> Any:
    from sem_core.mongo import upload

    secrets = settings.secrets
    show = not args.quiet and not args.dry_run and bool(run_dirs) and os.isatty(2)
    if not show:
        return upload.sync_runs(
            db, run_dirs, secrets=secrets, dry_run=args.dry_run, state_key=settings.display, verify=args.verify
        )
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("sync"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task("sync", total=len(run_dirs))
        return upload.sync_runs(
            db,
            run_dirs,
            secrets=secrets,
            progress=lambda n: progress.advance(task, n),
            state_key=settings.display,
            verify=args.verify,
        )
