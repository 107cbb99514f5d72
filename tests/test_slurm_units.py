"""Pure parts of the Slurm launcher: array planning, container commands, state mapping and
reconciliation. No cluster needed (the cluster tests are in test_slurm_cluster.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shlex
import shutil

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
        0: (0, 0),
        1: (0, 0),
        2: (0, 0),
        3: (0, 1),
        4: (0, 1),
        5: (0, 1),
        6: (1, 0),
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
        "apptainer",
        "exec",
        "--nv",
        "--cleanenv",
        "--bind",
        "/a",
        "--bind",
        "/b:/c",
        "img.sif",
        "python3.11",
    ]


@pytest.mark.parametrize(
    "per_task, per_node, gres, expected",
    [
        (None, None, None, False),
        (0, None, None, False),
        (1, None, None, True),
        (None, 2, None, True),
        (None, None, "gpu:a100:1", True),
        (None, None, "shard:2", False),
    ],
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
    [
        ("PENDING", "QUEUED"),
        ("REQUEUED", "QUEUED"),
        ("RUNNING", "RUNNING"),
        ("COMPLETING", "RUNNING"),
        ("COMPLETED", "COMPLETED"),
        ("FAILED", "FAILED"),
        ("CANCELLED by 0", "CANCELLED"),
        ("CANCELLED+", "CANCELLED"),
        ("TIMEOUT", "TIMEOUT"),
        ("OUT_OF_MEMORY", "KILLED"),
        ("NODE_FAIL", "KILLED"),
        ("PREEMPTED", "KILLED"),
        ("", "UNKNOWN"),
        ("SOMETHING_NEW", "UNKNOWN"),
        (None, "UNKNOWN"),
    ],
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


def test_a_job_squeue_still_lists_is_live_whatever_sacct_says():
    """While submitit requeues a task, sacct can report the attempt that just stopped
    (FAILED 1:0) although the job is pending again: squeue, the controller's view, wins."""
    accounting = status.parse_sacct(
        "JobID|State|ExitCode|NodeList|Partition|Reason\n"
        "40_0|FAILED|1:0|vm|debug|None\n40_1|FAILED|1:0|vm|debug|None\n40_2|RUNNING|0:0|vm|debug|None\n"
    )
    queue = status.parse_squeue("40_0|PENDING||debug|BeginTime\n40_3|RUNNING|vm|debug|None\n")
    live = status.live_states(["40_0", "40_1", "40_2", "40_3", "40_4"], accounting, queue)
    assert {k: v.status for k, v in live.items()} == {
        "40_0": "QUEUED",  # requeued: pending again
        "40_1": "FAILED",  # out of the queue: sacct's verdict stands
        "40_2": "RUNNING",
        "40_3": "RUNNING",  # accounting has not caught up yet
    }  # 40_4: neither knows it -> absent (UNKNOWN), never a verdict


def test_without_squeues_answer_no_job_is_taken_for_ended_on_saccts_word():
    """squeue, not sacct, tells a requeued job from an ended one: when squeue fails (slurmctld
    too busy to answer), an ended state from sacct is unconfirmed and never a verdict."""
    accounting = status.parse_sacct(
        "JobID|State|ExitCode|NodeList|Partition|Reason\n"
        "41_0|FAILED|1:0|vm|debug|None\n41_1|RUNNING|0:0|vm|debug|None\n41_2|REQUEUED|0:0|vm|debug|None\n"
    )
    live = status.live_states(["41_0", "41_1", "41_2"], accounting, None)
    assert {k: v.status for k, v in live.items()} == {"41_1": "RUNNING", "41_2": "QUEUED"}
    assert status.reconcile_slurm("QUEUED", live.get("41_0")).write is None


