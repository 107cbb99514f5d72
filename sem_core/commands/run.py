"""``sem run [EXPERIMENT] [--models m_a m_b] [OVERRIDES...]``: every model file of an experiment
in one command (see ``sem_core.multi`` for how)."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  sem run                                   every row of every models/m_*.py of the experiment here
  sem run examples/regression --models m_gd fold=0,1
  sem run hydra/launcher=local hydra.launcher.n_jobs=4     4 jobs at a time across all the files
  sem run hydra/launcher=slurm hydra.launcher.wait=false   submit every file's arrays and exit
  sem run sem.skip_completed=true          skip rows done already (by anyone, with a database)
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "args",
        nargs="*",
        metavar="[EXPERIMENT] OVERRIDES",
        help="the experiment folder (default: the one around the working directory), then row "
        "selections and overrides (fold=1, +order_id=0,3, ++lr=0.1), sem.* settings and Hydra "
        "overrides (hydra/launcher=slurm), applied to every model file",
    )
    p.add_argument(
        "--models",
        nargs="+",
        metavar="MODEL",
        default=None,
        help="only these model files (m_gd or m_gd.py); default: every models/m_*.py",
    )


def split_models(args: argparse.Namespace) -> tuple[list[str] | None, list[str]]:
    """``--models m_a m_b fold=1``: argparse gives everything after --models to it; what looks
    like an override (``=``, ``+``, ``~``) belongs to the overrides."""
    if not args.models:
        return None, list(args.args)
    models = [m for m in args.models if "=" not in m and not m.startswith(("+", "~"))]
    extra = [m for m in args.models if m not in models]
    return models, list(args.args) + extra


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="run the rows of every model file of an experiment (or of those named) in one command",
        description="Run every model file of an experiment, each as its own Hydra multirun (as `python m_x.py "
        "OVERRIDES` would), with the same overrides. Every file's sweep is planned before any job starts; "
        "local launchers share one job budget across the files; Slurm arrays of all files are submitted "
        "at once. One summary table, one exit code.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sem_core import multi

    names, rest = split_models(args)
    target, overrides = multi.split_target(rest)
    experiment_dir = multi.experiment_of(target)
    files = multi.model_files(experiment_dir, names)
    plans = multi.plan_files(files, overrides)
    n_jobs = sum(len(p.jobs) for p in plans)
    n_skipped = sum(len(p.skipped) for p in plans)
    print(
        f"sem run: {len(plans)} model file{'s' if len(plans) != 1 else ''} of {experiment_dir}: "
        f"{n_jobs} job{'s' if n_jobs != 1 else ''} to run" + (f", {n_skipped} row(s) skipped" if n_skipped else ""),
        flush=True,
    )
    return multi.run_files(plans, overrides)
