"""``sem plan MODEL_FILE [OVERRIDES...]``: the jobs a command line would run, without running them."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "plan",
        help="list the jobs `python MODEL_FILE OVERRIDES` would run (ids included), without running them",
        description="Plan a sweep: select and override rows exactly as `python MODEL_FILE OVERRIDES` would, "
        "and print one line per job. Nothing runs and nothing is written.",
    )
    p.add_argument("model_file", help="path to m_<model>.py")
    p.add_argument("overrides", nargs="*", help="row overrides: +order_id=0,3  fold=1  ++lr=0.1  +seed=1,2")
    p.add_argument("--json", action="store_true", help="print the jobs as JSON lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sem_core.experiment import load_model_file, split_argv
    from sem_core.sweep import plan_experiment

    experiment = load_model_file(args.model_file)
    hydra_argv, row_overrides = split_argv(list(args.overrides), experiment)
    jobs = plan_experiment(experiment, row_overrides)
    if hydra_argv:
        print(f"(Hydra options not used for planning: {' '.join(hydra_argv)})")
    for job in jobs:
        if args.json:
            print(json.dumps({"order_id": job.order_id, "experiment_id": job.experiment_id,
                              "config_id": job.config_id, "row": job.row}, sort_keys=True))
        else:
            print(f"{job.order_id:>5}  {job.experiment_id}  {job.config_id}  {json.dumps(job.row, sort_keys=True)}")
    if not args.json:
        print(f"{len(jobs)} jobs from {experiment.path}")
    return 0