def test_a_requeued_or_requeue_held_job_is_queued_whatever_sacct_says():
    """squeue's words for a requeued job (scontrol requeue / requeuehold, as seen on the test
    cluster): the record is shown QUEUED and never written."""
    accounting = status.parse_sacct(
        "JobID|State|ExitCode|NodeList|Partition|Reason\n42|FAILED|1:0|vm|debug|None\n43|TIMEOUT|0:0|vm|debug|None\n"
    )
    queue = status.parse_squeue("42|PENDING||debug|job requeued in held state\n43|REQUEUE_HOLD||debug|None\n")
    for job_id, state in status.live_states(["42", "43"], accounting, queue).items():
        verdict = status.reconcile_slurm("QUEUED", state)
        assert (verdict.status, verdict.write) == ("QUEUED", None), job_id


def _state(word, job_id="5_1", exit_code="0:0"):
    return status.SlurmJobState(job_id=job_id, state=word, exit_code=exit_code, node="vm", partition="debug")


@pytest.mark.parametrize(
    "word, expected",
    [
        ("CANCELLED by 0", "CANCELLED"),
        ("TIMEOUT", "TIMEOUT"),
        ("OUT_OF_MEMORY", "KILLED"),
        ("NODE_FAIL", "KILLED"),
        ("FAILED", "FAILED"),
    ],
)
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


# -- experiment_config.yaml cluster sections ------------------------------------------------
from sem_core.slurm import sections  # noqa: E402


@pytest.mark.parametrize(
    "text, minutes",
    [(90, 90), ("30", 30), ("01:30", 2), ("2:00:00", 120), ("1-0", 1440), ("1-2:30", 1590), ("0-0:0:61", 2)],
)
def test_time_limits_in_sbatch_forms_become_minutes_rounded_up(text, minutes):
    assert sections.parse_time_limit(text) == minutes


@pytest.mark.parametrize("bad", ["soon", "1:2:3:4", 0, True, ""])
def test_bad_time_limits_are_rejected(bad):
    with pytest.raises(ValueError, match="time limit"):
        sections.parse_time_limit(bad)


def test_memory_text_becomes_gb():
    assert sections.parse_memory_gb("4G") == 4.0
    assert sections.parse_memory_gb("512M") == 0.5
    assert sections.parse_memory_gb("16GB") == 16.0
    assert sections.parse_memory_gb(2) == 2.0


def test_a_cluster_section_maps_onto_launcher_fields(tmp_path):
    section = {
        "type": "slurm",
        "partition": "gpu",
        "timeout_min": "02:00:00",
        "cpus_per_task": 4,
        "gpus_per_task": 1,
        "mem_gb": "8G",
        "sif": "../images/env.sif",
        "container_binds": "/scratch",
        "setup": ["module load cuda/12", "export OMP_NUM_THREADS=4"],
        "additional_parameters": {"mail-type": "END"},
        "array_parallelism": 10,
    }
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the launcher's own names and experiment_manager's sif: no warning
        mapped = sections.map_section("hpc", section, tmp_path / "exp", "experiment_config.yaml")
    assert mapped == {
        "partition": "gpu",
        "timeout_min": 120,
        "cpus_per_task": 4,
        "gpus_per_task": 1,
        "mem_gb": 8.0,
        "container": str((tmp_path / "images" / "env.sif").resolve()),
        "container_binds": ["/scratch"],
        "setup": ["module load cuda/12", "export OMP_NUM_THREADS=4"],
        "additional_parameters": {"mail-type": "END"},
        "array_parallelism": 10,
    }


@pytest.mark.parametrize(
    ("key", "value", "write"),
    [
        ("time", "02:00:00", "write 'timeout_min' (it takes minutes or [D-]HH:MM:SS)"),
        ("cpus", 4, "write 'cpus_per_task'"),
        ("mem", "8G", "write 'mem_gb' (it takes GB or text like 16G)"),
        ("modules", ["cuda/12", "gcc"], "write setup: ['module load cuda/12', 'module load gcc']"),
        ("parallelism", 10, "write 'array_parallelism'"),
    ],
)
def test_an_old_spelling_is_an_error_naming_the_key_to_write(tmp_path, key, value, write):
    with pytest.raises(ConfigError) as caught:
        sections.map_section("old", {"partition": "gpu", key: value}, tmp_path, "old/experiment_config.yaml")
    message = str(caught.value)
    assert message.startswith(f"old/experiment_config.yaml: section 'old' key {key!r}: an old spelling; ")
    assert write in message and "\n" not in message


