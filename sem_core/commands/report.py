"""``sem report``: one self-contained HTML file with the results table, plots, status counts and
failed runs."""

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
    problem_log,
    table_options,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="write a self-contained HTML report (table, plots, failures)")
    add_path(p)
    add_table_options(p)
    add_where(p)
    add_strict(p)
    p.add_argument("--title", default=None, help="page title (default: the experiment folder's name)")
    p.add_argument("-o", "--output", metavar="FILE", default="report.html", help="HTML file (default report.html)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sem_core.results.report import build_report, write_report

    runs = filtered_runs(args)
    sources = runs.attrs.get("sem", {}).get("sources", [])
    title = args.title or "sem results: " + ", ".join(_experiment_name(s) for s in sources)
    text = build_report(
        runs,
        metrics=args.metric or None,
        group_by=args.group_by or None,
        title=title,
        source=", ".join(sources),
        on_problem=problem_log(args),
        **table_options(args),
    )
    out = write_report(Path(args.output), text)
    print(f"wrote {out} ({len(text) // 1024} KiB)", file=sys.stderr)
    return exit_code(args)


def _experiment_name(source: str) -> str:
    from pathlib import Path

    p = Path(source)
    if p.name == "runs" and p.parent.name == "models":
        return p.parent.parent.name
    return p.name or source
