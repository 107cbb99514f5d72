"""What a sweep holds per row, and what Hydra and the launchers read of it: the rows in Hydra's
ConfigStore (sem_core.row_store), each job's overrides, the launch's returns
(sem_core.job_return.JobReturns) and the summary (sem_core.sweep_summary). All are made when
read, so a sweep of 10,000 rows holds little more than its rows (benchmarks/bench_core.py
measures the memory); these tests hold that what is read is what a list would have given."""

import pickle

import pytest
from hydra.core.config_store import ConfigStore
from hydra.core.object_type import ObjectType
from hydra.core.utils import JobReturn, JobStatus

from sem_core.claims import Elsewhere
from sem_core.job_return import JobReturns
from sem_core.row_store import ROW_GROUP, JobOverrides, job_label, job_row, register_rows, row_index
from sem_core.sweep_summary import ROWS_LISTED, SweepSummary, format_summary


@pytest.fixture
def row_group():
    repo = ConfigStore.instance().repo
    saved = repo.pop(ROW_GROUP, None)
    yield
    repo.pop(ROW_GROUP, None)
    if saved is not None:
        repo[ROW_GROUP] = saved


def records(n, first=0):
    return [{"lr": 0.1 * k, "order_id": k, "global_id": f"g{k}"} for k in range(first, first + n)]


def test_registered_rows_are_config_store_options_hydra_can_find_list_and_load(row_group):
    cs = ConfigStore.instance()
    assert list(register_rows(records(3))) == ["+sem_row=j0", "+sem_row=j1", "+sem_row=j2"]
    assert list(register_rows(records(2, first=3), first_index=3)) == ["+sem_row=j3", "+sem_row=j4"]
    assert cs.get_type(ROW_GROUP) == ObjectType.GROUP
    assert cs.list(ROW_GROUP) == sorted(f"j{k}.yaml" for k in range(5))
    assert cs.load(f"{ROW_GROUP}/j4.yaml").node == {"lr": 0.4, "order_id": 4, "global_id": "g4"}
    group = cs.repo[ROW_GROUP]
    assert "j2.yaml" in group and "j5.yaml" not in group and "j01.yaml" not in group and "x.yaml" not in group
    assert group.get("j5.yaml") is None
    with pytest.raises(KeyError):
        group["j5.yaml"]
    # each load is a new entry: a job's config built from its row is not kept by the store
    assert cs.load(f"{ROW_GROUP}/j1.yaml").node is not cs.load(f"{ROW_GROUP}/j1.yaml").node


def test_an_entry_stored_by_hand_comes_first_and_leaves_again(row_group):
    """A Slurm array task stores its one row by hand, then pops it (sem_core.launch.slurm_task)."""
    register_rows(records(2))
    group = ConfigStore.instance().repo[ROW_GROUP]
    entry = type(group["j1.yaml"])("j1.yaml", {"lr": 9.0}, ROW_GROUP)
    group["j1.yaml"] = entry
    assert group["j1.yaml"] is entry and group.keys() == ["j1.yaml", "j0.yaml"]
    group.pop("j1.yaml")
    assert group["j1.yaml"].record == records(2)[1]


def test_the_row_group_travels_by_pickle_with_its_rows(row_group):
    """A spawned worker and submitit receive the ConfigStore pickled."""
    register_rows(records(3))
    copied = pickle.loads(pickle.dumps(ConfigStore.instance().repo[ROW_GROUP]))
    assert copied.keys() == ["j0.yaml", "j1.yaml", "j2.yaml"]
    assert copied["j2.yaml"].record == records(3)[2]


def test_each_job_reads_its_own_row_and_label(row_group):
    overrides = list(register_rows(records(3)))
    assert row_index(["hydra.verbose=true", overrides[2]]) == 2 and row_index(["+x=1"]) is None
    row = job_row(["a=1", overrides[1]])
    assert row == records(3)[1]
    row["lr"] = "changed"  # a job's copy: the next job reading the row gets it as planned
    assert job_row([overrides[1]]) == records(3)[1]
    assert job_label([overrides[0]]) == "order_id=0 lr=0.0"


class Tree:
    """The part of a model file's config tree that job overrides read: a row's group choices."""

    def overrides(self, user_keys):
        return [f"model={user_keys['model']}"]


@pytest.mark.parametrize("tree", [None, Tree()])
def test_job_overrides_read_as_the_list_a_launcher_was_given_before(row_group, tree):
    planned = [{"model": m, "order_id": k} for k, m in enumerate(["mlp", "cnn", "mlp"])]
    jobs = JobOverrides(planned, register_rows(planned, first_index=7), tree).with_before(["sem.x=1"])
    choices = [[f"model={r['model']}"] if tree else [] for r in planned]
    expected = [["sem.x=1", *c, f"+sem_row=j{7 + k}"] for k, c in enumerate(choices)]
    assert len(jobs) == 3 and list(jobs) == expected and jobs[-1] == expected[-1] and jobs[1:] == expected[1:]


