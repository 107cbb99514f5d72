"""``sem ls``: one line per run (every status): ids, status, duration, key metrics."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from sem_core.commands.shared_args import add_path, add_strict, add_where, exit_code, filtered_runs

DEFAULT_METRICS_SHOWN = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ls",
        help="list runs: ids, status, duration, key metrics",
        description="List runs of every status, one line each, newest last: global_id, ids, status, "
        "duration and a few metrics, fitted to the terminal (piped: to $COLUMNS when set, else in full).",
    )
    add_path(p)
    add_where(p)
    add_strict(p)
    p.add_argument("--status", action="append", default=[], metavar="S", help="only runs with status S (repeatable)")
    p.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="M",
        help=f"metric column to show (repeatable; default: the first {DEFAULT_METRICS_SHOWN} test_* metrics, "
        "else the first of all)",
    )
    p.set_defaults(func=run)


def format_metric(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}"


# Columns left out, in this order, when the table is wider than the terminal: the short ids
# first (``sem show`` takes the global_id), then the metrics from the last; global_id, order,
# model, status and duration always stay.
DROPPED_FIRST = ("config", "experiment")


def run(args: argparse.Namespace) -> int:
    import pandas as pd
    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    from sem_core.records import format_duration, plural
    from sem_core.results.load import available, by_recency, run_columns
    from sem_core.results.render import render_text, terminal_width
    from sem_core.results.table import UnknownName, default_metrics

    runs = filtered_runs(args)
    cols = run_columns(runs)
    for m in args.metric:
        if m not in cols.metrics:
            raise UnknownName(f"unknown metric {m!r}; available metrics: {available(cols.metrics)}")
    shown = args.metric or default_metrics(cols.metrics)[:DEFAULT_METRICS_SHOWN]
    if args.status:
        runs = runs[runs["status"].isin([s.upper() for s in args.status])]
    runs = by_recency(runs)
    cells = {
        "global_id": [str(g) for g in runs["global_id"]],
        "experiment": [str(e or "")[:8] for e in runs["experiment_id"]],
        "config": [str(c or "")[:8] for c in runs["config_id"]],
        "order": ["" if pd.isna(o) else str(o) for o in runs["order_id"]],
        "model": [str(m or "") for m in runs["model"]],
        "status": [str(s) for s in runs["status"]],
        "duration": [format_duration(d) for d in runs["duration"]],
        **{m: [format_metric(v) for v in runs[cols.metrics[m]]] for m in shown},
    }
    right = {"order", "duration", *shown}

    def build(names: list) -> Table:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for name in names:
            table.add_column(name, justify="right" if name in right else "left", no_wrap=True)
        for row in zip(*(cells[n] for n in names)):
            table.add_row(*(Text(c) for c in row))
        return table

    names = list(cells)
    width = terminal_width(sys.stdout)
    left_out = []
    droppable = [*DROPPED_FIRST, *reversed(shown)]
    while width is not None and droppable and max(map(cell_len, render_text(build(names)).splitlines())) > width:
        left_out.append(droppable.pop(0))
        names.remove(left_out[-1])
    color = sys.stdout.isatty()
    text = render_text(build(names), width, color)
    counts = runs["status"].value_counts()
    text += f"{plural(len(runs), 'run')}: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + "\n"
    if left_out:
        text += render_text(
            Text(
                f"Not shown, to fit {width} columns: {', '.join(n for n in cells if n in left_out)} "
                "(choose metrics with --metric M, or widen the terminal)."
            ),
            width,
            color,
        )
    sys.stdout.write(text)
    return exit_code(args)
