"""``sem results``: the fold-aggregated results table (terminal, Markdown, LaTeX or CSV)."""

from __future__ import annotations

import argparse
import sys

from sem_core.commands.shared_args import (
    add_path,
    add_strict,
    add_table_options,
    add_where,
    exit_code,
    filtered_runs,
    table_options,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "results",
        help="results table: mean ± std of each metric over the folds of every configuration",
        description="Aggregate the last value of each metric over the runs of every configuration "
        "(config_id). Only COMPLETED runs count, newest per experiment_id; excluded runs are listed "
        "in the footnote.",
    )
    add_path(p)
    add_table_options(p)
    add_where(p)
    add_strict(p)
    p.add_argument("--by", action="append", default=[], metavar="K", help="break rows down by key K, e.g. --by fold")
    p.add_argument("--pivot", metavar="K", help="put the values of key K into columns")
    p.add_argument(
        "--all-metrics",
        action="store_true",
        help="show every metric in the terminal table (default there: the test_* metrics, when "
        "any were logged; the other formats always hold every metric)",
    )
    p.add_argument(
        "--format",
        choices=("table", "md", "latex", "csv"),
        default="table",
        help="table: for the terminal, fitted to its width (piped: to $COLUMNS when set, else "
        "full width); md: Markdown; latex: booktabs tabular; csv: every statistic, full precision",
    )
    p.add_argument("--decimals", type=int, default=None, help="digits after the point (default 4; 3 for latex)")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sem_core import records
    from sem_core.results import render
    from sem_core.results.load import run_columns
    from sem_core.results.table import default_metrics, results_table

    runs = filtered_runs(args)
    logged = list(run_columns(runs).metrics)
    metrics = args.metric or None
    hidden_note = ""
    if metrics is None and args.format == "table" and not args.all_metrics:
        metrics = default_metrics(logged)
        others = [m for m in logged if m not in metrics]
        if others:
            hidden_note = (
                f"Also logged: {', '.join(others)} (--all-metrics shows every metric, --metric M one of them)."
            )
    table = results_table(
        runs,
        metrics=metrics or None,
        group_by=args.group_by or None,
        results_by=args.by or None,
        pivot=args.pivot,
        **table_options(args),
    )
    if not len(table.frame):
        where = ", ".join(runs.attrs.get("sem", {}).get("sources", []))
        hint = "" if args.all_status else " Use --all-status to count runs of every status."
        print(
            f"no runs to aggregate in {where}." + (f" {table.footnote}" if table.footnote else "") + hint,
            file=sys.stderr,
        )
        return 1
    decimals = args.decimals if args.decimals is not None else (3 if args.format == "latex" else 4)
    if args.format == "table":
        to_terminal = args.output is None
        text = render.to_terminal(
            table,
            decimals,
            width=render.terminal_width(sys.stdout) if to_terminal else None,
            color=to_terminal and sys.stdout.isatty(),
            hidden_note=hidden_note,
        )
    elif args.format == "md":
        text = render.to_markdown(table, decimals)
    elif args.format == "latex":
        text = render.to_latex(table, decimals)
    else:
        text = render.to_csv(table)
    if args.output:
        from pathlib import Path

        records.atomic_write_text(Path(args.output), text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return exit_code(args)
