"""Rows as Hydra structured configs: a dataclass schema fills in defaults and enforces types."""

from dataclasses import dataclass, field

import numpy as np

from sem_core import Experiment, grid


@dataclass
class Data:
    n_samples: int = 200
    noise: float = 0.5


@dataclass
class Ridge:
    alpha: float = 1.0  # the penalty
    fold: int = 0
    data: Data = field(default_factory=Data)


ex = Experiment(__file__, schema=Ridge)


@ex.configs
def get_config():
    return grid(alpha=[0.1, 10], fold=range(2)) + [{"alpha": 1, "data": {"noise": 2}}]


@ex.automain
def main(config: Ridge):  # annotated with the schema: main receives a Ridge instance
    rng = np.random.default_rng(0)
    X = rng.normal(size=(config.data.n_samples, 3))
    Y = X @ [1.0, 2.0, 3.0] + config.data.noise * rng.normal(size=config.data.n_samples)
    test = np.arange(len(Y)) % 2 == config.fold
    A, b = X[~test], Y[~test]
    w = np.linalg.solve(A.T @ A + config.alpha * np.eye(3), A.T @ b)
    return float(np.sqrt(np.mean((X[test] @ w - Y[test]) ** 2)))
