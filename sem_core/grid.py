"""``grid(**axes)``: the Cartesian product of value lists as a list of rows."""

from __future__ import annotations

import itertools
from typing import Any


def grid(*grids: Any, **axes: Any) -> list[dict]:
    """``grid(name=["a", "b"], fold=range(5))`` -> 10 rows, the last axis varying fastest.

    Positional arguments are grids (lists of rows, or dicts of axes) concatenated in order:
    ``grid(grid(model=["gp"], fold=range(5)), {"model": ["linear"], "fold": range(5)})``.
    A scalar axis value (a str or number) counts as a single value.
    """
    rows: list[dict] = []
    for g in grids:
        if isinstance(g, dict):
            rows.extend(grid(**g))
        else:
            rows.extend(dict(r) for r in g)
    if axes:
        names = list(axes)
        values = [_as_values(v) for v in axes.values()]
        rows.extend(dict(zip(names, combo)) for combo in itertools.product(*values))
    return rows


def _as_values(v: Any) -> list:
    if isinstance(v, (str, bytes, dict)) or not hasattr(v, "__iter__"):
        return [v]
    return list(v)