def test_every_launcher_setting_has_one_spelling_besides_the_predecessors():
    from hydra_plugins.sem_plugins.config import SlurmLauncherConf

    fields = {f.name for f in dataclasses.fields(SlurmLauncherConf) if not f.name.startswith("_")}
    assert set(sections.launcher_keys()) == fields | {"sif"}
    assert set(sections.OLD_SPELLINGS.values()) <= fields
    assert not set(sections.OLD_SPELLINGS) & set(sections.launcher_keys())


def test_unknown_cluster_key_names_file_section_and_known_keys(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"experiment_config.yaml: section 'hpc' key 'partitoin': unknown key \(did you mean 'partition'\?\); known keys: .*partition",
    ):
        sections.map_section("hpc", {"type": "slurm", "partitoin": "gpu"}, tmp_path, "experiment_config.yaml")


def test_two_aliases_of_one_setting_are_an_error(tmp_path):
    with pytest.raises(ConfigError, match="second time"):
        sections.map_section("hpc", {"sif": "a.sif", "container": "b.sif"}, tmp_path, "x.yaml")


def test_cluster_sections_register_as_launcher_options(tmp_path):
    from hydra.core.config_store import ConfigStore

    names = sections.register_cluster_launchers(
        {"local": {"type": "local"}, "mycluster": {"type": "slurm", "partition": "debug", "timeout_min": 5}}, tmp_path
    )
    assert names == ["mycluster"]
    node = ConfigStore.instance().load("hydra/launcher/mycluster.yaml").node
    assert node.partition == "debug" and node.timeout_min == 5
    assert node._target_ == "hydra_plugins.sem_plugins.slurm_launcher.SlurmLauncher"


# -- launcher parameters ---------------------------------------------------------------------
from sem_core.launch import slurm as submit  # noqa: E402


def test_signal_delay_not_below_the_time_limit_is_an_error_with_the_fix():
    with pytest.raises(ConfigError, match=r"signal_delay_s=90 is not below the time limit timeout_min=1"):
        submit.executor_parameters({"timeout_min": 1, "signal_delay_s": 90})


def test_a_signal_delay_that_slurm_may_send_before_start_up_warns_with_a_safe_value():
    """slurmctld may send the signal 60 s early: 90 s of a 2-minute limit leaves no start-up time."""
    from sem_core.errors import SemWarning

    with pytest.warns(SemWarning, match=r"signal_delay_s=90 with timeout_min=2.*e\.g\. signal_delay_s=30"):
        submit.executor_parameters({"timeout_min": 2, "signal_delay_s": 90})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        submit.executor_parameters({"timeout_min": 2, "signal_delay_s": 30})  # the test cluster's
        submit.executor_parameters({"timeout_min": 60, "signal_delay_s": 90})  # the defaults


def test_launcher_fields_become_sbatch_parameters_submitted_held():
    params = submit.executor_parameters(
        {
            "timeout_min": 30,
            "signal_delay_s": 60,
            "partition": "p",
            "mem_gb": 1.5,
            "setup": ["module load x"],
            "additional_parameters": {"exclusive": True},
            "account": None,
        },
    )
    assert params == {
        "time": 30,
        "signal_delay_s": 60,
        "partition": "p",
        "mem": "1536MB",
        "setup": ["module load x"],
        "additional_parameters": {"exclusive": True, "hold": True},
    }


def test_python_command_with_a_container_image_relative_to_the_experiment(tmp_path):
    (tmp_path / "img.sif").write_bytes(b"")
    cmd = submit.python_command({"container": "img.sif", "container_binary": "apptainer", "gpus_per_task": 1}, tmp_path)
    assert shlex.split(cmd) == ["apptainer", "exec", "--nv", str(tmp_path / "img.sif"), "python"]
    assert submit.python_command({}, tmp_path) == shlex.quote(sys.executable)


# -- sem status on records (no cluster needed) -------------------------------------------------
import sys  # noqa: E402

from sem_core.observers.file import FileStorageObserver  # noqa: E402


