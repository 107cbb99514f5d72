"""A starter model file (written by `sem init`): replace the data and the model with yours.

Run every row of ``get_config`` (from the experiment folder)::

    python models/m_example.py -m               # all rows, one after the other
    python models/m_example.py -m fold=0        # only the rows with fold 0
    sem results                                 # mean and std over the folds

Each row is one run, recorded under models/runs/<global_id>/ with its config, metrics and output.
"""

import numpy as np

from sem_core import Experiment, grid
from sem_core.util import read_yaml

ex = Experiment(__file__)
# your own settings, next to sem's (read_yaml resolves the path from this file's folder)
settings = read_yaml("../experiment_config.yaml")


@ex.configs
def get_config():
    # one row per combination: 2 step sizes x NUM_FOLDS folds
    return grid(lr=[0.01, 0.1], epochs=20, fold=range(settings["NUM_FOLDS"]))


def make_data(n: int = 120, seed: int = 0):
    """Synthetic linear data; a real model file loads its data set here."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    Y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=n)
    return X, Y


@ex.automain
def main(config):
    X, Y = make_data()
    test = np.arange(len(Y)) % settings["NUM_FOLDS"] == config["fold"]
    X_train, Y_train = X[~test], Y[~test]
    # config["seed"] is this row's random seed (derived from its experiment_id): use it for
    # anything random, so a rerun of the row gives the same numbers
    w = np.random.default_rng(config["seed"]).normal(scale=0.01, size=X.shape[1])
    for epoch in range(config["epochs"]):
        w -= config["lr"] * X_train.T @ (X_train @ w - Y_train) / len(Y_train)
        ex.log_scalar("train_mse", float(np.mean((X_train @ w - Y_train) ** 2)), step=epoch)
    metrics, _ = ex.log_metrics(X[test], Y[test], lambda X: X @ w, prefix="test")
    return metrics["test_rmse"]
