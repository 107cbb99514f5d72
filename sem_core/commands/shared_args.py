"""Arguments shared by ``sem results|ls|plot|report|show|status|cancel``, and what each means."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sem_core.errors import SemError
from sem_core.records import ProblemLog
from sem_core.run_status import RunStatus

if TYPE_CHECKING:
    import pandas as pd


def add_path(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        nargs="*",
        metavar="PATH",
        help="experiment folder, run store or mongodb:// URL (default: the experiment folder around "
        "the current directory)",
    )


def add_strict(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when a record could not be read (without it: such records are named on stderr, "
        "left out, and the exit code is 0)",
    )


def problem_log(args: argparse.Namespace) -> ProblemLog:
    """The ``on_problem`` of this command: one warning line per unreadable record, kept for
    ``exit_code``."""
    log = getattr(args, "problem_log", None)
    if log is None:
        log = args.problem_log = ProblemLog(f"sem {getattr(args, 'command', None) or ''}".strip())
    return log


def exit_code(args: argparse.Namespace, code: int = 0) -> int:
    """``code``, or 1 with ``--strict`` when a record could not be read."""
    if code == 0 and getattr(args, "strict", False) and problem_log(args):
        return 1
    return code


def add_where(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep runs whose config key (or run column, e.g. status) equals VALUE; repeatable",
    )


def add_table_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="M",
        help="metric to show (repeatable; default: every metric, but in sem results' terminal table the test_* "
        "ones, see --all-metrics)",
    )
    parser.add_argument(
        "--group-by",
        action="append",
        default=[],
        metavar="K",
        help="group runs by config key K instead of by config_id (repeatable)",
    )
    parser.add_argument(
        "--all-status",
        action="store_true",
        help="count runs of every status, not only COMPLETED (still newest per experiment_id)",
    )
    parser.add_argument("--maximize", action="append", default=[], metavar="M", help="higher M is better")
    parser.add_argument("--minimize", action="append", default=[], metavar="M", help="lower M is better")


def parse_where(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SemError(f"--where {item!r}: expected KEY=VALUE, e.g. --where fold=0")
        out[key.strip()] = value
    return out


def source_of(paths: Sequence[str]) -> list[str] | None:
    return list(paths) if paths else None


def filtered_runs(args: argparse.Namespace) -> pd.DataFrame:
    """The runs of ``args.path`` that pass every ``--where`` (a value no run has is an error)."""
    from sem_core.results.load import load_runs
    from sem_core.results.table import filter_runs

    runs = load_runs(source_of(args.path), on_problem=problem_log(args))
    where = parse_where(args.where)
    return filter_runs(runs, where, strict=True) if where else runs


def statuses_of(args: argparse.Namespace) -> tuple[RunStatus, ...] | None:
    """The statuses a table or plot counts: COMPLETED, or every status with ``--all-status``."""
    return None if args.all_status else (RunStatus.COMPLETED,)


def table_options(args: argparse.Namespace) -> dict:
    return {
        "statuses": statuses_of(args),
        "maximize": args.maximize,
        "minimize": args.minimize,
    }
