"""Pure parts of the Slurm launcher: array planning, container commands, state mapping and
reconciliation. No cluster needed (the cluster tests are in test_slurm_cluster.py)."""

from __future__ import annotations

import datetime as dt
import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sem_core.errors import ConfigError
from sem_core.slurm import arrays, container, status

SCONTROL_SAMPLE = """Configuration data as of 2026-11-30T02:20:00
AccountingStorageBackupHost = (null)
MaxArraySize            = 30
MaxJobCount             = 10000
"""


def test_max_array_size_is_read_from_scontrol_output():
    assert arrays.parse_max_array_size(SCONTROL_SAMPLE) == 30


def test_max_array_size_defaults_to_slurms_default_when_absent():
    assert arrays.parse_max_array_size("MaxJobCount = 10000\n") == 1001


@given(
    n_jobs=st.integers(0, 3000),
    per_task=st.integers(1, 7),
    max_size=st.integers(1, 1001),
)
def test_every_job_lands_in_exactly_one_task_of_an_array_the_cluster_accepts(n_jobs, per_task, max_size):
    submissions = arrays.plan_submissions(n_jobs, per_task, max_size)
    flat = [j for sub in submissions for task in sub for j in task]
    assert flat == list(range(n_jobs))  # all jobs, once, in order
    for sub in submissions:
        assert 1 <= len(sub) <= max_size  # array indices 0..len-1 < MaxArraySize
        assert all(1 <= len(task) <= per_task for task in sub)
    # as few sbatch calls as the limit allows
    n_tasks = -(-n_jobs // per_task)
    assert len(submissions) == -(-n_tasks // max_size)


def test_a_25_row_sweep_is_one_array_and_35_rows_split_under_max_array_size_30():
    assert len(arrays.plan_submissions(25, 1, 30)) == 1
    assert [len(s) for s in arrays.plan_submissions(35, 1, 30)] == [30, 5]
    assert arrays.array_spec(25, 4) == "0-24%4"


def test_configs_per_task_packs_consecutive_jobs():
    assert arrays.pack_jobs(7, 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert arrays.task_of_job(arrays.plan_submissions(7, 3, 2)) == {
        0: (0, 0), 1: (0, 0), 2: (0, 0), 3: (0, 1), 4: (0, 1), 5: (0, 1), 6: (1, 0)
    }


def test_container_command_without_gpus_has_no_nv_flag():
    spec = container.ContainerSpec(image="/img/dsp latest.sif", binary="singularity", binds=("/data:/data:ro",))
    cmd = container.container_python_command(spec, gpus=False)
    assert shlex.split(cmd) == ["singularity", "exec", "--bind", "/data:/data:ro", "/img/dsp latest.sif", "python"]


def test_container_command_with_gpus_flags_and_custom_python():
    spec = container.ContainerSpec(
        image="img.sif", binary="apptainer", flags=("--cleanenv",), binds=("/a", "/b:/c"), python="python3.11"
    )
    cmd = container.container_python_command(spec, gpus=True)
    assert shlex.split(cmd) == [
        "apptainer", "exec", "--nv", "--cleanenv", "--bind", "/a", "--bind", "/b:/c", "img.sif", "python3.11"
    ]


@pytest.mark.parametrize(
    "per_task, per_node, gres, expected",
    [(None, None, None, False), (0, None, None, False), (1, None, None, True), (None, 2, None, True),
     (None, None, "gpu:a100:1", True), (None, None, "shard:2", False)],
)
def test_gpus_are_detected_from_any_of_the_gpu_options(per_task, per_node, gres, expected):
    assert container.wants_gpus(per_task, per_node, gres) is expected


def test_auto_binary_prefers_apptainer_then_singularity():
    assert container.resolve_binary("auto", which=lambda n: "/usr/bin/" + n) == "apptainer"
    assert container.resolve_binary("auto", which=lambda n: "/x" if n == "singularity" else None) == "singularity"
    assert container.resolve_binary("singularity", which=lambda n: None) == "singularity"


def test_missing_image_names_the_setting_and_the_path(tmp_path):
    with pytest.raises(ConfigError, match=r"experiment_config.yaml section 'hpc'.*nope.sif"):
        container.resolve_image("nope.sif", tmp_path, "experiment_config.yaml section 'hpc'")
    (tmp_path / "ok.sif").write_bytes(b"")
    assert container.resolve_image("ok.sif", tmp_path, "x") == str(tmp_path / "ok.sif")
    assert container.resolve_image("docker://python:3.11", tmp_path, "x") == "docker://python:3.11"


@pytest.mark.parametrize(
    "slurm_state, expected",
    [("PENDING", "QUEUED"), ("REQUEUED", "QUEUED"), ("RUNNING", "RUNNING"), ("COMPLETING", "RUNNING"),
     ("COMPLETED", "COMPLETED"), ("FAILED", "FAILED"), ("CANCELLED by 0", "CANCELLED"), ("CANCELLED+", "CANCELLED"),
     ("TIMEOUT", "TIMEOUT"), ("OUT_OF_MEMORY", "KILLED"), ("NODE_FAIL", "KILLED"), ("PREEMPTED", "KILLED"),
     ("", "UNKNOWN"), ("SOMETHING_NEW", "UNKNOWN"), (None, "UNKNOWN")],
)
def test_slurm_states_map_to_sem_statuses(slurm_state, expected):
    assert status.sem_status(slurm_state) == expected


def test_sacct_output_with_a_pending_array_range_is_expanded():
    text = (
        "JobID|State|ExitCode|NodeList|Partition|Reason\n"
        "27_0|COMPLETED|0:0|vm|debug|None\n"
        "27_1|FAILED|1:0|vm|debug|None\n"
        "27_[4-6,9%2]|PENDING|0:0|None assigned|debug|JobArrayTaskLimit\n"
        "28|CANCELLED by 0|0:15|vm|debug|None\n"
        "28.batch|CANCELLED|0:15|vm||\n"
    )
    states = status.parse_sacct(text)
    assert sorted(states) == ["27_0", "27_1", "27_4", "27_5", "27_6", "27_9", "28"]
    assert states["27_5"].status == "QUEUED" and states["27_5"].node == ""
    assert states["27_1"].exit_code == "1:0"
    assert states["28"].status == "CANCELLED"


def test_squeue_output_is_parsed():
    states = status.parse_squeue("31_2|RUNNING|vm|debug|None\n31_[3-4%2]|PENDING||debug|JobArrayTaskLimit\n")
    assert {k: v.status for k, v in states.items()} == {"31_2": "RUNNING", "31_3": "QUEUED", "31_4": "QUEUED"}


def _state(word, job_id="5_1", exit_code="0:0"):
    return status.SlurmJobState(job_id=job_id, state=word, exit_code=exit_code, node="vm", partition="debug")


@pytest.mark.parametrize("word, expected", [("CANCELLED by 0", "CANCELLED"), ("TIMEOUT", "TIMEOUT"),
                                            ("OUT_OF_MEMORY", "KILLED"), ("NODE_FAIL", "KILLED"), ("FAILED", "FAILED")])
def test_an_active_record_whose_job_slurm_ended_gets_slurms_verdict(word, expected):
    verdict = status.reconcile_slurm("RUNNING", _state(word))
    assert (verdict.status, verdict.write) == (expected, expected)
    assert "5_1" in verdict.reason


def test_unknown_or_missing_slurm_state_is_never_a_verdict():
    assert status.reconcile_slurm("RUNNING", None).write is None
    assert status.reconcile_slurm("QUEUED", _state("WEIRD_NEW_STATE")).write is None
    assert status.reconcile_slurm("QUEUED", None).status == "QUEUED"


def test_live_jobs_are_shown_as_slurm_sees_them_without_writing():
    verdict = status.reconcile_slurm("QUEUED", _state("RUNNING"))
    assert (verdict.status, verdict.write) == ("RUNNING", None)


def test_finished_records_are_left_alone_whatever_slurm_says():
    assert status.reconcile_slurm("COMPLETED", _state("FAILED")) == status.Verdict("COMPLETED")


def test_a_job_completed_in_slurm_without_a_final_record_is_failed_with_the_reason():
    verdict = status.reconcile_slurm("RUNNING", _state("COMPLETED"))
    assert verdict.write == "FAILED" and "never recorded" in verdict.reason


def test_query_result_without_the_job_is_unknown():
    assert status.QueryResult().status_of("1_1") == "UNKNOWN"


NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)


def test_local_run_with_a_stale_heartbeat_is_killed_and_a_fresh_one_is_running():
    stale = status.reconcile_local("RUNNING", NOW - dt.timedelta(seconds=700), NOW, 600, None)
    assert (stale.status, stale.write) == ("KILLED", "KILLED")
    fresh = status.reconcile_local("RUNNING", NOW - dt.timedelta(seconds=30), NOW, 600, None)
    assert (fresh.status, fresh.write) == ("RUNNING", None)


def test_local_run_process_check_wins_over_the_heartbeat():
    assert status.reconcile_local("RUNNING", NOW - dt.timedelta(hours=5), NOW, 600, True).write is None
    assert status.reconcile_local("RUNNING", NOW, NOW, 600, False).write == "KILLED"
