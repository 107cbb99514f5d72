"""Every part of a model file, on ridge regression read from data/train.csv."""

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sem_core import Experiment, grid
from sem_core.util import read_yaml


@dataclass
class Row:  # optional: every row must fit it before any job starts
    alpha: float
    fold: int
    solver: str


ex = Experiment(__file__, schema=Row)  # replicate_keys=("fold",) is the default
ec = read_yaml("../experiment_config.yaml")  # relative to this file, not to the working directory
EXPERIMENT = Path(__file__).resolve().parent.parent


@ex.configs
def get_config():
    # any list of dicts; grid() builds the product of its axes (the last one fastest)
    return grid(alpha=[0.1, 10.0], fold=range(3), solver="gd") + [{"alpha": 1.0, "fold": 0, "solver": "lstsq"}]


@ex.checkpoint  # called before a Slurm requeue (timeout, preemption) with the row
def save_state(config):
    print(f"saving the state of {config['global_id']}")


@ex.automain  # runs only when the file is executed
def main(config):
    # config: the row + experiment_id, config_id, order_id, global_id and seed
    data = np.loadtxt(EXPERIMENT / "data/train.csv", delimiter=",")[: ec["N_SAMPLES"]]
    X, Y = data[:, :-1], data[:, -1]
    test = np.arange(len(Y)) % 3 == config["fold"]
    A, b = X[~test], Y[~test]
    w = np.zeros(X.shape[1])
    for step in range(20):  # a training curve: one point per step
        w -= 0.1 * (A.T @ (A @ w - b) / len(b) + config["alpha"] * w / len(b))
        ex.log_scalar("train_mse", float(np.mean((A @ w - b) ** 2)), step=step)
    if config["solver"] == "lstsq":
        w, *_ = np.linalg.lstsq(A, b, rcond=None)
    metrics, _ = ex.log_metrics(X[test], Y[test], lambda X: X @ w, prefix="test")  # rmse, mae, mse, r2
    ex.add_resource(EXPERIMENT / "data/train.csv")  # an input file, stored once per content
    weights = EXPERIMENT / "results" / f"{config['global_id']}.pickle"
    weights.parent.mkdir(exist_ok=True)
    weights.write_bytes(pickle.dumps(w))
    ex.add_artifact(weights, name="model.pickle")  # a copy kept in the run's folder
    ex.info["weights"] = w.tolist()  # saved with the run, in info.json
    return metrics["test_rmse"]  # the run's result
