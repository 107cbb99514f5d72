"""``sem plot METRIC``: metric curves over steps, one line per configuration, mean ± std band."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sem_core.commands.shared_args import (
    add_path,
    add_strict,
    add_where,
    exit_code,
    filtered_runs,
    problem_log,
    statuses_of,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "plot",
        help="plot a metric over steps: mean ± std across the folds of each configuration",
        description="Draw METRIC, mean ± std across the runs (folds) of each configuration: a metric logged "
        "at every step as curves over the steps, a metric logged once per run as one point per "
        "configuration (both, side by side, when models differ).",
    )
    p.add_argument(
        "metric",
        metavar="METRIC",
        help="a metric name as logged, e.g. train_mse (a name not logged lists the logged ones)",
    )
    add_path(p)
    p.add_argument(
        "--group-by",
        action="append",
        default=[],
        metavar="K",
        help="one line per value of config key K instead of per config_id (repeatable)",
    )
    add_where(p)
    add_strict(p)
    p.add_argument("--all-status", action="store_true", help="include runs of every status, not only COMPLETED")
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="image file (.png, .pdf, .svg; default: <experiment>/sem/plots/METRIC.png)",
    )
    p.set_defaults(func=run)


def output_folder(paths: list[str]) -> Path:
    """Where sem writes what it draws unless told: ``<experiment>/sem/plots`` (the experiment
    of the first PATH, else the one around the current directory; else ``./sem/plots``). The
    ``sem`` folder holds a ``.gitignore`` of ``*``: git (and DVC, which reads .gitignore) leave
    it alone."""
    from sem_core.errors import SemError
    from sem_core.results.load import find_experiment_dir, is_mongo_location

    local = [p for p in paths if not is_mongo_location(p)]
    try:
        base = find_experiment_dir(Path(local[0]) if local else None)
    except SemError:
        base = Path.cwd()
    folder = base / "sem"
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# written by sem: generated files, not tracked\n*\n")
    return folder / "plots"


def run(args: argparse.Namespace) -> int:
    from sem_core.results.plot import plot_metric

    runs = filtered_runs(args)
    fig = plot_metric(
        runs,
        args.metric,
        group_by=args.group_by or None,
        statuses=statuses_of(args),
        on_problem=problem_log(args),
    )
    out = Path(args.output) if args.output else output_folder(args.path) / f"{args.metric.replace('/', '_')}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    print(f"wrote {out}", file=sys.stderr)
    return exit_code(args)
