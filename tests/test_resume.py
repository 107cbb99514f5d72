"""sem.skip_completed / sem.rerun: which planned jobs run (pure logic, property-tested)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sem_core.errors import ConfigError
from sem_core.resume import ExistingRun, existing_from_records, select_jobs, validate_rerun
from sem_core.run_status import FAILED_STATUSES

STATUSES = ["COMPLETED", "FAILED", "INTERRUPTED", "TIMEOUT", "KILLED", "RUNNING", "QUEUED"]
MODEL = "m_linear.py"


@dataclass(frozen=True)
class Job:
    order_id: int
    experiment_id: str


def eid(i: int) -> str:
    return f"{i:016x}"


jobs_st = st.lists(st.integers(0, 7), min_size=0, max_size=8, unique=True).map(
    lambda idx: [Job(order_id=n, experiment_id=eid(i)) for n, i in enumerate(idx)]
)
runs_st = st.lists(
    st.builds(
        lambda i, status, t, model: ExistingRun(eid(i), model, status, f"20260101T0000{t:02d}-{i:012x}"),
        st.integers(0, 9),
        st.sampled_from(STATUSES),
        st.integers(0, 59),
        st.sampled_from([MODEL, MODEL, "m_other.py"]),
    ),
    max_size=20,
)
settings_st = st.tuples(st.booleans(), st.sampled_from([None, "failed", "missing"]))


def runs_of(existing, job):
    return sorted(
        (r for r in existing if r.experiment_id == job.experiment_id and r.model == MODEL), key=lambda r: r.global_id
    )


@settings(deadline=None)  # no timing asserts: CI machines are shared
@given(jobs_st, runs_st, settings_st)
def test_every_job_is_either_run_or_skipped_once_in_plan_order(jobs, existing, settings):
    skip_completed, rerun = settings
    sel = select_jobs(jobs, existing, MODEL, skip_completed=skip_completed, rerun=rerun)
    assert sorted([j.order_id for j in sel.to_run] + [s.order_id for s in sel.skipped]) == sorted(
        j.order_id for j in jobs
    )
    assert sel.to_run == [j for j in jobs if j in sel.to_run]


@settings(deadline=None)  # no timing asserts: CI machines are shared
@given(jobs_st, runs_st)
def test_skip_completed_skips_exactly_rows_with_a_completed_run_of_this_model(jobs, existing):
    sel = select_jobs(jobs, existing, MODEL, skip_completed=True)
    for job in jobs:
        completed = any(r.status == "COMPLETED" for r in runs_of(existing, job))
        assert (job in sel.to_run) == (not completed)


@settings(deadline=None)  # no timing asserts: CI machines are shared
@given(jobs_st, runs_st)
def test_rerun_failed_runs_only_rows_whose_latest_run_failed(jobs, existing):
    sel = select_jobs(jobs, existing, MODEL, rerun="failed")
    for job in jobs:
        runs = runs_of(existing, job)
        assert (job in sel.to_run) == bool(runs and runs[-1].status in FAILED_STATUSES)


@settings(deadline=None)  # no timing asserts: CI machines are shared
@given(jobs_st, runs_st)
def test_rerun_missing_runs_only_rows_never_run(jobs, existing):
    sel = select_jobs(jobs, existing, MODEL, rerun="missing")
    for job in jobs:
        assert (job in sel.to_run) == (not runs_of(existing, job))


@settings(deadline=None)  # no timing asserts: CI machines are shared
@given(jobs_st, runs_st)
def test_no_setting_runs_everything(jobs, existing):
    sel = select_jobs(jobs, existing, MODEL)
    assert sel.to_run == jobs and sel.skipped == []


def test_latest_run_decides_rerun_failed_and_skip_reason_names_the_run():
    job = Job(0, eid(1))
    failed_then_ok = [
        ExistingRun(eid(1), MODEL, "FAILED", "20260101T000000-aaaaaaaaaaaa"),
        ExistingRun(eid(1), MODEL, "COMPLETED", "20260101T000100-bbbbbbbbbbbb", where="mongo"),
    ]
    assert select_jobs([job], failed_then_ok, MODEL, rerun="failed").to_run == []
    sel = select_jobs([job], failed_then_ok, MODEL, skip_completed=True)
    assert sel.skipped[0].reason == "COMPLETED as 20260101T000100-bbbbbbbbbbbb (mongo)"
    ok_then_failed = [failed_then_ok[1], ExistingRun(eid(1), MODEL, "TIMEOUT", "20260101T000200-cccccccccccc")]
    assert select_jobs([job], ok_then_failed, MODEL, rerun="failed").to_run == [job]
    # skip_completed wins over rerun=failed: a row done once is not redone
    assert select_jobs([job], ok_then_failed, MODEL, skip_completed=True, rerun="failed").to_run == []


def test_unknown_rerun_value_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"sem.rerun='faild'.*sem.rerun=failed"):
        validate_rerun("faild")
    assert validate_rerun(None) is None and validate_rerun("missing") == "missing"


def test_existing_from_records_reads_run_records(tmp_path):
    from sem_core.records import read_run

    run_dir = tmp_path / "20260101T000000-abcdefabcdef"
    run_dir.mkdir()
    (run_dir / "run.json").write_text('{"status": "COMPLETED", "experiment": {"mainfile": "m_linear.py"}}')
    (run_dir / "config.json").write_text(
        '{"experiment_id": "%s", "global_id": "20260101T000000-abcdefabcdef", "fold": 0}' % eid(3)
    )
    (existing,) = existing_from_records([read_run(run_dir)])
    assert existing == ExistingRun(eid(3), "m_linear.py", "COMPLETED", "20260101T000000-abcdefabcdef", "local")


# ------------------------------------------------------------------------------ real sweeps
MODEL = """
from sem_core import Experiment
ex = Experiment(__file__)
FIXED = False

