"""Renderings of a ResultsTable: terminal (rich), Markdown, LaTeX (booktabs), CSV and HTML.

Cells read ``mean ± std``; the best mean of each column is bold; a cell whose metric is missing
in some runs of the row says how many had it (``(n=3)``). Headers carry the direction (↓ lower
is better, ↑ higher is better). The footnote says which runs were excluded and why.
"""

from __future__ import annotations

import html
import io
import math
import shutil
from typing import TYPE_CHECKING, Any

from sem_core.results.table import ResultsTable, format_value

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

ARROWS = {"min": "↓", "max": "↑"}
LATEX_ARROWS = {"min": r"$\downarrow$", "max": r"$\uparrow$"}


def _prefix_text(table: ResultsTable, prefix: tuple) -> str:
    return f"{table.pivot}={format_value(prefix[0])}" if prefix else ""


def _number(x: float, decimals: int) -> str:
    return f"{x:.{decimals}f}"


def cell_text(table: ResultsTable, row: int, prefix: tuple, metric: str, decimals: int, pm: str = "±") -> str:
    mean, std, count = table.cell(row, prefix, metric)
    if math.isnan(mean):
        return "–"
    text = _number(mean, decimals)
    if not math.isnan(std):
        text += f" {pm} {_number(std, decimals)}"
    runs = table.runs_per_row[row] if table.pivot is None else None
    if runs is not None and count < runs:
        text += f" (n={count})"
    return text


def _metric_columns(table: ResultsTable) -> list[tuple[tuple, str]]:
    return [(p, m) for p in table.column_prefixes for m in table.metrics if (*p, m, "mean") in table.frame.columns]


def _header(table: ResultsTable, prefix: tuple, metric: str, arrows: dict = ARROWS) -> str:
    head = f"{metric} {arrows[table.directions[metric]]}"
    return f"{_prefix_text(table, prefix)} {head}" if prefix else head


def _row_heads(label: tuple) -> list[str]:
    """One row's heading cells from its entry in ``table.row_labels()`` (built once per table)."""
    return [str(label[0]), *(format_value(v) for v in label[1:])]


def _head_names(table: ResultsTable) -> list[str]:
    return ["configuration", *table.results_by]


# -- terminal ------------------------------------------------------------------------------------


