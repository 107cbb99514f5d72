"""sem.skip_completed / sem.rerun: which planned jobs run (pure logic, property-tested)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sem_core.errors import ConfigError
from sem_core.resume import FAILED_STATUSES, ExistingRun, existing_from_records, select_jobs, validate_rerun

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
    return sorted((r for r in existing if r.experiment_id == job.experiment_id and r.model == MODEL), key=lambda r: r.global_id)


@given(jobs_st, runs_st, settings_st)
def test_every_job_is_either_run_or_skipped_once_in_plan_order(jobs, existing, settings):
    skip_completed, rerun = settings
    sel = select_jobs(jobs, existing, MODEL, skip_completed=skip_completed, rerun=rerun)
    assert sorted([j.order_id for j in sel.to_run] + [s.order_id for s in sel.skipped]) == sorted(j.order_id for j in jobs)
    assert sel.to_run == [j for j in jobs if j in sel.to_run]


@given(jobs_st, runs_st)
def test_skip_completed_skips_exactly_rows_with_a_completed_run_of_this_model(jobs, existing):
    sel = select_jobs(jobs, existing, MODEL, skip_completed=True)
    for job in jobs:
        completed = any(r.status == "COMPLETED" for r in runs_of(existing, job))
        assert (job in sel.to_run) == (not completed)


@given(jobs_st, runs_st)
def test_rerun_failed_runs_only_rows_whose_latest_run_failed(jobs, existing):
    sel = select_jobs(jobs, existing, MODEL, rerun="failed")
    for job in jobs:
        runs = runs_of(existing, job)
        assert (job in sel.to_run) == bool(runs and runs[-1].status in FAILED_STATUSES)


@given(jobs_st, runs_st)
def test_rerun_missing_runs_only_rows_never_run(jobs, existing):
    sel = select_jobs(jobs, existing, MODEL, rerun="missing")
    for job in jobs:
        assert (job in sel.to_run) == (not runs_of(existing, job))


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
