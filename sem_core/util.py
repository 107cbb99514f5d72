"""Helpers for model files (kept from ``experiment_manager.util``, the predecessor tool's)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from sem_core import settings


def read_yaml(path: str | Path) -> Any:
    """Load a YAML file. A relative path is resolved against the folder of the file that
    calls ``read_yaml`` (so ``read_yaml('../experiment_config.yaml')`` in a model file works
    from any working directory); invalid YAML names the file and line."""
    path = Path(path)
    if not path.is_absolute():
        caller = inspect.stack()[1].filename
        path = Path(caller).resolve().parent / path
    return settings.read_yaml(path)
