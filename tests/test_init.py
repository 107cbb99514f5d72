"""``sem init``: an experiment folder from the packaged templates, whose starter model file runs
as it is (file storage, the local launcher), and that never overwrites a file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sem_core.errors import SemError
from sem_core.settings import load_experiment_config
from sem_core.starter import create_experiment, model_stem
from tests.conftest import load_store, run_model


def sem(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sem_core.cli", *args], cwd=str(cwd), capture_output=True, text=True, timeout=120
    )


def test_sem_init_then_the_starter_model_runs_on_the_local_launcher(tmp_path):
    made = sem("init", "exp", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    experiment = tmp_path / "exp"
    model = experiment / "models" / "m_example.py"
    assert model.is_file() and (experiment / "experiment_config.yaml").is_file()
    assert "python models/m_example.py -m" in made.stdout

    ran = run_model(model, "-m", "hydra/launcher=local", "hydra.launcher.n_jobs=2", cwd=experiment)
    assert ran.returncode == 0, ran.stderr
    runs = load_store(experiment / "models" / "runs")
    # 2 step sizes x NUM_FOLDS (3, from experiment_config.yaml) folds
    assert len(runs) == 6
    assert {r["run"]["status"] for r in runs} == {"COMPLETED"}
    assert sorted({r["config"]["fold"] for r in runs}) == [0, 1, 2]
    assert all(isinstance(r["run"]["result"], float) for r in runs)

    table = sem("results", cwd=experiment)
    assert table.returncode == 0, table.stderr
    assert "lr=0.01" in table.stdout and "test_rmse" in table.stdout


def test_sem_init_refuses_to_overwrite_and_writes_nothing(tmp_path):
    config = tmp_path / "experiment_config.yaml"
    config.write_text("NUM_FOLDS: 2\n")
    refused = sem("init", ".", cwd=tmp_path)
    assert refused.returncode != 0
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "experiment_config.yaml already exist" in lines[0] and "never overwrites" in lines[0]
    assert config.read_text() == "NUM_FOLDS: 2\n"
    assert not (tmp_path / "models").exists()


def test_the_model_name_names_the_file_and_the_template(tmp_path):
    written = create_experiment(tmp_path, "m_ridge.py")
    assert [p.relative_to(tmp_path).as_posix() for p in written] == ["experiment_config.yaml", "models/m_ridge.py"]
    assert "python models/m_ridge.py -m" in (tmp_path / "models" / "m_ridge.py").read_text()
    # the written config is a valid experiment_config.yaml with the user's key the model reads
    assert load_experiment_config(tmp_path)["NUM_FOLDS"] == 3


@pytest.mark.parametrize("name", ["9lives", "a-b", "", "m_"])
def test_a_model_name_that_cannot_be_a_model_file_is_refused(name):
    with pytest.raises(SemError, match="model name"):
        model_stem(name)
