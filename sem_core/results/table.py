"""Fold-aggregated results tables. Pure functions over a runs DataFrame (``load_runs``): no I/O.

The rules (also in the README, "Results"):

- by default only COMPLETED runs count, and only the newest run of each (model, experiment_id):
  older duplicates, failed, interrupted and still-running runs are *excluded and reported* in
  ``ResultsTable.excluded`` and the footnote, never averaged in;
- rows are groups: by default every (model, config_id), i.e. all folds of one configuration,
  labelled by the config keys whose value differs between groups; ``group_by`` names other keys;
- ``results_by`` (e.g. ``["fold"]``) breaks every group down further; ``pivot`` moves one key's
  values into columns;
- each cell is ``mean``, ``std`` (sample standard deviation, ddof=1) and ``count`` (runs with a
  value) of the last value of a metric; ``best`` marks the best mean per metric column within each
  ``results_by`` partition, lower-is-better unless the metric is maximised.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd

from sem_core.errors import SemError
from sem_core.results.load import RUN_COLUMNS, available, by_recency, run_columns
from sem_core.run_status import RunStatus

DEFAULT_STATUSES = (RunStatus.COMPLETED,)
AGGREGATES = ("mean", "std", "count")
GROUP = "group"
MAX_VALUES_LISTED = 20  # name of the index level holding the readable group label
# Metric names treated as higher-is-better unless told otherwise (shown as ↑ in every rendering).
_MAXIMISED = re.compile(
    r"(^|[_.\-/])(r2|acc|accuracy|auc|auroc|f1|precision|recall|ll|loglik|log_likelihood|likelihood|elpd|"
    r"score|iou|map|ndcg|bleu|rouge)($|[_.\-/])",
    re.IGNORECASE,
)


class UnknownName(SemError):
    """A metric or key that the runs don't have: the message lists the available ones."""


_FINAL = re.compile(r"^test($|[_.\-/])", re.IGNORECASE)


def default_metrics(names: Iterable[str]) -> list[str]:
    """The metrics a terminal table shows unless told: the final results (``test_*``, as
    ``ex.log_metrics(..., prefix="test")`` logs them) when there are any, else every metric."""
    names = list(names)
    final = [n for n in names if _FINAL.search(n)]
    return final or names


def default_direction(metric: str) -> str:
    """``"max"`` for names like r2/accuracy/auc/f1/log_likelihood, else ``"min"`` (errors, losses)."""
    return "max" if _MAXIMISED.search(metric) else "min"


# -- selecting runs ---------------------------------------------------------------------------


def coerce_like(text: str, values: Iterable[Any]) -> list[Any]:
    """Values a ``--where key=text`` may mean, given the column's values (``"0"`` matches 0 and 0.0,
    ``"true"`` matches True, ``"none"`` matches None)."""
    candidates: list[Any] = [text]
    low = text.strip().lower()
    if low in ("true", "false"):
        candidates.append(low == "true")
    if low in ("none", "null"):
        candidates.append(None)
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        candidates.append(number)
    return candidates


