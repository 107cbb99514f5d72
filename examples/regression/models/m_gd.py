"""Linear regression by gradient descent: logs a training curve per step."""

import numpy as np

from sem_core import Experiment, grid

from data import N_FOLDS, make_data, split

ex = Experiment(__file__)


@ex.configs
def get_config():
    return grid(name="gd", lr=[0.01, 0.1], epochs=50, fold=range(N_FOLDS))


@ex.automain
def main(config):
    X, Y = make_data()
    X_train, Y_train, X_test, Y_test = split(X, Y, config["fold"])
    w = np.zeros(X.shape[1])
    for epoch in range(config["epochs"]):
        grad = X_train.T @ (X_train @ w - Y_train) / len(Y_train)
        w -= config["lr"] * grad
        ex.log_scalar("train_mse", float(np.mean((X_train @ w - Y_train) ** 2)), step=epoch)
    metrics, _ = ex.log_metrics(X_test, Y_test, lambda X: X @ w, prefix="test")
    ex.info["weights"] = w.tolist()
    return metrics["test_rmse"]
