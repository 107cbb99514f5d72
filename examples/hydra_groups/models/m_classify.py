"""Logistic regression or a small MLP on two Gaussian blobs, configured by a Hydra config tree.

Each row chooses config-group options (``model``, ``optimizer``, ``model/activation``) and
sets keys (``optimizer.lr``, ``fold``); Hydra composes the job's config from conf/config.yaml
with those choices, and ``main`` receives it. The ids hash the row as written.
"""

import numpy as np

from sem_core import Experiment, grid

ex = Experiment(__file__, config_path="conf", config_name="config")


@ex.configs
def get_config():
    return grid(model=["linear", "mlp"], optimizer=["sgd", "adam"], fold=range(2)) + [
        {"model": "mlp", "model/activation": "tanh", "optimizer": "adam", "optimizer.lr": 0.05, "fold": 0},
    ]


def blobs(n_samples: int, dim: int, separation: float, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n_samples)
    X = rng.normal(size=(n_samples, dim)) + separation * y[:, None]
    return X, y


@ex.automain
def main(config):
    data, model, opt = config["data"], config["model"], config["optimizer"]
    X, y = blobs(data["n_samples"], data["dim"], data["separation"], seed=0)
    test = np.arange(len(y)) % 2 == config["fold"]
    rng = np.random.default_rng(config["seed"])
    hidden = model["hidden"] or X.shape[1]
    W1 = rng.normal(scale=0.5, size=(X.shape[1], hidden)) if model["hidden"] else np.eye(X.shape[1])
    w2 = np.zeros(hidden)
    act = np.tanh if model.get("activation", {}).get("name") == "tanh" else (lambda a: np.maximum(a, 0))
    if not model["hidden"]:
        act = lambda a: a  # noqa: E731 (the linear model has no hidden layer)
    m = v = np.zeros(hidden)
    for epoch in range(config["epochs"]):
        for start in range(0, int((~test).sum()), config["batch_size"]):
            xb, yb = X[~test][start : start + config["batch_size"]], y[~test][start : start + config["batch_size"]]
            h = act(xb @ W1)
            p = 1 / (1 + np.exp(-h @ w2))
            grad = h.T @ (p - yb) / len(yb)
            if opt["name"] == "adam":
                m = opt["beta1"] * m + (1 - opt["beta1"]) * grad
                v = opt["beta2"] * v + (1 - opt["beta2"]) * grad**2
                w2 = w2 - opt["lr"] * m / (np.sqrt(v) + 1e-8)
            else:
                m = opt["momentum"] * m + grad
                w2 = w2 - opt["lr"] * m
        accuracy = float(((act(X[test] @ W1) @ w2 > 0) == y[test]).mean())
        ex.log_scalar("test_accuracy", accuracy, step=epoch)
    return accuracy
