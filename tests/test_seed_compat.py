"""A user of experiment_manager (the predecessor tool) moves over unchanged: its example model file (with its
`experiment_manager` imports), its experiment_config.yaml and its `python m_model.py 0` command
run as they are. The texts below are copied verbatim from experiment_manager's README."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import load_store, run_model
from tests.test_slurm_cluster import cluster  # noqa: F401  (fixture: the test Slurm cluster is up)

PREDECESSOR_MODEL = """\
import sys

from experiment_manager import Experiment
from experiment_manager.util import read_yaml

import pickle
import numpy as np

ex = Experiment(__file__)
ec = read_yaml('../experiment_config.yaml')

@ex.configs
def get_config():
    return [
        {'name': 'test', 'fold':0},
        {'name': 'test', 'fold':1},
        {'name': 'test', 'fold':2},
        {'name': 'test', 'fold':3}
    ]

@ex.automain
def run(config):
    N = 100
    X = np.random.randn(N)
    Y = np.random.randn(N)
    prediction_fn = lambda X: np.random.randn(X.shape[0])
    
    train_metrics, train_pred = ex.log_metrics(X, Y, prediction_fn, var_flag=False, log=True, prefix='training')
    test_metrics, test_pred = ex.log_metrics(X, Y, prediction_fn, var_flag=False, log=True, prefix='testing')

    config_id = config['experiment_id']
    results = {'epochs': list(range(0, 100))}
    pickle.dump(results, open( "../results/{name}.pickle".format(name=config_id), "wb" ) )
    ex.add_artifact("../results/{name}.pickle".format(name=config_id))
"""

# experiment_manager's minimal experiment_config.yaml, its singularity cluster section and global settings
# of the user's own (experiment_manager's README: "any global experiment settings (e.g number of folds,
# number of epochs etc) that will be used by the python files")
PREDECESSOR_CONFIG = """\
#==============================EXPERIMENT MANAGER SETTINGS==============================
experiment:
  use_config_id: True
  overwrite_id: True


#==============================CLUSTER SETTINGS==============================
local:
  type: 'local'

mycluster:
  sif: '../../projects/dsp/dsp_latest.sif'

NUM_FOLDS: 4
epochs: 100
training: {time: 30}
"""


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """The notes sem shows once for good are remembered in this test's own cache folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("SEM_CONFIG_NOTES_SAID", raising=False)


@pytest.fixture
def predecessor_experiment(tmp_path: Path) -> Path:
    """<experiment>/experiment_config.yaml, models/m_model.py and the results/ folder the model writes to."""
    exp = tmp_path / "predecessor_exp"
    (exp / "models").mkdir(parents=True)
    (exp / "results").mkdir()
    (exp / "experiment_config.yaml").write_text(PREDECESSOR_CONFIG)
    (exp / "models" / "m_model.py").write_text(PREDECESSOR_MODEL)
    return exp


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("sem: warning:")]


def test_python_m_model_0_runs_row_0_of_the_predecessors_model_file(predecessor_experiment):
    model = predecessor_experiment / "models" / "m_model.py"
    proc = run_model(model, "0")  # from the models folder, as experiment_manager's README runs it
    assert proc.returncode == 0, proc.stderr
    (run,) = load_store(model.parent / "runs")
    assert run["run"]["status"] == "COMPLETED"
    assert run["config"]["order_id"] == 0 and run["config"]["fold"] == 0
    experiment_id = run["config"]["experiment_id"]
    # the model's own output and its artifact, as experiment_manager's model file wrote them
    saved = predecessor_experiment / "results" / f"{experiment_id}.pickle"
    assert pickle.loads(saved.read_bytes()) == {"epochs": list(range(100))}
    assert run["run"]["artifacts"] == [f"{experiment_id}.pickle"]
    metrics = json.loads((run["dir"] / "metrics.json").read_text())
    assert {"training_rmse", "testing_rmse", "testing_r2"} <= set(metrics)
    # the user's own keys (NUM_FOLDS, epochs, training) are not warned about; experiment_manager's two
    # settings are explained once, and not again by the next command
    (note,) = _warnings(proc.stderr)
    assert "use_config_id and overwrite_id" in note and "no run overwrites another" in note
    again = run_model(model, "1")
    assert again.returncode == 0 and _warnings(again.stderr) == [], again.stderr


def test_a_list_of_bare_integers_selects_those_rows(predecessor_experiment):
    model = predecessor_experiment / "models" / "m_model.py"
    proc = run_model(model, "0", "3")
    assert proc.returncode == 0, proc.stderr
    runs = load_store(model.parent / "runs")
    assert sorted((r["config"]["order_id"], r["config"]["fold"]) for r in runs) == [(0, 0), (3, 3)]
    assert all(r["run"]["status"] == "COMPLETED" for r in runs)
    assert "2 of 2 jobs completed" in proc.stdout


def test_bare_integers_combine_with_other_overrides_and_out_of_range_names_the_rows(predecessor_experiment):
    model = predecessor_experiment / "models" / "m_model.py"
    proc = run_model(model, "1", "2", "fold=2")
    assert proc.returncode == 0, proc.stderr
    assert [r["config"]["order_id"] for r in load_store(model.parent / "runs")] == [2]
    proc = run_model(model, "7")
    assert proc.returncode == 1
    assert "order_id 7 is out of range: m_model.py has 4 rows (order_id 0-3)" in proc.stderr


