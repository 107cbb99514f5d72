"""Results: load runs into pandas, aggregate over folds, render tables, plots and reports."""

from sem_core.results.load import NoRunsFound, find_experiment_dir, load_runs
from sem_core.results.runs import RunResult, get_runs
from sem_core.results.table import ResultsTable, UnknownName, filter_runs, results_table, select_runs

__all__ = [
    "NoRunsFound",
    "ResultsTable",
    "RunResult",
    "UnknownName",
    "filter_runs",
    "find_experiment_dir",
    "get_runs",
    "load_runs",
    "results_table",
    "select_runs",
]
