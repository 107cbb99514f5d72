"""Shared fixtures. Plugin modules of other areas are listed in ``pytest_plugins``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "regression"

pytest_plugins: list[str] = ["tests.mongo_fixtures"]


def run_model(model_file: Path, *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300):
    """Run a model file as a user would (``python m_x.py ARGS``); return the CompletedProcess."""
    full_env = dict(os.environ)
    full_env.pop("HYDRA_FULL_ERROR", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, str(model_file), *args],
        cwd=str(cwd or model_file.parent),
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def load_store(store: Path) -> list[dict]:
    """Every run of a store as {"run": run.json, "config": config.json, "dir": Path}."""
    out = []
    for d in sorted(p for p in store.iterdir() if p.is_dir() and not p.name.startswith("_")):
        out.append(
            {
                "dir": d,
                "run": json.loads((d / "run.json").read_text()),
                "config": json.loads((d / "config.json").read_text()),
            }
        )
    return out


@pytest.fixture
def example_dir(tmp_path: Path) -> Path:
    """A private copy of examples/regression (runs and outputs stay in tmp_path)."""
    target = tmp_path / "regression"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("runs", "multirun", "results", "__pycache__"))
    return target


@pytest.fixture
def write_model(tmp_path: Path):
    """Write a model file ``<tmp>/exp/models/<name>`` from source text; return its path."""

    def _write(source: str, name: str = "m_test.py", experiment_config: str | None = None) -> Path:
        models = tmp_path / "exp" / "models"
        models.mkdir(parents=True, exist_ok=True)
        path = models / name
        path.write_text(source)
        if experiment_config is not None:
            (tmp_path / "exp" / "experiment_config.yaml").write_text(experiment_config)
        return path

    return _write
