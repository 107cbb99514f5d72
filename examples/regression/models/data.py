"""Synthetic regression data shared by the model files (a sibling module they import)."""

import numpy as np

from sem_core.util import read_yaml

# the experiment's own setting, next to sem's (read_yaml resolves the path from this file's folder)
N_FOLDS = read_yaml("../experiment_config.yaml")["NUM_FOLDS"]


def make_data(n: int = 200, d: int = 3, noise: float = 0.3, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w = np.arange(1, d + 1, dtype=float)
    Y = X @ w + noise * rng.normal(size=n)
    return X, Y


def split(X, Y, fold: int, n_folds: int = N_FOLDS):
    """Train/test split of fold ``fold`` of ``n_folds`` (contiguous blocks)."""
    idx = np.arange(len(Y))
    test = (idx % n_folds) == fold
    return X[~test], Y[~test], X[test], Y[test]
