"""``sem dvc init|push|pull``: share run stores and results through DVC (see ``sem_core.dvc``)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sem_core.dvc import Targets


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("dvc", help="share runs and results with DVC: init, push, pull")
    sub = p.add_subparsers(dest="dvc_command", metavar="ACTION", required=True)

    init = sub.add_parser("init", help="dvc init (where needed) and a default remote, committed to git")
    init.add_argument(
        "--remote", metavar="URL", help="default remote: a folder, s3://bucket/path, gdrive://<folder id>, ..."
    )
    init.add_argument("--remote-name", default="storage", metavar="NAME", help="name of the remote (default: storage)")
    init.add_argument(
        "--gdrive-client-id", metavar="ID", help="Google Drive OAuth client id (committed to .dvc/config)"
    )
    init.add_argument(
        "--gdrive-client-secret",
        metavar="SECRET",
        help="Google Drive OAuth client secret (kept in the git-ignored .dvc/config.local)",
    )
    init.add_argument("path", nargs="?", default=".", help="a folder inside the git repository (default: .)")
    init.set_defaults(func=run_init)

    for name, helptext in (
        ("push", "track the run store and results/ with DVC, commit only their .dvc files, push to the remote"),
        ("pull", "fetch the run store and results/ and merge them into the local folders (nothing local is lost)"),
    ):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("path", nargs="?", default=None, help="experiment folder (default: the one around .)")
        sp.set_defaults(func=run_push if name == "push" else run_pull)


def _targets(args: argparse.Namespace) -> Targets:
    from sem_core import dvc
    from sem_core.results.load import find_experiment_dir, store_of_experiment

    experiment_dir = find_experiment_dir(Path(args.path) if args.path else None)
    return dvc.targets_of(experiment_dir, store_of_experiment(experiment_dir))


def _report(lines: Iterable[str]) -> int:
    for line in lines:
        print(line)
    return 0


def run_init(args: argparse.Namespace) -> int:
    from sem_core import dvc

    return _report(
        dvc.init(
            Path(args.path),
            remote_url=args.remote,
            remote_name=args.remote_name,
            gdrive_client_id=args.gdrive_client_id,
            gdrive_client_secret=args.gdrive_client_secret,
        )
    )


def run_push(args: argparse.Namespace) -> int:
    from sem_core import dvc

    return _report(dvc.push(_targets(args)))


def run_pull(args: argparse.Namespace) -> int:
    from sem_core import dvc

    return _report(dvc.pull(_targets(args)))
