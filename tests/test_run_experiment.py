"""``sem run`` / ``sem plan`` over every model file of an experiment (the example has two),
locally and on the project's real Slurm cluster."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import load_store

N_ROWS = {"m_gd": 10, "m_linear": 10}


def sem(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sem_core.cli", *args], cwd=str(cwd), capture_output=True, text=True, timeout=timeout
    )


def table(stdout: str) -> list[list[str]]:
    """The rows of the summary table (after its header line) as columns."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("model ") and "status" in line)
    out = []
    for line in lines[start + 1 :]:
        parts = line.split()
        if len(parts) < 4 or not parts[1].isdigit():
            break
        out.append(parts)
    return out


def peak_concurrency(runs: list[dict]) -> int:
    events = sorted([(r["run"]["start_time"], 1) for r in runs] + [(r["run"]["stop_time"], -1) for r in runs])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_every_model_file_runs_in_one_command_with_one_table_and_a_shared_job_budget(example_dir):
    proc = sem("run", "hydra/launcher=local", "hydra.launcher.n_jobs=2", cwd=example_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = table(proc.stdout)
    assert sorted((r[0], int(r[1])) for r in rows) == sorted((m, i) for m, n in N_ROWS.items() for i in range(n))
    assert {r[3] for r in rows} == {"COMPLETED"}
    assert "20 of 20 jobs completed" in proc.stdout
    runs = load_store(example_dir / "models" / "runs")
    assert len(runs) == 20
    assert {r["run"]["experiment"]["mainfile"] for r in runs} == {"m_gd.py", "m_linear.py"}
    # n_jobs=2 is the budget of the whole command, not of each file
    assert peak_concurrency(runs) <= 2
    # each file stays its own Hydra multirun, in a folder of its own
    sweep_dirs = {Path(r["run"]["meta"]["sem"]["sweep_dir"]) for r in runs}
    assert {d.name for d in sweep_dirs} == {"m_gd", "m_linear"} and len({d.parent for d in sweep_dirs}) == 1


def test_models_and_row_selections_apply_to_the_named_files_only(example_dir):
    proc = sem("run", str(example_dir), "--models", "m_gd", "fold=0", cwd=example_dir.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = load_store(example_dir / "models" / "runs")
    assert sorted((r["run"]["experiment"]["mainfile"], r["config"]["fold"]) for r in runs) == [("m_gd.py", 0)] * 2


def test_a_planning_error_in_any_file_starts_no_job_in_any_file(example_dir):
    # m_linear has no key lr: the selection is an error there, found before m_gd runs a job
    proc = sem("run", "lr=0.1", cwd=example_dir)
    assert proc.returncode != 0
    assert "m_linear.py" in proc.stderr and "'lr' is not a key" in proc.stderr
    assert not (example_dir / "models" / "runs").exists() or not load_store(example_dir / "models" / "runs")
    # an error only Hydra finds (a launcher option) also stops every file before its first job
    proc = sem("run", "hydra/launcher=local", "hydra.launcher.n_jobs=0", cwd=example_dir)
    assert proc.returncode != 0
    assert "hydra.launcher.n_jobs=0" in proc.stderr and "no job was started" in proc.stderr
    assert not (example_dir / "models" / "runs").exists() or not load_store(example_dir / "models" / "runs")
    assert not (example_dir / "multirun").exists() or not any((example_dir / "multirun").rglob("sem_sweep.json"))


def test_skip_completed_and_rerun_work_across_files_and_plan_shows_them(example_dir):
    assert sem("run", "fold=0", cwd=example_dir).returncode == 0
    # sem plan takes the same arguments: headers, and what would be skipped and why
    proc = sem("plan", "sem.skip_completed=true", "fold=0,1", cwd=example_dir)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["model", "order_id", "experiment_id", "config_id", "action", "row", "/", "reason"]
    actions = {(ln.split()[0], int(ln.split()[1])): ln.split()[4] for ln in lines[1:] if ln.startswith("m_")}
    assert actions == {
        ("m_gd", 0): "skip",
        ("m_gd", 5): "skip",
        ("m_gd", 1): "run",
        ("m_gd", 6): "run",
        ("m_linear", 0): "skip",
        ("m_linear", 5): "skip",
        ("m_linear", 1): "run",
        ("m_linear", 6): "run",
    }
    assert "COMPLETED as" in proc.stdout and "4 jobs to run, 4 row(s) skipped" in proc.stdout
    plan_json = [
        json.loads(ln)
        for ln in sem("plan", "--json", "sem.rerun=missing", "fold=0,1", cwd=example_dir).stdout.splitlines()
    ]
    assert sorted((p["model"], p["order_id"]) for p in plan_json if p["action"] == "run") == [
        ("m_gd", 1),
        ("m_gd", 6),
        ("m_linear", 1),
        ("m_linear", 6),
    ]

    proc = sem("run", "sem.skip_completed=true", "fold=0", cwd=example_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all 4 selected rows were skipped" in proc.stdout
    proc = sem("run", "sem.rerun=missing", "fold=0,1", cwd=example_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted((r[0], int(r[1])) for r in table(proc.stdout)) == [
        ("m_gd", 1),
        ("m_gd", 6),
        ("m_linear", 1),
        ("m_linear", 6),
    ]
    assert len(load_store(example_dir / "models" / "runs")) == 8


def test_sem_plan_of_one_model_file_still_works(example_dir):
    proc = sem("plan", "models/m_linear.py", "+order_id=0,3", cwd=example_dir)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:4] == ["order_id", "experiment_id", "config_id", "action"]
    assert [ln.split()[0] for ln in lines[1:3]] == ["0", "3"]
    assert "2 jobs to run from" in proc.stdout


def test_a_failing_job_in_one_file_fails_the_command_and_the_others_still_run(write_model):
    good = write_model(
        "from sem_core import Experiment\nex = Experiment(__file__)\n"
        "@ex.configs\ndef c():\n    return [{'i': 0}, {'i': 1}]\n"
        "@ex.automain\ndef main(config):\n    return config['i']\n",
        "m_good.py",
    )
    write_model(
        "from sem_core import Experiment\nex = Experiment(__file__)\n"
        "@ex.configs\ndef c():\n    return [{'i': 0}, {'i': 1}]\n"
        "@ex.automain\ndef main(config):\n    if config['i'] == 1:\n        raise ValueError('row one breaks')\n",
        "m_bad.py",
    )
    exp = good.parent.parent
    proc = sem("run", cwd=exp)
    assert proc.returncode == 1
    status = {(r[0], r[1]): r[3] for r in table(proc.stdout)}
    assert status == {
        ("m_bad", "0"): "COMPLETED",
        ("m_bad", "1"): "FAILED",
        ("m_good", "0"): "COMPLETED",
        ("m_good", "1"): "COMPLETED",
    }
    assert "ValueError: row one breaks" in proc.stdout
    # sem.rerun=failed across files: only the failed row runs again
    proc = sem("run", "sem.rerun=failed", cwd=exp)
    assert [(r[0], r[1]) for r in table(proc.stdout)] == [("m_bad", "1")]


SLURM = (
    "hydra/launcher=slurm",
    "hydra.launcher.timeout_min=2",
    "hydra.launcher.signal_delay_s=30",
    "hydra.launcher.poll_interval_s=0.5",
)


@pytest.mark.slurm
def test_on_slurm_every_file_submits_its_arrays_and_the_command_waits_for_all(cluster, example_dir):
    proc = sem("run", *SLURM, "fold=0,1", cwd=example_dir, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "8 of 8 jobs completed" in proc.stdout
    runs = load_store(example_dir / "models" / "runs")
    assert len(runs) == 8 and {r["run"]["status"] for r in runs} == {"COMPLETED"}
    arrays = {
        r["run"]["experiment"]["mainfile"]: r["run"]["meta"]["sem"]["slurm"]["job_id"].split("_")[0] for r in runs
    }
    assert len(set(arrays.values())) == 2  # one array per file: each file its own multirun


@pytest.mark.slurm
def test_on_slurm_wait_false_submits_every_file_and_exits_at_once(cluster, example_dir):
    from tests.test_slurm_cluster import wait_for

    proc = sem("run", *SLURM, "hydra.launcher.wait=false", "fold=0", cwd=example_dir, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("Submitted 2 jobs to Slurm") == 2
    assert (
        "2 queued or running" in proc.stdout
        or "4 queued or running" in proc.stdout
        or "queued or running" in proc.stdout
    )
    store = example_dir / "models" / "runs"
    assert len(load_store(store)) == 4

    def all_completed():
        return all(r["run"]["status"] == "COMPLETED" for r in load_store(store))

    wait_for(all_completed, 180, "the submitted jobs of both files to complete")


@pytest.fixture(scope="module")
def cluster() -> None:
    from tests.services import missing_service
    from tests.test_slurm_cluster import _cluster_problem

    problem = _cluster_problem()
    if problem:
        missing_service(problem)