def _record(store, gid, status, heartbeat=None, slurm=None, model="m_x.py"):
    obs = FileStorageObserver(store)
    now = dt.datetime.now(dt.timezone.utc)
    meta = {"sem": {"slurm": slurm} if slurm else {}}
    ex_info = {"name": "m_x", "base_dir": str(store), "sources": [], "mainfile": model}
    config = {"experiment_id": "e" + gid, "config_id": "c", "order_id": 0, "global_id": gid}
    if status == "QUEUED":
        obs.queued_event(ex_info, "main", {"hostname": "elsewhere"}, now, config, meta, gid)
    else:
        obs.started_event(ex_info, "main", {"hostname": "elsewhere"}, now, config, meta, gid)
        if heartbeat is not None:
            obs.run_entry["heartbeat"] = heartbeat.isoformat()
            obs._write_run()
        if status == "COMPLETED":
            obs.completed_event(now, 1)
    return store / gid


def _sem(*args):
    import subprocess

    return subprocess.run([sys.executable, "-m", "sem_core.cli", *args], capture_output=True, text=True, timeout=120)


def test_status_marks_a_local_run_with_a_stale_heartbeat_killed_and_leaves_fresh_ones(tmp_path):
    store = tmp_path / "runs"
    now = dt.datetime.now(dt.timezone.utc)
    stale = _record(store, "20260101-stale", "RUNNING", heartbeat=now - dt.timedelta(minutes=30))
    fresh = _record(store, "20260101-fresh", "RUNNING", heartbeat=now)
    _record(store, "20260101-done", "COMPLETED")
    out = _sem("status", str(store))
    assert out.returncode == 0, out.stderr
    assert "updated 20260101-stale: RUNNING -> KILLED (no heartbeat for" in out.stdout
    assert json.loads((stale / "run.json").read_text())["status"] == "KILLED"
    assert json.loads((fresh / "run.json").read_text())["status"] == "RUNNING"
    line = next(x for x in out.stdout.splitlines() if x.startswith("m_x.py"))
    assert line.split()[1:] == ["1", "1", "1", "3"]  # RUNNING COMPLETED KILLED total


def _slurm_answers() -> bool:
    """Slurm's commands are installed AND its controller and accounting answer (the binaries
    stay installed after tests/slurm/stop.sh)."""
    import subprocess

    if not shutil.which("sacct"):
        return False
    return subprocess.run(["sacct", "-X", "-n", "-j", "1"], capture_output=True, timeout=30).returncode == 0


def test_status_never_turns_an_unknown_slurm_job_into_a_verdict(tmp_path):
    """Job 999999 is unknown to Slurm (or Slurm is absent): the run stays as recorded, and the
    unknown state or the failed query is reported."""
    store = tmp_path / "runs"
    run_dir = _record(store, "20260101-q", "QUEUED", slurm={"job_id": "999999_3", "array_job_id": "999999"})
    running = _record(
        store,
        "20260101-r",
        "RUNNING",
        heartbeat=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc),
        slurm={"job_id": "999999_4", "array_job_id": "999999"},
    )
    out = _sem("status", str(store))
    if _slurm_answers():  # Slurm answers and does not know the job
        assert out.returncode == 0, out.stderr
    else:  # no Slurm here: the failed query is reported, exit code 1
        assert out.returncode == 1 and "Slurm query failed" in out.stderr
    assert json.loads((run_dir / "run.json").read_text())["status"] == "QUEUED"
    assert (
        json.loads((running / "run.json").read_text())["status"] == "RUNNING"
    )  # an old heartbeat is not a verdict for Slurm runs
    assert "left as recorded 20260101-q (QUEUED)" in out.stdout
    assert "updated" not in out.stdout


def test_slurm_meta_reads_the_array_task_from_slurms_variables():
    from sem_core.launch.slurm_task import slurm_meta

    env = {
        "SLURM_ARRAY_JOB_ID": "12",
        "SLURM_ARRAY_TASK_ID": "3",
        "SLURM_JOB_ID": "15",
        "SLURMD_NODENAME": "n1",
        "SLURM_JOB_PARTITION": "gpu",
        "SLURM_CLUSTER_NAME": "c",
        "SLURM_RESTART_COUNT": "2",
    }
    assert slurm_meta(env) == {
        "job_id": "12_3",
        "array_job_id": "12",
        "array_index": 3,
        "raw_job_id": "15",
        "node": "n1",
        "partition": "gpu",
        "cluster": "c",
        "restart_count": 2,
    }
    assert slurm_meta({"SLURM_JOB_ID": "7"})["job_id"] == "7"


