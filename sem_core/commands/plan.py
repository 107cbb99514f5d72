"""``sem plan [EXPERIMENT | MODEL_FILE] [--models ...] [OVERRIDES...]``: the jobs a command line
would run, and the rows ``sem.skip_completed``/``sem.rerun`` would skip, without running them."""

from __future__ import annotations

import argparse
import json

EPILOG = """examples:
  sem plan models/m_linear.py fold=1            the jobs `python m_linear.py fold=1` would run
  sem plan                                       every model file of the experiment here (as `sem run`)
  sem plan --models m_gd sem.skip_completed=true which rows would run and which would be skipped, and why
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from sem_core.commands.run import add_arguments

    p = subparsers.add_parser(
        "plan",
        help="list the jobs a model file or `sem run` would run (ids included) and the rows it would skip",
        description="Plan sweeps without running them: select and override rows exactly as `python MODEL_FILE "
        "OVERRIDES` (or `sem run` for an experiment folder) would, and print one line per row: the jobs to "
        "run and, with sem.skip_completed / sem.rerun, the rows skipped and why. Nothing runs and nothing "
        "is written.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object per row")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sem_core import multi
    from sem_core.commands.run import split_models

    names, rest = split_models(args)
    target, overrides = multi.split_target(rest)
    if target is not None and Path(target).is_file():
        if names:
            raise multi.ConfigError("--models goes with an experiment folder, not with a model file")
        files = [Path(target)]
    else:
        files = multi.model_files(multi.experiment_of(target), names)
    plans = multi.plan_files(files, overrides)
    several = len(plans) > 1
    entries = []
    for plan in plans:
        skipped = {s.order_id: s for s in plan.skipped}
        jobs = [(j.order_id, j, None) for j in plan.jobs] + [(s.order_id, None, s) for s in plan.skipped]
        for order_id, job, skip in sorted(jobs, key=lambda t: t[0]):
            entries.append(
                {
                    "model": plan.path.stem,
                    "order_id": order_id,
                    "experiment_id": job.experiment_id if job else skip.experiment_id,
                    "config_id": job.config_id if job else None,
                    "action": "run" if job else "skip",
                    "reason": skip.reason if skip else None,
                    "row": job.row if job else None,
                }
            )
        del skipped
    unused = [a for a in plans[0].hydra_argv if not a.lstrip("+~").startswith("sem.")] if plans else []
    if args.json:
        for e in entries:
            print(json.dumps({k: v for k, v in e.items() if v is not None or k in ("row",)}, sort_keys=True))
        return 0
    header = (("model",) if several else ()) + ("order_id", "experiment_id", "config_id", "action", "row / reason")
    table = []
    for e in entries:
        detail = json.dumps(e["row"], sort_keys=True) if e["action"] == "run" else e["reason"]
        table.append(
            ((e["model"],) if several else ())
            + (str(e["order_id"]), e["experiment_id"], e["config_id"] or "-", e["action"], detail)
        )
    widths = [max(len(h), *(len(t[i]) for t in table)) if table else len(h) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    for t in table:
        print("  ".join(c.ljust(w) for c, w in zip(t, widths)).rstrip())
    n_run = sum(1 for e in entries if e["action"] == "run")
    n_skip = len(entries) - n_run
    where = plans[0].path if len(plans) == 1 else f"{len(plans)} model files"
    print(
        f"{n_run} job{'s' if n_run != 1 else ''} to run"
        + (f", {n_skip} row(s) skipped" if n_skip else "")
        + f" from {where}"
    )
    if unused:
        print(f"(Hydra options not used for planning: {' '.join(unused)})")
    return 0
