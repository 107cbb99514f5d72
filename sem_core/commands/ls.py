"""``sem ls``: one line per run (every status): ids, status, duration, key metrics."""

from __future__ import annotations

import argparse
import math
import sys

from sem_core.results.cli_args import add_path, add_strict, add_where, exit_code, filtered_runs

DEFAULT_METRICS_SHOWN = 3


def register(subparsers) -> None:
    p = subparsers.add_parser("ls", help="list runs: ids, status, duration, key metrics")
    add_path(p)
    add_where(p)
    add_strict(p)
    p.add_argument("--status", action="append", default=[], metavar="S", help="only runs with status S (repeatable)")
    p.add_argument("--metric", action="append", default=[], metavar="M",
                   help=f"metric column to show (repeatable; default: the first {DEFAULT_METRICS_SHOWN})")
    p.set_defaults(func=run)


def format_duration(seconds: float) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_metric(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}"


def run(args: argparse.Namespace) -> int:
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    from sem_core.results.load import available, by_recency, run_columns
    from sem_core.results.table import UnknownName

    runs = filtered_runs(args)
    cols = run_columns(runs)
    for m in args.metric:
        if m not in cols.metrics:
            raise UnknownName(f"unknown metric {m!r}; available metrics: {available(cols.metrics)}")
    shown = args.metric or list(cols.metrics)[:DEFAULT_METRICS_SHOWN]
    if args.status:
        runs = runs[runs["status"].isin([s.upper() for s in args.status])]
    runs = by_recency(runs)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("global_id", "experiment", "config", "order", "model", "status", "duration", *shown):
        table.add_column(name, justify="right" if name in ("order", "duration", *shown) else "left")
    for _, row in runs.iterrows():
        table.add_row(
            str(row["global_id"]),
            str(row["experiment_id"] or "")[:8],
            str(row["config_id"] or "")[:8],
            "" if pd.isna(row["order_id"]) else str(row["order_id"]),
            str(row["model"] or ""),
            str(row["status"]),
            format_duration(row["duration"]),
            *(format_metric(row[cols.metrics[m]]) for m in shown),
        )
    console = Console(file=sys.stdout, width=max(120, Console().width), force_terminal=sys.stdout.isatty())
    console.print(table)
    counts = runs["status"].value_counts()
    console.print(f"{len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items()), highlight=False)
    return exit_code(args)