def test_the_worker_runs_the_submitted_source_without_starting_a_sweep(tmp_path):
    from sem_core.experiment import load_model_file

    model = tmp_path / "models" / "m_w.py"
    model.parent.mkdir()
    (model.parent / "sib.py").write_text("VALUE = 41\n")
    source = (
        "import sys\nsys.path.insert(0, __file__.rsplit('/', 1)[0])\nfrom sib import VALUE\n"
        "from sem_core import Experiment\nex = Experiment(__file__)\n"
        "@ex.configs\ndef rows():\n    return [{'a': VALUE + 1}]\n"
        "@ex.automain\ndef main(config):\n    return config['a']\n"
    )
    model.write_text("# edited after submission\n")  # the worker uses the submitted source
    ex = load_model_file(str(model), source)
    assert ex.rows() == [{"a": 42}] and ex.path == model.resolve()


def test_status_of_a_sweep_folder_counts_only_that_sweeps_runs(tmp_path):
    store = tmp_path / "runs"
    _record(store, "20260101-a", "COMPLETED")
    _record(store, "20260101-b", "COMPLETED")
    sweep = tmp_path / "multirun" / "s1"
    sweep.mkdir(parents=True)
    (sweep / "sem_sweep.json").write_text(json.dumps({"store": str(store), "jobs": [{"global_id": "20260101-a"}]}))
    out = _sem("status", str(sweep))
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("m_x.py"))
    assert line.split()[1:] == ["1", "1"]  # COMPLETED, total
    assert f"sweep {sweep}" in out.stdout


def test_the_last_timeout_signal_is_recognised_even_when_sem_wrapped_it():
    """The signal can land while sem starts the run record; the wrapped error still means TIMEOUT."""
    from submitit.core.utils import UncompletedJobError

    from sem_core.errors import SemError
    from sem_core.launch.slurm_task import _is_final_timeout

    final = UncompletedJobError("Job not requeued because: timed-out too many times.")
    try:
        try:
            raise final
        except UncompletedJobError as exc:
            raise SemError(f"sem could not start recording this run: {exc}") from exc
    except SemError as wrapped:
        assert _is_final_timeout(wrapped)
    assert not _is_final_timeout(ValueError("timed-out"))  # the user's own error, same words
    assert not _is_final_timeout(UncompletedJobError("Job not requeued because: checkpoint function returned None."))


@given(n_arrays=st.integers(1, 40), parallelism=st.integers(1, 50), sizes=st.lists(st.integers(1, 9), min_size=40))
def test_split_arrays_never_run_more_tasks_at_once_than_the_sweeps_limit(n_arrays, parallelism, sizes):
    """Slurm is replayed greedily: each array runs up to its own limit once the array it waits
    for has ended; at no point do more than ``parallelism`` tasks run, and every array runs."""
    plan = arrays.share_parallelism(n_arrays, parallelism)
    assert all(limit >= 1 for limit, _ in plan)
    assert all(after is None or after < i for i, (_, after) in enumerate(plan))
    left = [sizes[i] for i in range(n_arrays)]  # tasks still to run; each takes one time step
    done = [False] * n_arrays
    while not all(done):
        running = 0
        eligible = [i for i, (_, after) in enumerate(plan) if not done[i] and (after is None or done[after])]
        assert eligible  # never stuck
        for i in eligible:
            step = min(plan[i][0], left[i])
            running += step
            left[i] -= step
        assert running <= parallelism
        done = [d or left[i] == 0 for i, d in enumerate(done)]
    if n_arrays <= parallelism:  # no array waits, and the whole limit is used
        assert all(after is None for _, after in plan) and sum(limit for limit, _ in plan) == parallelism
