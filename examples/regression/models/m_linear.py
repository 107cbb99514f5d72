"""Ordinary least squares on synthetic data, one run per noise level and fold (NUM_FOLDS in experiment_config.yaml)."""

import pickle
from pathlib import Path

import numpy as np

from sem_core import Experiment, grid

from data import N_FOLDS, make_data, split

ex = Experiment(__file__)


@ex.configs
def get_config():
    return grid(name="linear", noise=[0.1, 0.5], fold=range(N_FOLDS))


@ex.automain
def main(config):
    X, Y = make_data(noise=config["noise"])
    X_train, Y_train, X_test, Y_test = split(X, Y, config["fold"])
    w, *_ = np.linalg.lstsq(X_train, Y_train, rcond=None)

    def predict(X):
        return X @ w

    train_metrics, _ = ex.log_metrics(X_train, Y_train, predict, prefix="train")
    test_metrics, _ = ex.log_metrics(X_test, Y_test, predict, prefix="test")
    print(f"fold {config['fold']}: test rmse {test_metrics['test_rmse']:.4f}")

    results_dir = Path(__file__).resolve().parent.parent / "results"
    results_dir.mkdir(exist_ok=True)
    path = results_dir / f"{config['global_id']}.pickle"
    with open(path, "wb") as fh:
        pickle.dump({"weights": w, "metrics": test_metrics}, fh)
    ex.add_artifact(path, name="model.pickle")
    return test_metrics["test_rmse"]
