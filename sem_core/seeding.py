"""The random seed of a row: derived from its experiment_id unless the row sets ``seed``, and
applied to ``random``, numpy and torch before the model function runs."""

from __future__ import annotations

import random
import sys
from collections.abc import Mapping
from typing import Any

from sem_core.errors import ConfigError


def derive_seed(experiment_id: str) -> int:
    """The seed of a row: the first 31 bits of its experiment_id (stable across machines,
    users and sweeps; in range for numpy, random, torch and TensorFlow)."""
    try:
        return int(experiment_id[:8], 16) & 0x7FFFFFFF
    except (TypeError, ValueError):
        raise ValueError(f"experiment_id must be a hex string, got {experiment_id!r}") from None


def with_seed(config: Mapping[str, Any], experiment_id: str) -> dict:
    """``config`` with ``seed`` derived from ``experiment_id``, unless the row sets its own."""
    out = dict(config)
    if "seed" not in out:
        out["seed"] = derive_seed(experiment_id)
        return out
    seed = out["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(
            f"row order_id {out.get('order_id')}: seed must be an integer from 0 to 2**32-1 (numpy's range), "
            f"got {seed!r}; fix the row, or drop its 'seed' key to get one derived from experiment_id"
        )
    return out


def seed_everything(seed: int) -> None:
    """Seed ``random``, numpy's global generator and, when already imported, torch."""
    random.seed(seed)
    try:
        import numpy
    except ImportError:
        pass
    else:
        numpy.random.seed(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
