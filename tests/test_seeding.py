"""The random seed of a row, and ``random``/numpy seeded with it whatever the moment ``main``
imports numpy: real model files run as a user runs them."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sem_core import seeding
from sem_core.errors import ConfigError
from tests.conftest import load_store, run_model


@settings(deadline=None)  # no timing asserts: CI machines are shared
@given(st.text(alphabet="0123456789abcdef", min_size=16, max_size=16))
def test_seed_is_stable_and_in_range_for_every_library(experiment_id):
    seed = seeding.derive_seed(experiment_id)
    assert seed == seeding.derive_seed(experiment_id)
    assert 0 <= seed < 2**31


def test_row_seed_wins_over_derived_seed():
    assert seeding.with_seed({"seed": 7, "fold": 0}, "ffffffffffffffff")["seed"] == 7
    assert seeding.with_seed({"fold": 0}, "00000000000000ff")["seed"] == 0
    assert seeding.with_seed({"fold": 0}, "0000000a00000000")["seed"] == 10
    for bad in ("42", -1, 2**32, 1.5, True):
        with pytest.raises(ConfigError, match=r"row order_id 3: seed must be an integer"):
            seeding.with_seed({"seed": bad, "order_id": 3}, "0000000a00000000")


def test_seed_everything_makes_numpy_and_random_repeat():
    seeding.seed_everything(1234)
    first = (random.random(), numpy.random.rand(3).tolist())
    seeding.seed_everything(1234)
    assert (random.random(), numpy.random.rand(3).tolist()) == first


def expected_draws(seed: int) -> dict:
    """What ``main`` draws when ``random`` and numpy's global generator are seeded with ``seed``."""
    random.seed(seed)
    numpy.random.seed(seed)
    return {"py": random.random(), "np": numpy.random.rand(3).tolist()}


def seeded_model(numpy_import: str) -> str:
    """A model file of 3 rows whose ``main`` returns its seed and what it drew from ``random`` and
    numpy (through ``helper.draw``, a sibling module that imports numpy at its top).

    ``numpy_import="top"``: the model file imports the helper, so numpy, before any job starts; every
    row draws. ``numpy_import="main"``: ``main`` imports it from the second job on: the first job of
    the sweep process draws nothing from numpy, the second imports it, the third finds it imported.
    """
    in_main = numpy_import == "main"
    return MODEL_TEMPLATE.format(
        import_at_top="" if in_main else "from helper import draw",
        import_in_main="from helper import draw" if in_main else "",
        first_numpy_row=1 if in_main else 0,
    )


MODEL_TEMPLATE = """
import random
import sys
{import_at_top}
from sem_core import Experiment

ex = Experiment(__file__)


@ex.configs
def get_config():
    return [dict(x=i) for i in range(3)]


@ex.automain
def main(config):
    out = dict(seed=config["seed"], py=random.random(), numpy_loaded="numpy" in sys.modules)
    if config["x"] >= {first_numpy_row}:
        {import_in_main}

        out["np"] = draw()
    return out
"""

HELPER = """
import numpy as np


def draw():
    return np.random.rand(3).tolist()
"""


@pytest.mark.parametrize("launcher", [[], ["hydra/launcher=local", "hydra.launcher.n_jobs=2"]])
def test_main_draws_the_same_numbers_for_the_same_seed_wherever_numpy_is_imported(write_model, launcher):
    top = write_model(seeded_model(numpy_import="top"), "m_top.py")
    late = write_model(seeded_model(numpy_import="main"), "m_late.py")
    (top.parent / "helper.py").write_text(HELPER)
    for model in (top, late):
        proc = run_model(model, *launcher)
        assert proc.returncode == 0, proc.stderr
    runs = load_store(top.parent / "runs")
    assert len(runs) == 6
    for run in runs:
        result, order_id = run["run"]["result"], run["config"]["order_id"]
        expected = expected_draws(seeding.derive_seed(run["config"]["experiment_id"]))
        assert result["seed"] == seeding.derive_seed(run["config"]["experiment_id"])
        assert result["py"] == expected["py"]
        if "np" in result or order_id >= 1:
            assert result["np"] == expected["np"], (run["dir"], order_id)
    # the model file that does not import numpy at its top: sem did not import it either
    late_runs = [r for r in runs if r["run"]["experiment"]["mainfile"] == "m_late.py"]
    first = next(r for r in late_runs if r["config"]["order_id"] == 0)
    assert first["run"]["result"]["numpy_loaded"] is False


def test_a_row_with_its_own_seed_gets_it_in_numpy_imported_late(write_model):
    model = write_model(seeded_model(numpy_import="main").replace("dict(x=i)", "dict(x=i, seed=7 + i)"), "m_seeded.py")
    (model.parent / "helper.py").write_text(HELPER)
    proc = run_model(model, "+order_id=1")
    assert proc.returncode == 0, proc.stderr
    (run,) = load_store(model.parent / "runs")
    assert run["run"]["result"]["np"] == expected_draws(8)["np"]


def test_numpy_imported_after_a_seed_is_seeded_and_keeps_its_own_loader():
    # a fresh interpreter: numpy is imported only after seed_everything, as by a main
    code = textwrap.dedent(
        """
        import importlib.util, json, sys
        from sem_core.seeding import seed_everything
        seed_everything(1234)
        assert "numpy" not in sys.modules
        # a library that only looks numpy up gets a spec whose loader answers as numpy's does
        assert importlib.util.find_spec("numpy").loader.is_package("numpy")
        import numpy as np
        assert importlib.util.find_spec("numpy.random").loader.is_package("numpy.random")
        draws = np.random.rand(3).tolist()
        loaders = [type(np.random.__loader__).__name__, type(np.random.__spec__.loader).__name__]
        print(json.dumps({"draws": draws, "loaders": loaders}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    numpy.random.seed(1234)
    assert out["draws"] == numpy.random.rand(3).tolist()
    # importlib.resources, inspect.getsource and reload ask a module's loader: it is numpy's own
    assert out["loaders"] == ["SourceFileLoader", "SourceFileLoader"]


def test_a_later_seed_replaces_one_whose_library_was_never_imported():
    code = textwrap.dedent(
        """
        import json, sys
        from sem_core.seeding import SeedOnImport, seed_everything
        seed_everything(1)
        seed_everything(2)
        assert sum(isinstance(f, SeedOnImport) for f in sys.meta_path) == 1
        import numpy as np
        print(json.dumps(np.random.rand(2).tolist()))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    numpy.random.seed(2)
    assert json.loads(proc.stdout) == numpy.random.rand(2).tolist()


def test_torch_imported_after_the_seed_is_seeded():
    torch = pytest.importorskip("torch")
    code = (
        "import json\nfrom sem_core.seeding import seed_everything\nseed_everything(99)\n"
        "import torch\nprint(json.dumps(torch.rand(3).tolist()))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    torch.manual_seed(99)
    assert json.loads(proc.stdout) == torch.rand(3).tolist()