def to_rich(
    table: ResultsTable,
    decimals: int = 4,
    title: str | None = None,
    columns: list[tuple[tuple, str]] | None = None,
    stacked: bool = False,
) -> Table:
    """A rich Table without its footnote. ``columns``: the (prefix, metric) columns shown
    (default: all); ``stacked`` puts ``± std`` under the mean, which halves a column's width."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    # Text objects, not markup strings: labels such as "layers=[64, 32]" must print as they are.
    # No vertical rules: the width they would take goes to the numbers.
    out = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for name in _head_names(table):
        out.add_column(Text(name), overflow="fold")
    out.add_column("runs", justify="right", no_wrap=True)
    columns = _metric_columns(table) if columns is None else columns
    for p, m in columns:
        out.add_column(Text(_header(table, p, m)), justify="right", no_wrap=True)
    labels = table.row_labels()
    for i in range(len(table.frame)):
        cells = []
        for p, m in columns:
            text = cell_text(table, i, p, m, decimals)
            if stacked:
                text = text.replace(" ± ", "\n± ", 1).replace(" (n=", "\n(n=", 1)
            cells.append(Text(text, style="bold green" if (i, p, m) in table.best else ""))
        out.add_row(*(Text(h) for h in _row_heads(labels[i])), str(table.runs_per_row[i]), *cells)
    return out


LABEL_MIN_WIDTH = 16  # a label wraps at the spaces between its keys; narrower, the keys break


def _needed_width(table: ResultsTable, decimals: int, columns: list[tuple[tuple, str]], stacked: bool) -> int:
    """Columns the table needs with its labels wrapped to their narrowest readable width."""
    from rich.cells import cell_len

    rendered = render_text(to_rich(table, decimals, columns=columns, stacked=stacked), None, False)
    full = max((cell_len(line) for line in rendered.splitlines()), default=0)
    labels = [_head_names(table)[0], *(str(r[0]) for r in table.row_labels())]
    natural = max(cell_len(t) for t in labels)
    narrow = max([LABEL_MIN_WIDTH, *(cell_len(w) for t in labels for w in t.split())])
    return full - max(0, natural - narrow)


def render_text(renderable: Any, width: int | None = None, color: bool = False) -> str:
    """A rich renderable as text ``width`` columns wide (None: as wide as it needs), without
    trailing spaces."""
    from rich.console import Console

    buf = io.StringIO()
    console = Console(
        file=buf,
        width=width or 100_000,
        force_terminal=color,
        color_system="standard" if color else None,
        no_color=not color,
    )
    console.print(renderable)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"


def terminal_width(stream: Any) -> int | None:
    """The width output to ``stream`` must fit: the terminal's, else ``$COLUMNS`` when set, else
    None (piped to a tool: print in full, never cut)."""
    import os

    if stream.isatty():
        return shutil.get_terminal_size((80, 24)).columns
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else None


def to_terminal(
    table: ResultsTable, decimals: int = 4, width: int | None = None, color: bool = True, hidden_note: str = ""
) -> str:
    """The table and its footnote as text no wider than ``width`` (None: as wide as it needs).
    When the cells do not fit on one line each, ``± std`` goes under the mean; when that is still
    too wide, the last metric columns are left out and the footnote names them."""
    from rich.text import Text

    columns = _metric_columns(table)
    stacked = False
    if width is not None and _needed_width(table, decimals, columns, False) > width:
        stacked = True
        while len(columns) > 1 and _needed_width(table, decimals, columns, True) > width:
            columns = columns[:-1]
    left_out = [_header(table, p, m) for p, m in _metric_columns(table)[len(columns) :]]
    notes = [n for n in (table.footnote, hidden_note) if n]
    if left_out:
        notes.append(
            f"Not shown, to fit {width} columns: {', '.join(left_out)} (choose with --metric M, or widen the terminal)."
        )
    text = render_text(to_rich(table, decimals, columns=columns, stacked=stacked), width, color)
    if notes:
        text += render_text(Text(" ".join(notes)), width, color)
    return text


# -- Markdown ------------------------------------------------------------------------------------


def _md_escape(text: str) -> str:
    return text.replace("|", r"\|")


def to_markdown(table: ResultsTable, decimals: int = 4) -> str:
    columns = _metric_columns(table)
    heads = [*_head_names(table), "runs", *(_header(table, p, m) for p, m in columns)]
    align = ["---"] * len(_head_names(table)) + ["---:"] * (1 + len(columns))
    lines = ["| " + " | ".join(_md_escape(h) for h in heads) + " |", "| " + " | ".join(align) + " |"]
    labels = table.row_labels()
    for i in range(len(table.frame)):
        cells = []
        for p, m in columns:
            text = cell_text(table, i, p, m, decimals)
            cells.append(f"**{text}**" if (i, p, m) in table.best else text)
        row = [*_row_heads(labels[i]), str(table.runs_per_row[i]), *cells]
        lines.append("| " + " | ".join(_md_escape(c) for c in row) + " |")
    if table.footnote:
        lines += ["", table.footnote]
    return "\n".join(lines) + "\n"


# -- LaTeX (booktabs) ----------------------------------------------------------------------------

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _latex_cell(table: ResultsTable, row: int, prefix: tuple, metric: str, decimals: int) -> str:
    mean, std, count = table.cell(row, prefix, metric)
    if math.isnan(mean):
        return "--"
    body = _number(mean, decimals)
    if not math.isnan(std):
        body += rf" \pm {_number(std, decimals)}"
    if (row, prefix, metric) in table.best:
        body = rf"\mathbf{{{body}}}"
    text = f"${body}$"
    if table.pivot is None and count < table.runs_per_row[row]:
        text += f" ($n={count}$)"
    return text


def to_latex(table: ResultsTable, decimals: int = 3, caption: str | None = None) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``); the footnote as a comment."""
    columns = _metric_columns(table)
    n_heads = len(_head_names(table))
    lines = ["% sem results table; needs \\usepackage{booktabs}"]
    if table.footnote:
        lines.append("% " + table.footnote)
    lines.append(r"\begin{tabular}{" + "l" * n_heads + "c" * len(columns) + "}")
    lines.append(r"\toprule")
    if table.pivot is not None:
        spans, start = [], n_heads + 1
        top = [""] * n_heads
        for p in table.column_prefixes:
            width = sum(1 for q, _ in columns if q == p)
            top.append(rf"\multicolumn{{{width}}}{{c}}{{{latex_escape(_prefix_text(table, p))}}}")
            spans.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
            start += width
        lines.append(" & ".join(top) + r" \\")
        lines.append(" ".join(spans))
    metric_heads = [f"{latex_escape(m)} {LATEX_ARROWS[table.directions[m]]}" for _, m in columns]
    heads = [latex_escape(h.capitalize() if i == 0 else h) for i, h in enumerate(_head_names(table))]
    lines.append(" & ".join([*heads, *metric_heads]) + r" \\")
    lines.append(r"\midrule")
    labels = table.row_labels()
    for i in range(len(table.frame)):
        cells = [_latex_cell(table, i, p, m, decimals) for p, m in columns]
        lines.append(" & ".join([*(latex_escape(h) for h in _row_heads(labels[i])), *cells]) + r" \\")
    lines.append(r"\bottomrule")
    lines.append(r"\end{tabular}")
    if caption:
        lines.insert(1, f"% {caption}")
    return "\n".join(lines) + "\n"