def test_job_returns_keep_whole_only_what_the_sweep_reads():
    overrides = [["a=1", f"+sem_row=j{k}"] for k in range(4)]
    returns = JobReturns(overrides)
    failed = JobReturn(overrides=overrides[3], status=JobStatus.FAILED, _return_value=ValueError("nan"))
    held = JobReturn(overrides=overrides[0], status=JobStatus.COMPLETED)
    held.return_value = Elsewhere("g", "host", "user", "RUNNING")
    done = JobReturn(overrides=overrides[1], status=JobStatus.COMPLETED, working_dir="/w")
    done.return_value = {"big": list(range(1000))}
    for offset, ret in ((3, failed), (1, done), (0, held)):  # workers finish out of order
        returns.add(offset, ret)
    ordered = returns.in_job_order()
    assert len(ordered) == 3
    assert ordered[0] is held and ordered[2] is failed
    # a completed job: its overrides and status; what main returned is in its run record
    assert (ordered[1].overrides, ordered[1].status, ordered[1]._return_value) == (
        overrides[1],
        JobStatus.COMPLETED,
        None,
    )
    kept_all = JobReturns(overrides, keep_all=True)
    kept_all.add(1, done)
    assert kept_all[0] is done  # any other Hydra app: every JobReturn as Hydra's launchers keep it


def row(k, state="done", error=""):
    status = {"done": "COMPLETED", "failed": "FAILED", "active": "QUEUED"}[state]
    return {"order_id": k, "experiment_id": f"e{k:015d}", "global_id": f"g{k}", "status": status,
            "duration": 1.0, "error": error, "state": state}  # fmt: skip


def test_a_small_sweep_lists_every_job():
    rows = [row(k) for k in range(ROWS_LISTED - 1)] + [row(99, "failed", "ValueError: nan")]
    text = format_summary(rows, "/runs")
    assert len(text.splitlines()) == 1 + ROWS_LISTED + 1
    assert text.splitlines()[-1] == f"{ROWS_LISTED - 1} of {ROWS_LISTED} jobs completed, 1 not completed; runs in /runs"


def test_a_large_sweep_lists_the_jobs_that_did_not_complete_and_counts_the_rest():
    rows = (row(k, "failed", "ValueError: nan") if k in (17, 1234) else row(k) for k in range(10_000))
    summary = SweepSummary().extend(rows)
    assert len(summary.first) <= ROWS_LISTED + 1  # rows are not kept, only what is printed
    lines = summary.text("/runs", rerun_hint=True).splitlines()
    assert [line.split()[0] for line in lines[1:3]] == ["17", "1234"]
    assert lines[3:] == [
        "9998 completed jobs not listed (sem ls lists every run)",
        "9998 of 10000 jobs completed, 2 not completed; runs in /runs",
        "to run them again: the same command with sem.skip_completed=true",
    ]
    assert summary.failed


def test_a_large_sweep_says_how_many_failed_jobs_it_did_not_list_and_counts_the_queued_ones():
    rows = [row(k, "failed", "E") for k in range(ROWS_LISTED + 5)] + [row(k, "active") for k in range(100, 103)]
    lines = format_summary(rows, "/runs").splitlines()
    assert sum(line.endswith("  E") for line in lines) == ROWS_LISTED
    assert lines[-3:] == [
        "... and 5 more jobs that did not complete (sem ls --status STATUS lists them)",
        "3 queued or running jobs not listed (sem status follows them)",
        f"0 of {ROWS_LISTED + 8} jobs completed, {ROWS_LISTED + 5} not completed, 3 queued or running; runs in /runs",
    ]


def test_a_large_submitted_sweep_prints_counts_not_a_line_per_queued_job():
    """hydra.launcher.wait=false on Slurm: every job is queued when the summary is printed."""
    lines = format_summary((row(k, "active") for k in range(10_000)), "/runs").splitlines()
    assert lines == [
        "10000 queued or running jobs not listed (sem status follows them)",
        "0 of 10000 jobs completed, 0 not completed, 10000 queued or running; runs in /runs",
    ]


def test_the_error_column_fits_the_terminal_and_the_whole_error_follows(monkeypatch):
    error = "ValueError: loss diverged at lr=0.3 because the gradient exploded after warm-up"
    monkeypatch.setenv("COLUMNS", "80")
    lines = format_summary([row(3, "failed", error)], "/runs").splitlines()
    assert max(len(line) for line in lines[:2]) <= 80 and lines[1].endswith("...")
    assert lines[2] == f"order_id 3: {error}"
    monkeypatch.setenv("COLUMNS", "200")
    assert format_summary([row(3, "failed", error)], "/runs").splitlines()[1].endswith(error)