@ex.configs
def get_config():
    return [{"name": "m", "fold": f} for f in range(3)]

@ex.automain
def main(config):
    if config["fold"] == 1 and not FIXED:
        raise RuntimeError("fold 1 is broken")
    ex.log_scalar("score", config["fold"] + config["seed"] % 7)
    return config["seed"]
"""


def _clone_model(root, fixed: bool = False):
    from pathlib import Path

    models = Path(root) / "exp" / "models"
    models.mkdir(parents=True, exist_ok=True)
    path = models / "m_test.py"
    path.write_text(MODEL.replace("FIXED = False", f"FIXED = {fixed}"))
    return path


def _statuses(store):
    from sem_core.records import iter_runs

    return sorted((r.config["fold"], r.status) for r in iter_runs(store))


def test_rerun_failed_then_missing_then_skip_completed_in_a_real_store(tmp_path):
    from tests.conftest import run_model

    model = _clone_model(tmp_path)
    assert run_model(model, "-m", "fold=0,1").returncode != 0  # fold 1 fails
    store = model.parent / "runs"
    assert _statuses(store) == [(0, "COMPLETED"), (1, "FAILED")]

    model.write_text(model.read_text().replace("FIXED = False", "FIXED = True"))
    result = run_model(model, "-m", "sem.rerun=failed")
    assert result.returncode == 0, result.stderr
    assert _statuses(store) == [(0, "COMPLETED"), (1, "COMPLETED"), (1, "FAILED")]
    assert "never run (sem.rerun=failed" in result.stdout  # fold 2 listed as skipped

    result = run_model(model, "-m", "sem.rerun=missing")
    assert result.returncode == 0, result.stderr
    assert _statuses(store) == [(0, "COMPLETED"), (1, "COMPLETED"), (1, "FAILED"), (2, "COMPLETED")]

    sweeps_before = sorted(model.parent.glob("multirun/*/*"))
    result = run_model(model, "-m", "sem.skip_completed=true")
    assert result.returncode == 0 and "skipped 3 row(s)" in result.stdout
    assert len(_statuses(store)) == 4
    assert sorted(model.parent.glob("multirun/*/*")) == sweeps_before  # no job ran: no sweep folder

    result = run_model(model, "-m", "sem.rerun=faild")
    assert result.returncode != 0 and "sem.rerun='faild'" in result.stderr


@pytest.mark.mongo
def test_skip_completed_sees_runs_of_another_user_in_mongodb(tmp_path, mongo_url):
    from tests.conftest import run_model

    env = {"SEM_MONGO_URL": mongo_url}
    model_a = _clone_model(tmp_path / "alice", fixed=True)
    assert run_model(model_a, "-m", "fold=0,1", env=env).returncode == 0

    model_b = _clone_model(tmp_path / "bob", fixed=True)
    result = run_model(model_b, "-m", "sem.skip_completed=true", env=env)
    assert result.returncode == 0, result.stderr
    assert "skipped 2 row(s)" in result.stdout and result.stdout.count("(mongo)") == 2
    assert _statuses(model_b.parent / "runs") == [(2, "COMPLETED")]


def test_skip_completed_from_experiment_config_yaml(tmp_path):
    from tests.conftest import run_model

    model = _clone_model(tmp_path, fixed=True)
    (model.parent.parent / "experiment_config.yaml").write_text("sem:\n  skip_completed: true\n")
    assert run_model(model, "-m", "fold=0").returncode == 0
    result = run_model(model, "-m")
    assert result.returncode == 0, result.stderr
    assert "skipped 1 row(s)" in result.stdout
    assert _statuses(model.parent / "runs") == [(0, "COMPLETED"), (1, "COMPLETED"), (2, "COMPLETED")]
