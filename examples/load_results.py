"""Read an experiment's runs with pandas: python examples/load_results.py [EXPERIMENT_FOLDER]."""

import sys

from sem_core.results import get_runs, load_runs, render, results_table

experiment = sys.argv[1] if len(sys.argv) > 1 else "."

# One row per run: ids, model, status, start/stop/duration, host, path,
# config keys (nested ones as a.b) and the last value of every metric.
runs = load_runs(experiment)
columns = ["model", "order_id", "status", "fold", "test_rmse"]
print(runs.sort_values(columns)[columns].head(3).to_string(index=False))

# Mean, std and count over the folds of each configuration; table.excluded says which runs were left out.
table = results_table(runs, metrics=["test_rmse"], where={"model": "m_linear.py"})
print(table.frame)
print(render.to_markdown(table))  # also to_latex, to_csv, to_terminal, to_html

# Whole runs, artifacts included (unpickling runs code: load pickles only from runs you trust).
for run in get_runs(experiment, match={"noise": 0.1, "fold": 0}, load_artifacts=True):
    # metrics: the last value of each; loaded: the artifacts, unpickled
    print(run.experiment_id, run.metrics["test_rmse"], run.loaded["model.pickle"]["weights"])
