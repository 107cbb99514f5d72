"""Results: load runs into pandas, aggregate over folds, render tables, plots and reports.

The names below are imported on first use, so that ``sem --help`` (whose subcommands import
``sem_core.commands.shared_args``) does not pay for importing pandas.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "NoRunsFound": "sem_core.results.load",
    "find_experiment_dir": "sem_core.results.load",
    "load_runs": "sem_core.results.load",
    "RunResult": "sem_core.results.runs",
    "get_runs": "sem_core.results.runs",
    "ResultsTable": "sem_core.results.table",
    "UnknownName": "sem_core.results.table",
    "filter_runs": "sem_core.results.table",
    "results_table": "sem_core.results.table",
    "counted_runs": "sem_core.results.table",
}

__all__ = sorted(_EXPORTS)  # noqa: PLE0605 - the names above, imported on first use by __getattr__


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sem_core.results' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