def _value_matches(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, str) and not isinstance(value, str):
        return any(_value_matches(value, c) for c in coerce_like(wanted, [value])[1:])
    if wanted is None:
        return value is None or (isinstance(value, float) and math.isnan(value))
    if isinstance(wanted, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(wanted, bool) and value == wanted
    if isinstance(wanted, (int, float)) and isinstance(value, (int, float)):
        return float(value) == float(wanted)
    return value == wanted


def filter_runs(runs: pd.DataFrame, where: Mapping[str, Any], strict: bool = False) -> pd.DataFrame:
    """Runs whose column ``key`` equals ``value`` for every item of ``where``. String values also
    match numbers and booleans they spell (command-line ``--where fold=0``). Unknown keys raise
    ``UnknownName`` listing the available keys; with ``strict``, so does a value no run has
    (listing the values the key takes)."""
    mask = pd.Series(True, index=runs.index)
    for key, wanted in where.items():
        column = _column_for(runs, key, "key")
        hits = runs[column].map(lambda v, w=wanted: _value_matches(v, w)).astype(bool)
        if strict and not (mask & hits).any():
            values = sorted({format_value(v) for v in runs.loc[mask, column]}, key=_sort_key)
            shown = ", ".join(values[:MAX_VALUES_LISTED]) + (" ..." if len(values) > MAX_VALUES_LISTED else "")
            raise UnknownName(
                f"no run has {key}={wanted}"
                + (" (with the other --where filters)" if len(where) > 1 else "")
                + f"; {key} takes: {shown or '(no values)'}"
            )
        mask &= hits
    return runs[mask]


def _column_for(runs: pd.DataFrame, key: str, what: str) -> str:
    if key in runs.columns:
        return key
    cols = run_columns(runs)
    if key in cols.metrics:
        return cols.metrics[key]
    for prefixed in (f"config.{key}", f"metric.{key}"):
        if prefixed in runs.columns:
            return prefixed
    names = [*RUN_COLUMNS, *cols.config] if what == "key" else list(cols.metrics)
    raise UnknownName(f"unknown {what} {key!r}; available {what}s: {available(names)}")


def counted_runs(
    runs: pd.DataFrame, statuses: Sequence[str] | None = DEFAULT_STATUSES, newest_only: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs a table counts, and the rest: (included, excluded). Included: a wanted status
    (``statuses=None``: any) and, with ``newest_only``, the newest run of each experiment_id.
    ``excluded`` has a ``reason`` column: the status, or ``"older duplicate of <global_id>"``."""
    reasons = pd.Series(pd.NA, index=runs.index, dtype="object")
    if statuses is not None:
        wanted = {s.upper() for s in statuses}
        off = ~runs["status"].isin(wanted)
        reasons[off] = runs.loc[off, "status"].fillna("UNKNOWN")
    if newest_only:
        kept = runs[reasons.isna()]
        identity = kept["experiment_id"].fillna(kept["global_id"])
        order = by_recency(kept.assign(_identity=identity, _model=kept["model"].fillna("")))
        newest = order.groupby(["_model", "_identity"], sort=False, dropna=False)["global_id"].transform("last")
        duplicate = order["global_id"] != newest
        reasons[duplicate[duplicate].index] = "older duplicate of " + newest[duplicate]
    excluded = runs[reasons.notna()].assign(reason=reasons[reasons.notna()])
    return runs[reasons.isna()], excluded


def exclusion_footnote(excluded: pd.DataFrame) -> str:
    """One sentence: how many runs were left out and why (empty if none)."""
    if excluded.empty:
        return ""
    kinds = excluded["reason"].map(lambda r: "older duplicate" if r.startswith("older duplicate") else r)
    counts = kinds.value_counts()
    parts = []
    for kind, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        noun = "run" if n == 1 else "runs"
        parts.append(f"{n} {str(kind).lower()} {noun}" if kind != "older duplicate" else f"{n} older duplicate {noun}")
    return "Excluded: " + ", ".join(parts) + " (not averaged; `sem ls` lists them)."


# -- the table ----------------------------------------------------------------------------------


@dataclass
class ResultsTable:
    """An aggregated table. ``frame``: index levels ``group`` (readable label) + ``results_by``;
    columns ``(metric, stat)``, or ``(pivot value, metric, stat)`` with a pivot."""

    frame: pd.DataFrame
    keys: pd.DataFrame  # per row: the values of the label keys (and model/config_id by default)
    metrics: list[str]
    directions: dict[str, str]
    best: set = field(default_factory=set)  # {(row position, column prefix tuple, metric)}
    runs_per_row: list[int] = field(default_factory=list)
    label_keys: list[str] = field(default_factory=list)
    results_by: list[str] = field(default_factory=list)
    pivot: str | None = None
    included: pd.DataFrame | None = None
    excluded: pd.DataFrame | None = None
    footnote: str = ""
    row_paths: list[list[str]] = field(default_factory=list)  # the runs (``path`` column) of each row
    _arrays: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def column_prefixes(self) -> list[tuple]:
        """Column groups before the metric: ``[()]`` without a pivot, ``[(v1,), (v2,), ...]`` with one."""
        if self.pivot is None:
            return [()]
        seen: dict = {}
        for col in self.frame.columns:
            seen.setdefault(col[:1], None)
        return list(seen)

    def cell(self, row: int, prefix: tuple, metric: str) -> tuple[float, float, int]:
        """(mean, std, count) of one cell; NaN/0 where the table has no such statistic."""
        arrays = self._arrays.get((prefix, metric))
        if arrays is None:
            arrays = self._arrays[(prefix, metric)] = tuple(
                self.frame[key].to_numpy(dtype=float, na_value=math.nan) if key in self.frame.columns else None
                for key in (prefix + (metric, stat) for stat in ("mean", "std", "count"))
            )
        mean, std, count = (a[row] if a is not None else math.nan for a in arrays)
        return float(mean), float(std), int(0 if math.isnan(count) else count)

    def row_labels(self) -> list[tuple]:
        return [idx if isinstance(idx, tuple) else (idx,) for idx in self.frame.index]


_MISSING_KEY = ("<missing>",)


def _norm_key(key: Any) -> tuple:
    """A group key as a tuple in which every missing value (None, NaN, NA) is one sentinel, so
    that keys from groupby and from the rows compare equal."""
    key = key if isinstance(key, tuple) else (key,)
    return tuple(_MISSING_KEY if _missing(v) else v for v in key)


def _sort_key(value: Any) -> tuple:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return (3, "")
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, (int, float)):
        return (0, float(value))
    return (1, str(value))


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def format_value(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "None"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _varying_keys(runs: pd.DataFrame, group_cols: list[str], candidates: list[str]) -> list[str]:
    """Config keys constant within every group and not constant across groups."""
    if runs.empty:
        return []
    grouped = runs.groupby(group_cols, sort=False, dropna=False)
    out = []
    for col in candidates:
        if runs[col].nunique(dropna=False) <= 1:
            continue
        if (grouped[col].nunique(dropna=False) <= 1).all():
            out.append(col)
    return out


def results_table(
    runs: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    group_by: Sequence[str] | None = None,
    results_by: Sequence[str] | None = None,
    agg: Sequence[str] = AGGREGATES,
    *,
    pivot: str | None = None,
    where: Mapping[str, Any] | None = None,
    statuses: Sequence[str] | None = DEFAULT_STATUSES,
    newest_only: bool = True,
    maximize: Iterable[str] = (),
    minimize: Iterable[str] = (),
) -> ResultsTable:
    """Aggregate the last value of ``metrics`` (default: all) over the runs of each group.

    See the module docstring for which runs count and how groups are formed. ``agg`` is a subset
    of mean/std/count. Unknown metrics or keys raise ``UnknownName`` listing the available ones.
    """
    cols = run_columns(runs)
    if where:
        runs = filter_runs(runs, where)
    results_by = list(results_by or [])
    group_by = list(group_by) if group_by else None
    metric_names = _requested_metrics(
        runs, cols, metrics, agg, [*(group_by or []), *results_by, *([pivot] if pivot else [])]
    )
    directions = _directions(cols, metric_names, set(maximize), set(minimize))

    included, excluded = counted_runs(runs, statuses, newest_only)
    footnote = _with_note(exclusion_footnote(excluded), _not_completed_note(included))
    by_cols = [_column_for(runs, k, "key") for k in results_by]
    pivot_col = _column_for(runs, pivot, "key") if pivot else None
    data = included.copy()
    data.attrs = {}  # pandas deep-copies attrs into every intermediate frame: costly per group
    if pivot_col:
        data, note = _without_pivot_value(data, pivot_col, pivot)
        footnote = _with_note(footnote, note)
    group_cols, label_keys = _grouping(data, cols.config, group_by, by_cols, pivot_col)
    stats = None
    if metric_names:
        stats = _aggregate(
            data, [cols.metrics[m] for m in metric_names], metric_names, [*group_cols, *by_cols], pivot_col, agg
        )
    else:  # nothing to average: say why the table is empty
        footnote = _with_note(footnote, "No run logged a metric.")
    if stats is None:
        frame = pd.DataFrame(
            index=pd.MultiIndex.from_tuples([], names=[GROUP, *results_by]),
            columns=pd.MultiIndex.from_arrays([[], []], names=[None, None]),
        )
        return ResultsTable(
            frame,
            pd.DataFrame(),
            metric_names,
            directions,
            set(),
            [],
            label_keys,
            results_by,
            pivot,
            included,
            excluded,
            footnote,
        )

    id_cols = (["model", "config_id"] if pivot_col is None else ["model"]) if group_by is None else []
    key_cols = list(dict.fromkeys([*id_cols, *label_keys, *by_cols]))
    info, paths = _row_records(data, [*group_cols, *by_cols], key_cols)
    entries = list(stats.index)
    row_keys = [_norm_key(r) for r in entries]
    order = _row_order(row_keys, info, label_keys)
    rows = [(entries[i], row_keys[i]) for i in order]
    labels = _row_labels(rows, info, label_keys, group_cols, explicit=group_by is not None)
    by_values = [(r if isinstance(r, tuple) else (r,))[len(group_cols) :] for r, _ in rows]
    ordered = stats.iloc[order]
    ordered.index = pd.MultiIndex.from_tuples(
        [(lab, *bv) for lab, bv in zip(labels, by_values)], names=[GROUP, *results_by]
    )
    if pivot_col:
        ordered = _pivot_columns_in_order(ordered, metric_names, agg)

    table = ResultsTable(
        frame=ordered,
        keys=pd.DataFrame({k: [info[rt][k] for _, rt in rows] for k in key_cols}, index=pd.RangeIndex(len(rows))),
        metrics=metric_names,
        directions=directions,
        runs_per_row=[len(paths[rt]) for _, rt in rows],
        label_keys=label_keys,
        results_by=results_by,
        pivot=pivot,
        included=included,
        excluded=excluded,
        footnote=footnote,
        row_paths=[paths[rt] for _, rt in rows],
    )
    table.best = find_best(table) if "mean" in agg else set()
    return table


def _requested_metrics(
    runs: pd.DataFrame, cols: Any, metrics: Sequence[str] | None, agg: Sequence[str], keys: Sequence[str]
) -> list[str]:
    """The metrics to show (default: every logged one), after checking the aggregates, the
    metrics and the keys asked for: ``UnknownName`` lists the available ones."""
    bad_agg = [a for a in agg if a not in AGGREGATES]
    if bad_agg:
        raise UnknownName(f"unknown aggregate(s) {bad_agg}; use some of {list(AGGREGATES)}")
    metric_names = list(metrics) if metrics else list(cols.metrics)
    for m in metric_names:
        if m not in cols.metrics:
            raise UnknownName(f"unknown metric {m!r}; available metrics: {available(cols.metrics)}")
    for key in keys:
        _column_for(runs, key, "key")
    return metric_names


def _directions(cols: Any, metric_names: Sequence[str], maximize: set, minimize: set) -> dict[str, str]:
    """``max`` or ``min`` per metric: as asked, else by its name (``default_direction``)."""
    for m in maximize | minimize:
        if m not in cols.metrics:
            raise UnknownName(
                f"unknown metric {m!r} in maximize/minimize; available metrics: {available(cols.metrics)}"
            )
    return {m: "max" if m in maximize else "min" if m in minimize else default_direction(m) for m in metric_names}


def _with_note(footnote: str, note: str) -> str:
    return f"{footnote} {note}" if footnote and note else footnote or note


def _not_completed_note(included: pd.DataFrame) -> str:
    """A sentence on the counted runs that did not complete (``statuses`` other than COMPLETED)."""
    not_completed = included["status"][included["status"] != RunStatus.COMPLETED].value_counts()
    if not len(not_completed):
        return ""
    counted = ", ".join(f"{n} {str(st).lower()}" for st, n in sorted(not_completed.items()))
    return f"Included runs that did not complete: {counted}."


def _without_pivot_value(data: pd.DataFrame, pivot_col: str, pivot: str | None) -> tuple[pd.DataFrame, str]:
    """The runs that have a value to pivot on, and a sentence on those left out."""
    lacking = data[pivot_col].map(_missing).astype(bool)
    if not lacking.any():
        return data, ""
    n = int(lacking.sum())
    return data[~lacking], f"{n} run{'s' if n != 1 else ''} without {pivot!r} not shown (nothing to pivot on)."


def _row_order(keys: Sequence[tuple], info: dict, label_keys: Sequence[str]) -> list[int]:
    """The rows (by their normalised keys) in table order: by the label keys' values (numbers
    numerically), then by the results_by values; a stable sort by ``_sort_key``, column by column."""
    width = len(keys[0]) if keys else 0
    columns = [[info[k][key] for k in keys] for key in label_keys]
    columns += [[k[j] for k in keys] for j in range(width)]
    if not columns:
        return list(range(len(keys)))
    return np.lexsort([_sort_ranks(c) for c in reversed(columns)]).tolist()


def _sort_ranks(values: list) -> np.ndarray:
    """Each value's rank in the order of ``_sort_key`` (values with equal keys, equal ranks),
    computed once per distinct value."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    unique_keys = [_sort_key(u) for u in uniques] + [_sort_key(None)]  # code -1: missing
    rank = {key: r for r, key in enumerate(sorted(set(unique_keys)))}
    return np.array([rank[k] for k in unique_keys])[codes]


def _row_labels(
    rows: Sequence[tuple[Any, tuple]], info: dict, label_keys: Sequence[str], group_cols: Sequence[str], explicit: bool
) -> list[str]:
    """The readable label of each row; rows that would read the same (they differ only in a key
    that also varies within a group) get their config_id's start appended."""
    labels = _labels([info[rt] for _, rt in rows], list(label_keys), explicit=explicit)
    by_values = [(r if isinstance(r, tuple) else (r,))[len(group_cols) :] for r, _ in rows]
    if len(set(zip(labels, by_values))) < len(labels):
        labels = [f"{lab} [{str(info[rt]['config_id'])[:8]}]" for lab, (_, rt) in zip(labels, rows)]
    return labels


def _pivot_columns_in_order(ordered: pd.DataFrame, metric_names: Sequence[str], agg: Sequence[str]) -> pd.DataFrame:
    """Columns ``(pivot value, metric, stat)`` ordered by pivot value, then as the metrics and aggregates were asked."""
    prefixes = sorted({c[0] for c in ordered.columns}, key=_sort_key)
    return ordered[[(p, m, a) for p in prefixes for m in metric_names for a in agg if (p, m, a) in ordered.columns]]


def _grouping(
    data: pd.DataFrame, config_cols: list[str], group_by: list[str] | None, by_cols: list[str], pivot_col: str | None
) -> tuple[list[str], list[str]]:
    """(columns that form the groups, config keys that label them). Adds ``_model``/``_config``
    columns to ``data`` for the default grouping by (model, config_id)."""
    if group_by is not None:
        group_cols = [_column_for(data, k, "key") for k in group_by]
        return group_cols, list(group_cols)
    data["_model"] = data["model"].fillna("")
    data["_config"] = data["config_id"].fillna(data["experiment_id"]).fillna(data["global_id"])
    group_cols = ["_model", "_config"]
    skip = set(by_cols) | ({pivot_col} if pivot_col else set())
    if pivot_col:
        # The pivot key is part of config_id: group by the other keys that vary instead, so that
        # one row holds every value of the pivot.
        label_keys = [k for k in _varying_keys(data, group_cols, list(config_cols)) if k not in skip]
        group_cols = ["_model", *label_keys]
    else:
        label_keys = _varying_keys(data, group_cols, [c for c in config_cols if c not in skip])
    if data["_model"].nunique() > 1 and "model" not in label_keys:
        label_keys = ["model", *label_keys]
    return group_cols, label_keys


def _aggregate(
    data: pd.DataFrame,
    metric_cols: list[str],
    metric_names: list[str],
    row_cols: list[str],
    pivot_col: str | None,
    agg: Sequence[str],
) -> pd.DataFrame | None:
    """Columns (metric, stat) - or (pivot value, metric, stat) - per row; groups without a value
    for any of the metrics (another model's metrics) are dropped. None if there is nothing."""
    if data.empty:
        return None
    frames = []
    keys = [*row_cols, *([pivot_col] if pivot_col else [])]
    grouped = data.groupby(keys, sort=False, dropna=False)
    for name, col in zip(metric_names, metric_cols):
        stats = grouped[col].agg(list(agg))
        stats.columns = pd.MultiIndex.from_tuples([(name, a) for a in stats.columns])
        if pivot_col:
            stats = cast(pd.DataFrame, stats.unstack(pivot_col))
            stats.columns = cast(pd.MultiIndex, stats.columns).reorder_levels([2, 0, 1])
        frames.append(stats)
    stats = pd.concat(frames, axis=1)
    if "count" in agg:
        counts = stats.loc[:, [c for c in stats.columns if c[-1] == "count"]]
        stats = stats[(counts.fillna(0) > 0).any(axis=1)]
    return stats


def _row_records(data: pd.DataFrame, row_cols: list[str], key_cols: list[str]) -> tuple[dict, dict]:
    """Per row key: the first run's values of the key columns, and the paths of all its runs."""
    grouped = data.groupby(row_cols, sort=False, dropna=False)
    firsts = grouped.head(1)[list(dict.fromkeys([*row_cols, *key_cols, "model", "config_id"]))]
    # groups are numbered in the order of their first run, the order of ``firsts``
    number = grouped.ngroup().to_numpy()
    by_group = np.argsort(number, kind="stable")
    ends = np.cumsum(np.bincount(number, minlength=len(firsts)))
    all_paths = data["path"].to_numpy(dtype=object)[by_group].tolist()
    info: dict[tuple, dict] = {}
    paths: dict[tuple, list[str]] = {}
    first_cols = list(firsts.columns)
    start = 0
    for values, end in zip(zip(*(firsts[c].tolist() for c in first_cols)), ends.tolist()):
        rec = dict(zip(first_cols, values))
        key = _norm_key(tuple(rec[c] for c in row_cols))
        info[key] = rec
        paths[key] = all_paths[start:end]
        start = end
    return info, paths


def _labels(records: list[dict], label_keys: list[str], explicit: bool) -> list[str]:
    """``model: k=v, ...`` per row. With the default grouping a key missing from a row's config
    (another model's key) is left out of its label; with an explicit group_by it reads ``k=None``."""
    out = []
    for rec in records:
        text = ", ".join(
            f"{k}={format_value(rec[k])}" for k in label_keys if k != "model" and (explicit or not _missing(rec[k]))
        )
        if "model" in label_keys:
            text = f"{format_value(rec['model'])}: {text}" if text else format_value(rec["model"])
        elif not label_keys:
            text = format_value(rec["model"]) if not explicit and rec["model"] is not None else "all runs"
        elif not text and not explicit and rec["model"] is not None:
            text = format_value(rec["model"])  # the row lacks every key that varies: never a blank label
        out.append(text)
    return out


def find_best(table: ResultsTable) -> set:
    """{(row, prefix, metric)} of the best mean in each column, within each results_by partition."""
    best: set[tuple] = set()
    partitions: dict[tuple, list[int]] = {}
    for i, idx in enumerate(table.row_labels()):
        partitions.setdefault(tuple(idx[1:]), []).append(i)
    members_of = [np.array(members) for members in partitions.values() if len(members) >= 2]
    for prefix in table.column_prefixes:
        for m in table.metrics:
            column = (*prefix, m, "mean")
            if column not in table.frame.columns:
                continue
            means = table.frame[column].to_numpy(dtype=float, na_value=math.nan)
            for members in members_of:
                values = means[members]
                known = ~np.isnan(values)
                if not known.any():
                    continue
                target = values[known].min() if table.directions[m] == "min" else values[known].max()
                best.update((int(i), prefix, m) for i in members[values == target])
    return best
