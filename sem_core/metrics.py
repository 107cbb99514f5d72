"""Regression metrics for ``ex.log_metrics`` (pure numpy)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np


def regression_metrics(
    X: Any,
    Y: Any,
    prediction_fn: Callable[[Any], Any],
    var_flag: bool = False,
    prefix: str | None = None,
) -> tuple[dict, Any]:
    """Return ``(metrics, predictions)``.

    ``metrics``: rmse, mae, mse, r2 (and nlpd, the mean Gaussian negative log predictive
    density, when ``var_flag`` and ``prediction_fn`` returns ``(mean, var)``), over the
    targets that are not NaN. Names get ``<prefix>_`` in front when a prefix is given.
    ``predictions`` is what ``prediction_fn(X)`` returned, unchanged.
    """
    predictions = prediction_fn(X)
    if var_flag:
        if not (isinstance(predictions, (tuple, list)) and len(predictions) == 2):
            raise ValueError("ex.log_metrics(var_flag=True): prediction_fn must return (mean, var)")
        mean, var = (np.asarray(p, dtype=float) for p in predictions)
    else:
        mean, var = np.asarray(predictions, dtype=float), None
    y = np.asarray(Y, dtype=float)
    if mean.size != y.size:
        raise ValueError(f"ex.log_metrics: {mean.size} predictions for {y.size} targets")
    y, mean = y.reshape(-1), mean.reshape(-1)
    keep = ~np.isnan(y)
    y, mean = y[keep], mean[keep]
    if y.size == 0:
        raise ValueError("ex.log_metrics: every target is NaN; nothing to score")
    err = y - mean
    mse = float(np.mean(err**2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    metrics = {
        "rmse": math.sqrt(mse),
        "mae": float(np.mean(np.abs(err))),
        "mse": mse,
        "r2": 1.0 - float(np.sum(err**2)) / ss_tot if ss_tot > 0 else float("nan"),
    }
    if var is not None:
        v = var.reshape(-1)[keep]
        if np.any(v <= 0):
            raise ValueError("ex.log_metrics: predicted variances must be positive")
        metrics["nlpd"] = float(np.mean(0.5 * np.log(2 * np.pi * v) + 0.5 * err**2 / v))
    if prefix:
        metrics = {f"{prefix}_{k}": v for k, v in metrics.items()}
    return metrics, predictions
