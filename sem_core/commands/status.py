"""``sem status [PATH]``: runs per model file and status, with records that still say
QUEUED/RUNNING reconciled against Slurm (sacct/squeue) and stale heartbeats.

A job Slurm cancelled, timed out or killed is shown as such and its record updated; a Slurm
query that fails or does not know a job is reported and changes nothing. Exit code 1 when a
Slurm query failed."""

from __future__ import annotations

import argparse
import sys

from sem_core.run_status import ACTIVE_STATUSES, RunStatus

STATUS_ORDER = tuple(RunStatus)


def add_selection(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "path",
        nargs="*",
        metavar="PATH",
        help="experiment folder, run store or sweep folder (multirun/..., holding sem_sweep.json); "
        "default: the experiment folder around the current directory",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    from sem_core.commands.shared_args import add_strict

    p = subparsers.add_parser(
        "status",
        help="run counts per model and status, reconciled with Slurm",
        description="Count the runs per model file and status. Records that still say QUEUED or RUNNING "
        "are checked against Slurm (sacct, squeue) and their heartbeat: a job Slurm cancelled, timed out or "
        "killed, or a local run whose heartbeat stopped, is shown as such and its record updated. Exit code "
        "1 when a Slurm query failed.",
    )
    add_selection(p)
    add_strict(p)
    p.add_argument("--no-update", action="store_true", help="show the reconciled status without rewriting records")
    p.add_argument(
        "--stale-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="a local RUNNING run without a heartbeat for this long is dead "
        "(default: 10 heartbeat intervals, at least 120 s)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from sem_core.commands.shared_args import exit_code, problem_log
    from sem_core.slurm.reconcile import reconcile_runs
    from sem_core.slurm.selection import select_runs

    selected, where = select_runs(args.path, problem_log(args))
    states, errors = reconcile_runs(selected, stale_after_s=args.stale_after, write=not args.no_update)
    console = Console(file=sys.stdout, width=max(100, Console().width), force_terminal=sys.stdout.isatty())
    counts: dict[str, dict[str, int]] = {}
    for s in states:
        model = s.record.model or "?"
        counts.setdefault(model, {})
        counts[model][s.shown] = counts[model].get(s.shown, 0) + 1
    seen = {status for per in counts.values() for status in per}
    columns = [c for c in STATUS_ORDER if c in seen] + sorted(seen - set(STATUS_ORDER))
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("model")
    for c in columns:
        table.add_column(c, justify="right")
    table.add_column("total", justify="right")
    for model in sorted(counts):
        per = counts[model]
        table.add_row(model, *(str(per.get(c, 0)) for c in columns), str(sum(per.values())))
    console.print(f"runs in {where}", highlight=False)
    console.print(table)
    updated = [s for s in states if s.updated]
    for s in updated:
        console.print(f"updated {s.record.global_id}: {s.record.status} -> {s.shown} ({s.reason})", highlight=False)
    unknown = [s for s in states if s.reason and not s.updated and s.shown in ACTIVE_STATUSES]
    for s in unknown:
        console.print(f"left as recorded {s.record.global_id} ({s.shown}): {s.reason}", highlight=False)
    for error in errors:
        print(f"sem status: Slurm query failed, states of the affected runs are unknown: {error}", file=sys.stderr)
    if not args.no_update and updated:
        console.print(f"{len(updated)} record(s) updated", highlight=False)
    return exit_code(args, 1 if errors else 0)
