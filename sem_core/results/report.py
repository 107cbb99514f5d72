"""A self-contained static HTML report: one file, CSS inline, plots as base64 PNG, no scripts,
no server, no CDN. Holds the status counts, the results table (footnote: what was excluded),
one plot per metric and the failed runs with the end of their traceback and output."""

from __future__ import annotations

import base64
import datetime as dt
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sem_core import records
from sem_core.results.load import record_at
from sem_core.results.plot import figure_png, plot_metric
from sem_core.results.render import inline_code, metric_column_groups, to_html
from sem_core.results.show import output_of, output_without_trace, user_trace
from sem_core.results.table import ResultsTable, results_table
from sem_core.run_status import RunStatus

TRACE_LINES = 25
OUTPUT_LINES = 20
MAX_FAILED_SHOWN = 50
OPEN_FAILED = 5  # the first failures are shown unfolded

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1360px; padding: 0 1rem; color: #1d2127; background: #fff; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.25rem; margin-top: 2rem;
       border-bottom: 1px solid #d8dde3; padding-bottom: .3rem; }
.meta { color: #5b6470; font-size: .9rem; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .92rem; }
th, td { padding: .35rem .7rem; border-bottom: 1px solid #e4e8ec; text-align: left; }
thead th { border-bottom: 2px solid #8d96a0; background: #f5f7f9; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.label { min-width: 12rem; overflow-wrap: anywhere; }
code { font-size: .9em; background: #f0f2f4; padding: 0 .25em; border-radius: 3px; }
td.best { font-weight: 700; background: #e7f6ea; }
.footnote { color: #5b6470; font-size: .88rem; }
.status-COMPLETED { color: #1a7f37; } .status-FAILED { color: #c62828; }
.status-RUNNING, .status-QUEUED { color: #9a6700; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(600px, 1fr)); gap: 1rem; }
figure { margin: 0; } figure.wide { grid-column: 1 / -1; } figure img { max-width: 100%; border: 1px solid #e4e8ec; }
details { margin: .6rem 0; } summary { cursor: pointer; font-weight: 600; }
pre { background: #f6f8fa; padding: .7rem; overflow-x: auto; font-size: .82rem; line-height: 1.35;
      white-space: pre-wrap; overflow-wrap: anywhere; }
@media print {
  @page { margin: 14mm; }
  body { margin: 0; max-width: none; font-size: 10pt; }
  table { font-size: 8.5pt; page-break-inside: auto; } tr { page-break-inside: avoid; }
  th, td { padding: .2rem .45rem; } td.label { min-width: 9rem; }
  .table-wrap { overflow: visible; }
  thead th, td.best { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  .plots { display: block; } figure { page-break-inside: avoid; margin-bottom: .6rem; }
  figure img { max-width: 100%; max-height: 120mm; }
  pre { font-size: 7.5pt; }
}
"""
METRICS_PER_TABLE = 4  # metric columns in one table: each stays readable at 1280 px and on A4


def _tail(text: str, lines: int) -> str:
    parts = text.rstrip("\n").splitlines()
    return "\n".join(parts[-lines:])


def status_counts(runs: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in runs["status"].fillna("UNKNOWN").value_counts().sort_index().items()}


def failed_runs_html(runs: pd.DataFrame, on_problem: records.OnProblem = records.warn_problem) -> str:
    e = html.escape
    failed = runs[runs["status"] == RunStatus.FAILED]
    if failed.empty:
        return "<p>No failed runs.</p>"
    out = []
    for i, (_, row) in enumerate(failed.head(MAX_FAILED_SHOWN).iterrows()):
        try:
            record = record_at(row["path"], on_problem)
        except FileNotFoundError:
            continue  # moved away (sem clean) since the runs were listed
        except records.CorruptRecord as exc:  # damaged since the runs were listed
            on_problem(exc.problem)
            continue
        trace = user_trace("".join(record.run.get("fail_trace") or []) or "(no traceback recorded)")
        output = _tail(output_without_trace(output_of(record), str(row["global_id"])), OUTPUT_LINES)
        last_line = _tail(trace, 1)
        out.append(
            f'<details class="failed-run"{" open" if i < OPEN_FAILED else ""}>'
            f"<summary>{e(str(row['global_id']))} · order_id {e(str(row['order_id']))}"
            f" · {e(str(row['model']))} — {e(last_line)}</summary>"
            f'<p class="meta">{e(str(row["path"]))}</p>'
            f"<pre>{e(_tail(trace, TRACE_LINES))}</pre>"
            + (f"<p>Last {OUTPUT_LINES} lines of output:</p><pre>{e(output)}</pre>" if output else "")
            + "</details>"
        )
    if len(failed) > MAX_FAILED_SHOWN:
        out.append(f"<p>… and {len(failed) - MAX_FAILED_SHOWN} more (<code>sem ls --where status=FAILED</code>).</p>")
    return "\n".join(out)


def build_report(
    runs: pd.DataFrame,
    *,
    metrics: Sequence[str] | None = None,
    group_by: Sequence[str] | None = None,
    title: str = "sem results",
    source: str = "",
    decimals: int = 4,
    on_problem: records.OnProblem = records.warn_problem,
    **table_options: Any,
) -> str:
    """The report as one HTML string (see module docstring)."""
    e = html.escape
    table: ResultsTable = results_table(runs, metrics=metrics, group_by=group_by, **table_options)
    counts = status_counts(runs)
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f'<p class="meta">{e(source)} · {len(runs)} runs · generated {generated}</p>',
        "<h2>Status</h2>",
        '<table class="status"><thead><tr><th>status</th><th class="num">runs</th></tr></thead><tbody>',
    ]
    for status, n in counts.items():
        parts.append(f'<tr><td class="status-{e(status)}">{e(status)}</td><td class="num">{n}</td></tr>')
    parts.append("</tbody></table>")
    parts.append("<h2>Results</h2>")
    if len(table.frame):
        parts.append(
            '<p class="meta">Last value of each metric per run; mean ± std (sample, ddof=1) over the runs '
            "of each configuration; best mean in bold (↓ lower is better, ↑ higher is better).</p>"
        )
        for columns in metric_column_groups(table, METRICS_PER_TABLE):
            parts.append(f'<div class="table-wrap">{to_html(table, decimals, columns, footnote=False)}</div>')
        if table.footnote:
            parts.append(f'<p class="footnote">{inline_code(table.footnote)}</p>')
    else:
        parts.append("<p>No completed runs to aggregate.</p>")
        if table.footnote:
            parts.append(f'<p class="footnote">{inline_code(table.footnote)}</p>')
    if len(table.frame):
        parts.append("<h2>Metrics</h2>")
        parts.append(
            '<p class="meta">Each plot: mean ± std over the runs of each configuration. A metric logged '
            "at every step is drawn over the steps; a metric logged once per run is one point per "
            "configuration.</p>"
        )
        parts.append('<div class="plots">')
        read: dict = {}  # each run's metrics, read once for all the plots
        for metric in table.metrics:
            fig = plot_metric(runs, metric, table=table, read=read, on_problem=on_problem)
            data = base64.b64encode(figure_png(fig)).decode("ascii")
            wide = ' class="wide"' if fig.get_figwidth() > 8 else ""  # a curve beside single values: a whole row
            parts.append(f'<figure{wide}><img alt="{e(metric)}" src="data:image/png;base64,{data}"></figure>')
        parts.append("</div>")
    parts.append("<h2>Failed runs</h2>")
    parts.append(failed_runs_html(runs, on_problem))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(path: Path, html_text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records.atomic_write_text(path, html_text)
    return path