# -- CSV -----------------------------------------------------------------------------------------


def csv_frame(table: ResultsTable) -> pd.DataFrame:
    """The table as flat columns: configuration, the key columns, runs, then ``<metric>_<stat>``
    (``<pivot>=<value>/<metric>_<stat>`` with a pivot) at full precision."""
    import pandas as pd

    flat = pd.DataFrame({"configuration": [r[0] for r in table.row_labels()]})
    for col in table.keys.columns:
        flat[col] = table.keys[col].values
    flat["runs"] = table.runs_per_row
    for col in table.frame.columns:
        *prefix, metric, stat = tuple(col)
        name = f"{metric}_{stat}"
        if prefix:
            name = f"{_prefix_text(table, tuple(prefix))}/{name}"
        flat[name] = table.frame[col].values
    return flat


def to_csv(table: ResultsTable) -> str:
    return csv_frame(table).to_csv(index=False)


# -- HTML (for the report) -----------------------------------------------------------------------


def inline_code(text: str) -> str:
    """``text`` escaped for HTML, with its `backticked` spans as <code>."""
    import re

    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def to_html(
    table: ResultsTable, decimals: int = 4, columns: list[tuple[tuple, str]] | None = None, footnote: bool = True
) -> str:
    """A plain ``<table class="results">`` of ``columns`` (default: every metric); every metric
    cell carries ``data-metric``, ``data-mean``, ``data-std`` and ``data-count`` (full precision)
    for machines."""
    e = html.escape
    columns = _metric_columns(table) if columns is None else columns
    out = ['<table class="results">', "<thead><tr>"]
    out += [f"<th>{e(h)}</th>" for h in _head_names(table)]
    out.append('<th class="num">runs</th>')
    out += [f'<th class="num">{e(_header(table, p, m))}</th>' for p, m in columns]
    out.append("</tr></thead><tbody>")
    labels = table.row_labels()
    for i in range(len(table.frame)):
        out.append("<tr>")
        heads = _row_heads(labels[i])
        out.append(f'<td class="label">{e(heads[0])}</td>')
        out += [f"<td>{e(h)}</td>" for h in heads[1:]]
        out.append(f'<td class="num">{table.runs_per_row[i]}</td>')
        for p, m in columns:
            mean, std, count = table.cell(i, p, m)
            cls = "num best" if (i, p, m) in table.best else "num"
            attrs = f'data-metric="{e(m)}" data-mean="{mean!r}" data-std="{std!r}" data-count="{count}"'
            if p:
                attrs += f' data-pivot="{e(format_value(p[0]))}"'
            out.append(f'<td class="{cls}" {attrs}>{e(cell_text(table, i, p, m, decimals))}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    if footnote and table.footnote:
        out.append(f'<p class="footnote">{inline_code(table.footnote)}</p>')
    return "\n".join(out)


def metric_column_groups(table: ResultsTable, per_group: int) -> list[list[tuple[tuple, str]]]:
    """The metric columns in groups of at most ``per_group``: one table each, so that every
    column is readable on a screen and on paper however many metrics there are."""
    columns = _metric_columns(table)
    return [columns[i : i + per_group] for i in range(0, len(columns), per_group)]
