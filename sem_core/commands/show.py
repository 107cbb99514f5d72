"""``sem show ID``: one run in full, by any of its ids or a unique prefix."""

from __future__ import annotations

import argparse
import sys

from sem_core.commands.shared_args import add_path, add_strict, exit_code, problem_log, source_of

OUTPUT_TAIL = 30


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "show",
        help="show one run: config, status, timings, metrics, artifacts, errors",
        description="Show one run: its config, status, times, host, a summary of each metric and its "
        "artifacts; a failed run also its traceback (your code's frames) and the end of its output. An "
        "experiment_id shows its newest run; a config_id lists its runs.",
    )
    p.add_argument("id", metavar="ID", help="global_id, experiment_id or config_id, or a unique prefix of one")
    add_path(p)
    add_strict(p)
    p.add_argument(
        "--tail", type=int, default=OUTPUT_TAIL, help=f"lines of output shown for a failed run (default {OUTPUT_TAIL})"
    )
    p.add_argument(
        "--full-trace", action="store_true", help="a failed run's whole traceback, with the frames of sem and Hydra"
    )
    p.add_argument(
        "--repro",
        action="store_true",
        help="print the commands that check out this run's code and data and rerun exactly its row",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sem_core.results.load import load_runs, record_at
    from sem_core.results.show import describe_run, find_runs

    runs = load_runs(source_of(args.path), on_problem=problem_log(args))
    matched, column = find_runs(runs, args.id)
    if column == "config_id" and len(matched) > 1:
        # A config_id names every fold of one configuration: list them rather than pick one.
        print(f"config_id {matched.iloc[0]['config_id']} has {len(matched)} runs; `sem show GLOBAL_ID` shows one:")
        for _, row in matched.iterrows():
            print(f"  {row['global_id']}  order {row['order_id']}  {row['status']}")
        return exit_code(args)
    record = record_at(matched.iloc[-1]["path"], problem_log(args))
    if getattr(args, "repro", False):
        from sem_core.repro import repro_commands

        print("\n".join(repro_commands(record)))
        return exit_code(args)
    sys.stdout.write(describe_run(record, tail=args.tail, full_trace=args.full_trace))
    if len(matched) > 1:
        others = ", ".join(f"{r['global_id']} ({r['status']})" for _, r in matched.iloc[:-1].iterrows())
        print(
            f"\nshown: the newest of {len(matched)} runs of experiment_id {matched.iloc[0]['experiment_id']}; "
            f"older: {others}"
        )
    return exit_code(args)