def test_every_row_runs_without_arguments_and_sem_plan_takes_bare_integers(predecessor_experiment):
    model = predecessor_experiment / "models" / "m_model.py"
    proc = run_model(model)
    assert proc.returncode == 0, proc.stderr
    assert sorted(r["config"]["order_id"] for r in load_store(model.parent / "runs")) == [0, 1, 2, 3]
    plan = subprocess.run(
        [sys.executable, "-m", "sem_core.cli", "plan", str(model), "0", "2", "--json"],
        capture_output=True,
        text=True,
        cwd=model.parent,
    )
    assert plan.returncode == 0, plan.stderr
    assert [json.loads(line)["order_id"] for line in plan.stdout.splitlines() if line.startswith("{")] == [0, 2]


def test_the_predecessors_typeless_cluster_section_is_a_slurm_launcher(predecessor_experiment):
    model = predecessor_experiment / "models" / "m_model.py"
    # --cfg hydra composes the launcher without submitting anything
    proc = run_model(model, "0", "hydra/launcher=mycluster", "--cfg", "hydra")
    assert proc.returncode == 0, proc.stderr
    assert "_target_: hydra_plugins.sem_plugins.slurm_launcher.SlurmLauncher" in proc.stdout
    image = (predecessor_experiment / "../../projects/dsp/dsp_latest.sif").resolve()
    assert f"container: {image}" in proc.stdout


def test_the_predecessors_import_names_are_sems_api(tmp_path):
    import experiment_manager
    import experiment_manager.util
    import sem_core
    import sem_core.util

    assert experiment_manager.Experiment is sem_core.Experiment
    assert experiment_manager.util.read_yaml is sem_core.util.read_yaml
    # importing them warns about nothing (a model file is imported once per job)
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", "import experiment_manager, experiment_manager.util"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


PREDECESSOR_RUN_PY = """\
from pathlib import Path
from experiment_manager import main

#Ensure folder structure exists
Path("models/").mkdir(exist_ok=True)
Path("models/runs").mkdir(exist_ok=True)

main.run()
"""


def test_the_predecessors_run_py_runs_every_row_and_says_its_note_once(predecessor_experiment):
    (predecessor_experiment / "run.py").write_text(PREDECESSOR_RUN_PY)
    proc = subprocess.run(
        [sys.executable, "run.py"], cwd=predecessor_experiment, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    runs = load_store(predecessor_experiment / "models" / "runs")
    assert sorted(r["config"]["order_id"] for r in runs) == [0, 1, 2, 3]
    assert all(r["run"]["status"] == "COMPLETED" for r in runs)
    # the model's own relative paths resolve as in experiment_manager (from models/)
    assert len(list((predecessor_experiment / "results").glob("*.pickle"))) == 4
    # one note for the whole command, though sem run starts a process per model file
    assert len(_warnings(proc.stderr)) == 1


@pytest.mark.mongo
def test_the_predecessors_run_py_sync_uploads_the_runs(predecessor_experiment, mongo_url, mongo_db):
    import os

    (predecessor_experiment / "run.py").write_text(PREDECESSOR_RUN_PY)
    assert run_model(predecessor_experiment / "models" / "m_model.py", "0", "3").returncode == 0
    proc = subprocess.run(
        [sys.executable, "run.py", "--sync"],
        cwd=predecessor_experiment,
        capture_output=True,
        text=True,
        env={**os.environ, "SEM_MONGO_URL": mongo_url},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(d["config"]["order_id"] for d in mongo_db.runs.find()) == [0, 3]


def test_run_py_flags_are_sems_commands(tmp_path):
    from experiment_manager.main import command_for

    assert command_for([], tmp_path) == ["run", str(tmp_path)]
    assert command_for(["fold=1"], tmp_path) == ["run", str(tmp_path), "fold=1"]
    assert command_for(["--sync"], tmp_path) == ["sync", str(tmp_path)]
    assert command_for(["--omniboard"], tmp_path) == ["board", str(tmp_path)]


@pytest.mark.slurm
def test_a_typeless_cluster_section_with_partition_runs_the_predecessors_rows_on_slurm(predecessor_experiment, cluster):
    # experiment_manager's cluster keys without `type:`, plus small limits so the test takes seconds
    config = predecessor_experiment / "experiment_config.yaml"
    config.write_text(
        config.read_text() + "hpc:\n  partition: debug\n  timeout_min: 2\n  signal_delay_s: 30\n"
        "  poll_interval_s: 0.5\n"
    )
    model = predecessor_experiment / "models" / "m_model.py"
    proc = run_model(model, "0", "3", "hydra/launcher=hpc")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = load_store(model.parent / "runs")
    assert sorted(r["config"]["order_id"] for r in runs) == [0, 3]
    assert {r["run"]["status"] for r in runs} == {"COMPLETED"}
    assert {r["run"]["meta"]["sem"]["slurm"]["partition"] for r in runs} == {"debug"}
    assert len(list((predecessor_experiment / "results").glob("*.pickle"))) == 2
    (note,) = _warnings(proc.stderr)  # the experiment_manager note; no word about the user's own keys
    assert "use_config_id and overwrite_id" in note
