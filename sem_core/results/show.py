"""Find one run by any of its ids (or a unique prefix) and describe it as text."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from sem_core import records
from sem_core.errors import SemError
from sem_core.ids import ID_KEYS
from sem_core.results.load import by_recency
from sem_core.run_status import RunStatus
from sem_core.traces import user_trace

ID_COLUMNS = ("global_id", "experiment_id", "config_id")
MAX_LISTED = 8


def find_runs(runs: pd.DataFrame, ident: str) -> tuple[pd.DataFrame, str]:
    """(the runs carrying the one id that ``ident`` is, or is a prefix of, in start order; which
    id column matched). Several different ids matching -> ``SemError`` listing them."""
    ident = ident.strip()
    if not ident:
        raise SemError("empty run id")
    hits: dict[tuple[str, str], int] = {}
    for col in ID_COLUMNS:
        values = runs[col].dropna().astype(str)
        for value in values[values.str.startswith(ident)].unique():
            hits[(col, value)] = int((values == value).sum())
    exact = [k for k in hits if k[1] == ident]
    if exact:
        hits = {k: hits[k] for k in exact}
    if not hits:
        sources = ", ".join(runs.attrs.get("sem", {}).get("sources", [])) or "the given runs"
        raise SemError(
            f"no run has a global_id, experiment_id or config_id starting with {ident!r} "
            f"(looked at {len(runs)} runs in {sources}); `sem ls` lists them"
        )
    if len({v for _, v in hits}) > 1:
        shown = sorted(hits.items())[:MAX_LISTED]
        listed = "; ".join(f"{col} {value} ({n} run{'s' if n != 1 else ''})" for (col, value), n in shown)
        more = f"; and {len(hits) - len(shown)} more" if len(hits) > len(shown) else ""
        raise SemError(f"{ident!r} is a prefix of {len(hits)} ids: {listed}{more}; give more characters")
    col, value = next(iter(hits))
    matched = by_recency(runs[runs[col].astype(str) == value])
    return matched, col


def output_without_trace(output: str, global_id: str) -> str:
    """The job's output with the failure report sem printed into it (``sem: run ID: failed:``
    and the traceback that follows, which the record holds) cut to its first line."""
    lines = output.splitlines()
    marker = f"sem: run {global_id}: failed:"
    for i, line in enumerate(lines):
        if line.startswith(marker):
            end = i + 1
            if end < len(lines) and lines[end].startswith("Traceback"):
                end += 1
                while end < len(lines) and (
                    lines[end].startswith((" ", "\t"))
                    or not lines[end].strip()
                    or lines[end].startswith(("During handling", "The above exception", "Traceback"))
                ):
                    end += 1
                end += 1  # the exception line
            return "\n".join([*lines[:i], f"{marker} (traceback above)", *lines[end:]])
    return output


def _fmt_time(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return str(value)


def _metric_lines(metrics: dict) -> list[str]:
    if not metrics:
        return ["  (none logged)"]
    width = max(len(n) for n in metrics)
    out = []
    for name, series in sorted(metrics.items()):
        values = [v for v in series.get("values", []) if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if not values:
            out.append(f"  {name:<{width}}  {records.plural(len(series.get('values', [])), 'point')} (not numeric)")
            continue
        finite = [v for v in values if not math.isnan(v)]
        lo = min(finite) if finite else math.nan
        hi = max(finite) if finite else math.nan
        points = records.plural(len(values), "point")
        out.append(f"  {name:<{width}}  last {values[-1]:.6g}  min {lo:.6g}  max {hi:.6g}  ({points})")
    return out


def output_of(record: records.RunRecord) -> str:
    """The captured stdout/stderr of a run (cout.txt, or captured_out of a MongoDB run)."""
    if hasattr(record, "captured_out"):  # a MongoDB run (sem_core.mongo.reader)
        return record.captured_out or ""
    path = Path(record.location) / records.COUT_FILE
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


def describe_run(record: records.RunRecord, tail: int = 30, full_trace: bool = False) -> str:
    run = record.run
    host = run.get("host") or {}
    seconds = records.run_duration(run, live=True)
    status = record.observed_status
    lines = [
        f"run {record.global_id}  [{status}]",
        f"  model          {record.model or '-'}",
        f"  experiment_id  {record.experiment_id or '-'}",
        f"  config_id      {record.config_id or '-'}",
        f"  order_id       {record.order_id if record.order_id is not None else '-'}",
        f"  host           {host.get('hostname', '-') if isinstance(host, dict) else host}",
        f"  started        {_fmt_time(run.get('start_time') or run.get('queue_time'))}",
        f"  stopped        {_fmt_time(run.get('stop_time'))}",
        f"  duration       {records.format_duration(seconds)}",
        f"  location       {record.location}",
        "",
        "config:",
    ]
    config = {k: v for k, v in record.config.items() if k not in ID_KEYS}
    for key in sorted(config):
        lines.append(f"  {key}: {json.dumps(config[key], default=str)}")
    if run.get("result") is not None:
        lines += ["", f"result: {json.dumps(run['result'], default=str)}"]
    lines += ["", "metrics:", *_metric_lines(record.metrics)]
    artifacts = run.get("artifacts") or []
    lines += ["", "artifacts:"]
    if not artifacts:
        lines.append("  (none)")
    for name in artifacts:
        if hasattr(record, "artifact_bytes"):  # a MongoDB run: the artifact is in GridFS
            lines.append(f"  {name}  (GridFS of {record.location})")
            continue
        path = Path(record.location) / str(name)
        size = f"{path.stat().st_size} bytes" if path.is_file() else "missing"
        lines.append(f"  {name}  {path}  ({size})")
    if status == RunStatus.FAILED:
        trace = "".join(run.get("fail_trace") or []) or "(no traceback recorded)\n"
        lines += ["", "traceback:", (trace if full_trace else user_trace(trace)).rstrip("\n")]
    if status != RunStatus.COMPLETED:
        output = output_of(record)
        if status == RunStatus.FAILED:
            output = output_without_trace(output, str(record.global_id))
        output_lines = output.rstrip("\n").splitlines()
        lines += [
            "",
            f"output (last {min(tail, len(output_lines))} of {len(output_lines)} lines):",
            *output_lines[-tail:],
        ]
    return "\n".join(lines) + "\n"
