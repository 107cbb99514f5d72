"""ex.log_metrics: regression metrics against independent numpy computations."""

import math

import numpy as np
import pytest

from sem_core.metrics import regression_metrics


def test_metrics_values_and_prefix():
    X = np.arange(6, dtype=float)
    Y = np.array([0.0, 1.0, 2.5, 2.0, 4.0, 6.0])
    pred = lambda x: x  # noqa: E731
    m, p = regression_metrics(X, Y, pred, prefix="test")
    err = Y - X
    assert m["test_mse"] == pytest.approx(np.mean(err**2))
    assert m["test_rmse"] == pytest.approx(math.sqrt(np.mean(err**2)))
    assert m["test_mae"] == pytest.approx(np.mean(np.abs(err)))
    assert m["test_r2"] == pytest.approx(1 - np.sum(err**2) / np.sum((Y - Y.mean()) ** 2))
    assert np.array_equal(p, X)


def test_nan_targets_are_dropped_and_nlpd_with_variance():
    X = np.array([0.0, 1.0, 2.0, 3.0])
    Y = np.array([0.5, np.nan, 2.0, 2.0])
    m, (mean, var) = regression_metrics(X, Y, lambda x: (x, np.full_like(x, 0.25)), var_flag=True)
    keep = ~np.isnan(Y)
    err = Y[keep] - X[keep]
    assert m["mse"] == pytest.approx(np.mean(err**2))
    expected = np.mean(0.5 * np.log(2 * np.pi * 0.25) + 0.5 * err**2 / 0.25)
    assert m["nlpd"] == pytest.approx(expected)


def test_bad_prediction_shapes_are_clear():
    with pytest.raises(ValueError, match="must return \\(mean, var\\)"):
        regression_metrics([1, 2], [1, 2], lambda x: np.array(x), var_flag=True)
    with pytest.raises(ValueError, match="3 predictions for 2 targets"):
        regression_metrics([1, 2], [1, 2], lambda x: np.zeros(3))
