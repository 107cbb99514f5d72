"""Metric plots: one line per group (configuration) with a mean ± std band across its runs (folds).

matplotlib runs on the Agg backend: no display is needed. A metric logged once per run (a final
score) is drawn as one point per group with a ±std error bar instead of a curve; when some groups
logged a curve and others a single value, the two are drawn side by side, never on one axis.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from sem_core import records
from sem_core.results.load import is_mongo_location, record_at
from sem_core.results.table import ResultsTable, UnknownName, results_table

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def metric_series(
    path: str, metric: str, read: dict | None = None, on_problem: records.OnProblem = records.warn_problem
) -> pd.Series | None:
    """The values of ``metric`` of one run, indexed by step (None if the run didn't log it, or
    its metrics cannot be read: that goes to ``on_problem``).
    ``read``: path -> metrics already read (filled here), so several plots read each run once."""
    metrics = read.get(path) if read is not None else None
    if metrics is None:
        if is_mongo_location(path):
            metrics = record_at(path).metrics
        else:
            try:
                metrics = records.read_metrics(Path(path), on_problem)
            except records.CorruptRecord as exc:
                on_problem(exc.problem)
                metrics = {}
        if read is not None:
            read[path] = metrics
    series = metrics.get(metric)
    if not series or not series.get("values"):
        return None
    values = pd.to_numeric(pd.Series(series["values"]), errors="coerce")
    steps = series.get("steps") or list(range(len(values)))
    values.index = pd.Index(steps, name="step")
    # A step logged twice (e.g. a resumed run) keeps its last value.
    return values[~values.index.duplicated(keep="last")]


def band(series: Sequence[pd.Series]) -> pd.DataFrame:
    """Per step: mean, std (ddof=1) and count over the runs that logged that step. Pure."""
    frame = pd.concat(list(series), axis=1)
    return pd.DataFrame(
        {"mean": frame.mean(axis=1), "std": frame.std(axis=1), "count": frame.count(axis=1)}
    ).sort_index()


def curves(
    table: ResultsTable, metric: str, read: dict | None = None, on_problem: records.OnProblem = records.warn_problem
) -> dict[str, pd.DataFrame]:
    """label -> band of ``metric`` over the runs of each row of ``table``."""
    out = {}
    for (label, *_), paths in zip(table.row_labels(), table.row_paths):
        series = [s for s in (metric_series(p, metric, read, on_problem) for p in paths) if s is not None]
        if series:
            out[str(label).replace("$", r"\$")] = band(series)  # "$" would start matplotlib mathtext
    return out


def plot_metric(
    runs: pd.DataFrame,
    metric: str,
    group_by: Sequence[str] | None = None,
    *,
    table: ResultsTable | None = None,
    title: str | None = None,
    read: dict | None = None,
    on_problem: records.OnProblem = records.warn_problem,
    **table_options: Any,
) -> Figure:
    """A matplotlib Figure of ``metric`` (see module docstring). ``runs`` is a load_runs frame."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    table = table or results_table(runs, metrics=[metric], group_by=group_by, **table_options)
    if metric not in table.metrics:
        raise UnknownName(f"unknown metric {metric!r}; available metrics: {', '.join(table.metrics)}")
    data = curves(table, metric, read, on_problem)
    # A curve (several steps) and a single final value are different kinds of plot: a final
    # value drawn at step 0 next to a training curve reads as the curve's start.
    lines = {label: b for label, b in data.items() if len(b) > 1}
    points = {label: b for label, b in data.items() if len(b) == 1}
    point_height = 0.9 + 0.42 * len(points)
    height = max(3.6 if lines else 2.4, point_height if points else 0)
    fig = Figure(figsize=(7.5 if not (lines and points) else 11.5, height), dpi=110, layout="constrained")
    fig.suptitle(title or metric, fontsize="large")
    if not data:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, f"no run logged {metric}", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    if lines and points:
        curve_ax, point_ax = fig.subplots(1, 2, width_ratios=[3, 2])
    else:
        curve_ax = point_ax = fig.add_subplot()
    if lines:
        _draw_curves(curve_ax, lines, metric)
        if points:
            curve_ax.set_title("over steps", fontsize="medium")
    if points:
        _draw_points(point_ax, points, metric)
        if lines:
            point_ax.set_title("one value per run", fontsize="medium")
    return fig


def _wrap(label: str, width: int = 44) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(label, width, break_long_words=False)) or label


def _draw_curves(ax: Axes, data: dict, metric: str) -> None:
    from matplotlib.ticker import MaxNLocator

    for label, b in data.items():
        std = b["std"].fillna(0.0)
        (line,) = ax.plot(b.index, b["mean"], label=_wrap(f"{label} (n={int(b['count'].max())})", 48))
        ax.fill_between(b.index, b["mean"] - std, b["mean"] + std, color=line.get_color(), alpha=0.2, linewidth=0)
    steps = pd.Index([s for b in data.values() for s in b.index])
    integer_steps = pd.api.types.is_integer_dtype(steps) or all(float(s).is_integer() for s in steps)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=integer_steps))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.set_xlabel("step")
    ax.set_ylabel(f"{metric} (mean ± std)")
    ax.legend(fontsize="small", loc="best")
    ax.grid(True, alpha=0.3)


def _draw_points(ax: Axes, data: dict, metric: str) -> None:
    """One row per configuration, labels readable on the y axis, ± std as an error bar."""
    from matplotlib.ticker import MaxNLocator

    labels = list(data)
    means = [b["mean"].iloc[-1] for b in data.values()]
    stds = [0.0 if math.isnan(b["std"].iloc[-1]) else b["std"].iloc[-1] for b in data.values()]
    rows = list(range(len(labels)))[::-1]
    ax.errorbar(means, rows, xerr=stds, fmt="o", capsize=4)
    ax.set_yticks(rows, [_wrap(f"{lab} (n={int(b['count'].iloc[-1])})") for lab, b in data.items()], fontsize="small")
    ax.set_ylim(-0.6, len(labels) - 0.4)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.set_xlabel(f"{metric} (mean ± std)")
    ax.grid(True, alpha=0.3)


def figure_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
