"""Ridge regression on synthetic data: 3 penalties x 5 folds = 15 runs."""

import numpy as np

from sem_core import Experiment, grid

ex = Experiment(__file__)


@ex.configs
def get_config():
    return grid(alpha=[0.01, 1.0, 100.0], fold=range(5))


@ex.automain
def main(config):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    Y = X @ [1.0, 2.0, 3.0] + 0.5 * rng.normal(size=200)
    test = np.arange(200) % 5 == config["fold"]
    A, b = X[~test], Y[~test]
    w = np.linalg.solve(A.T @ A + config["alpha"] * np.eye(3), A.T @ b)
    metrics, _ = ex.log_metrics(X[test], Y[test], lambda X: X @ w, prefix="test")
    return metrics["test_rmse"]
