"""``hydra/launcher=slurm`` against the project's REAL single-node Slurm cluster
(``bash tests/slurm/start.sh``: munge, MariaDB + slurmdbd, slurmctld, slurmd; MaxArraySize=30).

Without a running cluster these tests skip, unless SEM_REQUIRE_SERVICES=1 (tests/run.sh sets it),
where they fail."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sem_core.launch.slurm_task import ARRAY_TASK_CODE
from tests.conftest import load_store, run_model
from tests.services import missing_service

pytestmark = pytest.mark.slurm

# small limits: each sweep takes seconds; signal_delay_s must stay below the time limit
LAUNCH = (
    "hydra/launcher=slurm",
    "hydra.launcher.timeout_min=2",
    "hydra.launcher.signal_delay_s=30",
    "hydra.launcher.poll_interval_s=0.5",
)


def _cluster_problem() -> str | None:
    if shutil.which("sinfo") is None:
        return "Slurm is not installed (start it with: bash tests/slurm/start.sh)"
    deadline = time.monotonic() + 60  # a node still completing an earlier job comes back in seconds
    while True:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
        if out.returncode == 0 and any(s.rstrip("*~#!%$@^-") in ("idle", "mix", "alloc") for s in out.stdout.split()):
            return None
        if time.monotonic() > deadline:
            answer = out.stdout.strip() or out.stderr.strip()
            return f"the test Slurm cluster is not up (sinfo: {answer}); run bash tests/slurm/start.sh"
        time.sleep(1)


@pytest.fixture(scope="module")
def cluster() -> None:
    problem = _cluster_problem()
    if problem:
        missing_service(problem)


def sem(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sem_core.cli", *args],
        capture_output=True,
        text=True,
        cwd=str(cwd) if cwd else None,
        timeout=120,
    )


def sacct_states(job_ids: list[str]) -> dict[str, str]:
    parents = ",".join(sorted({j.split("_")[0] for j in job_ids}))
    out = subprocess.run(
        ["sacct", "-X", "-n", "--parsable2", "-o", "JobID,State", "-j", parents],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("|", 1) for line in out.splitlines() if line)


# sacct states a task passes through before its final one
SACCT_LIVE = {"PENDING", "RUNNING", "COMPLETING", "REQUEUED", "SUSPENDED", "CONFIGURING"}


def final_sacct_states(job_ids: list[str], count: int) -> dict[str, str]:
    """sacct's states once it lists ``count`` tasks and none is still live: the records are
    final before the task's process has exited, and sacct follows later (more so under load)."""
    return wait_for(
        lambda: (s := sacct_states(job_ids)) and len(s) >= count and not SACCT_LIVE & set(s.values()) and s,
        120,
        "sacct's final states",
    )


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def slurm_of(run: dict) -> dict:
    return run["meta"]["sem"]["slurm"]


def submission_files(model: Path) -> list[Path]:
    return sorted(model.parent.glob("multirun/*/*/.slurm/**/*submission_file*.sh"))


HELPER = "def double(x):\n    return 2 * x\n"

ROWS_MODEL = """
import os
from sem_core import Experiment
from helper import double  # a sibling module: must import on the compute node

ex = Experiment(__file__)

@ex.configs
def get_config():
    return [{"name": "row", "i": i} for i in range(int(os.environ["SEM_TEST_ROWS"]))]

@ex.automain
def main(config):
    return double(config["i"])
"""


@pytest.fixture
def rows_model(write_model):
    """A model file with SEM_TEST_ROWS rows that imports a sibling module."""

    def _make() -> Path:
        model = write_model(ROWS_MODEL, "m_rows.py")
        (model.parent / "helper.py").write_text(HELPER)
        return model

    return _make


def run_rows(model: Path, n_rows: int, *extra: str) -> subprocess.CompletedProcess:
    return run_model(model, *LAUNCH, *extra, env={"SEM_TEST_ROWS": str(n_rows)}, timeout=240)


def peak_concurrency(runs: list[dict]) -> int:
    """The most runs that were running at the same time, from their records' start/stop times."""
    events = sorted([(r["run"]["start_time"], 1) for r in runs] + [(r["run"]["stop_time"], -1) for r in runs])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_25_rows_run_as_one_array_four_at_a_time_with_sibling_imports_and_slurm_ids(cluster, rows_model):
    model = rows_model()
    proc = run_rows(model, 25, "hydra.launcher.array_parallelism=4")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = load_store(model.parent / "runs")
    assert len(runs) == 25
    assert {r["run"]["status"] for r in runs} == {"COMPLETED"}
    assert sorted(r["run"]["result"] for r in runs) == [2 * i for i in range(25)]  # helper.double ran
    ids = [slurm_of(r["run"]) for r in runs]
    assert len({s["array_job_id"] for s in ids}) == 1  # one array
    assert sorted(s["array_index"] for s in ids) == list(range(25))
    assert {s["node"] for s in ids} == {os.uname().nodename.split(".")[0]}
    assert {s["partition"] for s in ids} == {"debug"}
    files = submission_files(model)
    assert len(files) == 1 and "#SBATCH --array=0-24%4" in files[0].read_text()  # one sbatch call
    assert peak_concurrency(runs) <= 4
    states = final_sacct_states([i["job_id"] for i in ids], 25)
    assert set(states.values()) == {"COMPLETED"}


MIX_MODEL = """
import threading
from sem_core import Experiment

ex = Experiment(__file__)
ex.lock = threading.Lock()  # an unpicklable experiment attribute must not abort the sweep

@ex.configs
def get_config():
    return [{"kind": k, "i": i} for i, k in enumerate(["ok", "raises", "unpicklable", "ok"])]

@ex.automain
def main(config):
    if config["kind"] == "raises":
        raise ValueError(f"row {config['i']} fails on purpose")
    if config["kind"] == "unpicklable":
        return threading.Lock()
    return config["i"]
"""


def test_a_raising_row_ends_failed_in_record_and_sacct_while_the_others_complete(cluster, write_model):
    model = write_model(MIX_MODEL, "m_mix.py")
    proc = run_model(model, *LAUNCH, timeout=240)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]  # the sweep reports the failure
    runs = {r["config"]["kind"] + str(r["config"]["i"]): r["run"] for r in load_store(model.parent / "runs")}
    assert runs["raises1"]["status"] == "FAILED"
    assert "ValueError: row 1 fails on purpose" in "".join(runs["raises1"]["fail_trace"])
    assert runs["unpicklable2"]["status"] == "COMPLETED"
    assert "lock" in str(runs["unpicklable2"]["result"])
    assert runs["ok0"]["status"] == runs["ok3"]["status"] == "COMPLETED"
    job_ids = {k: slurm_of(r)["job_id"] for k, r in runs.items()}
    states = final_sacct_states(list(job_ids.values()), 4)
    assert states[job_ids["raises1"]] == "FAILED"  # not COMPLETED (hydra #1928)
    assert [states[job_ids[k]] for k in ("ok0", "unpicklable2", "ok3")] == ["COMPLETED"] * 3


def test_arrays_larger_than_max_array_size_are_split(cluster, rows_model):
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True).stdout
    assert "MaxArraySize            = 30" in config  # the test cluster's setting (tests/slurm/start.sh)
    model = rows_model()
    proc = run_rows(model, 35, "hydra.launcher.array_parallelism=3")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = load_store(model.parent / "runs")
    assert len(runs) == 35 and {r["run"]["status"] for r in runs} == {"COMPLETED"}
    arrays: dict[str, list[int]] = {}
    for r in runs:
        s = slurm_of(r["run"])
        arrays.setdefault(s["array_job_id"], []).append(s["array_index"])
    assert sorted(len(v) for v in arrays.values()) == [5, 30]
    scripts = [f.read_text() for f in submission_files(model)]
    assert len(scripts) == 2  # one sbatch call per array
    # %3 is the sweep's limit, not each array's: the two arrays share it (2 + 1)
    assert sorted(line for text in scripts for line in text.splitlines() if "--array" in line) == [
        "#SBATCH --array=0-29%2",
        "#SBATCH --array=0-4%1",
    ]
    assert peak_concurrency(runs) <= 3


def test_split_arrays_beyond_the_limit_wait_for_an_earlier_array_to_end(cluster, rows_model):
    """%1 over two arrays: the second is submitted depending on the first, and Slurm holds it."""
    model = rows_model()
    store = model.parent / "runs"
    proc = run_rows(model, 35, "hydra.launcher.array_parallelism=1", "hydra.launcher.wait=false")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    try:
        sizes: dict[str, int] = {}
        for r in load_store(store):
            parent = slurm_of(r["run"])["array_job_id"]
            sizes[parent] = sizes.get(parent, 0) + 1
        (first, _), (second, _) = sorted(sizes.items(), key=lambda kv: -kv[1])  # 30 tasks, then 5
        scripts = {f.read_text() for f in submission_files(model)}
        assert any(f"#SBATCH --dependency=afterany:{first}" in t and "--array=0-4%1" in t for t in scripts)

        def second_waits():
            out = subprocess.run(
                ["squeue", "-h", "-r", "-j", second, "-o", "%T|%r"], capture_output=True, text=True
            ).stdout.split()
            return len(out) == 5 and set(out) == {"PENDING|Dependency"}

        wait_for(second_waits, 30, f"Slurm to hold array {second} on its dependency")
    finally:
        out = sem("cancel", str(store))
        assert out.returncode == 0, out.stdout + out.stderr


def test_configs_per_task_packs_consecutive_rows_into_one_array_task(cluster, rows_model):
    model = rows_model()
    proc = run_rows(model, 7, "hydra.launcher.configs_per_task=3")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = load_store(model.parent / "runs")
    assert {r["run"]["status"] for r in runs} == {"COMPLETED"}
    task_of_row = {r["config"]["i"]: slurm_of(r["run"])["array_index"] for r in runs}
    assert task_of_row == {0: 0, 1: 0, 2: 0, 3: 1, 4: 1, 5: 1, 6: 2}
    (file,) = submission_files(model)
    assert "#SBATCH --array=0-2%3" in file.read_text()


SLEEP_MODEL = """
import os, time
from sem_core import Experiment

ex = Experiment(__file__)

@ex.configs
def get_config():
    return [{"i": i, "sleep": float(os.environ["SEM_TEST_SLEEP"])} for i in range(3)]

@ex.automain
def main(config):
    time.sleep(config["sleep"])
    return config["i"]
"""


def test_wait_false_records_queued_runs_with_slurm_ids_and_status_follows_them(cluster, write_model):
    model = write_model(SLEEP_MODEL, "m_sleep.py")
    store = model.parent / "runs"
    proc = run_model(model, *LAUNCH, "hydra.launcher.wait=false", env={"SEM_TEST_SLEEP": "3"}, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"sem status {store}" in proc.stdout
    runs = load_store(store)
    assert len(runs) == 3
    for r in runs:  # recorded before the jobs could start (submitted held, released after)
        assert r["run"]["status"] in ("QUEUED", "RUNNING")
        assert slurm_of(r["run"])["job_id"].startswith(slurm_of(r["run"])["array_job_id"] + "_")

    def all_completed():
        out = sem("status", str(store))
        assert out.returncode == 0, out.stderr
        return "COMPLETED" in out.stdout and all(r["run"]["status"] == "COMPLETED" for r in load_store(store)) and out

    out = wait_for(all_completed, 90, "the queued runs to complete")
    assert "m_sleep.py" in out.stdout


def shim(bin_dir: Path, name: str, body: str) -> dict:
    """A ``name`` on PATH in front of the real one: ``body`` runs first (bash), then the real
    command with the same arguments. Returns the environment that puts it on PATH."""
    real = shutil.which(name)
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / name).write_text(f'#!/bin/bash\n{body}\nexec "{real}" "$@"\n')
    (bin_dir / name).chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def queue_of(array_job_id: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", array_job_id], capture_output=True, text=True).stdout.strip()


def test_a_failing_sbatch_cancels_the_arrays_already_submitted_and_no_job_runs(cluster, rows_model, tmp_path):
    """35 rows are two arrays (MaxArraySize=30); the second sbatch fails: the first array,
    submitted held, is cancelled before any of its jobs could start, the command fails naming
    sbatch's error, and the records written meanwhile end CANCELLED once sem status asks Slurm."""
    model = rows_model()
    store = model.parent / "runs"
    env = shim(
        tmp_path / "bin",
        "sbatch",
        # the 5-task array's script: refused as a cluster refuses a job (a QOS limit, a bad account)
        'if grep -q -- "--array=0-4%" "${@: -1}"; then echo "sbatch: error: refused by the test" >&2; exit 1; fi',
    )
    proc = run_model(model, *LAUNCH, env={**env, "SEM_TEST_ROWS": "35"}, timeout=240)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "refused by the test" in output and "cancelled the held Slurm jobs" in output, output[-3000:]
    runs = load_store(store)
    assert not list(store.glob(".new-*"))  # no half-made run folder
    parents = {slurm_of(r["run"])["array_job_id"] for r in runs}
    assert len(parents) <= 1 and all(r["run"]["status"] == "QUEUED" for r in runs)
    for parent in parents:
        wait_for(lambda p=parent: queue_of(p) == "" or "CA" in queue_of(p), 30, "the held array to be cancelled")
        states = final_sacct_states([parent], 1)
        assert all(state.startswith("CANCELLED") for state in states.values()), states  # no task ever ran
    if runs:  # once accounting knows the array's tasks (it lags behind scancel)

        def reconciled() -> bool:
            sem("status", str(store))
            return {r["run"]["status"] for r in load_store(store)} == {"CANCELLED"}

        wait_for(reconciled, 60, "sem status to write Slurm's CANCELLED into the records", interval=2)
    # every sacred number left names a run folder: none points at a record never written
    index = store / "_sacred"
    if index.is_dir():
        assert all((index / n).resolve().is_dir() for n in os.listdir(index) if not n.startswith("."))


def test_a_submitter_killed_before_the_release_leaves_held_jobs_that_sem_cancel_ends(cluster, rows_model, tmp_path):
    """The submitting process dies (kill -9) once every QUEUED record exists, just before it
    releases the held arrays: no job starts without its record, the runs stay QUEUED (sem status
    writes no verdict on a job Slurm still holds), and sem cancel ends jobs and records together."""
    model = rows_model()
    store = model.parent / "runs"
    env = shim(tmp_path / "bin", "scontrol", 'if [ "$1" = release ]; then kill -9 "$PPID"; exit 1; fi')
    proc = run_model(model, *LAUNCH, "hydra.launcher.wait=false", env={**env, "SEM_TEST_ROWS": "35"}, timeout=240)
    assert proc.returncode == -9, proc.stdout[-2000:] + proc.stderr[-2000:]
    runs = load_store(store)
    assert len(runs) == 35 and {r["run"]["status"] for r in runs} == {"QUEUED"}
    parents = sorted({slurm_of(r["run"])["array_job_id"] for r in runs})
    assert len(parents) == 2
    held = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%T %r", "-j", ",".join(parents)], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert len([line for line in held if line]) == 35 and all(line.startswith("PENDING") for line in held if line)

    out = sem("status", str(store))
    assert out.returncode == 0, out.stderr
    assert {r["run"]["status"] for r in load_store(store)} == {"QUEUED"}
    out = sem("cancel", str(store))
    assert out.returncode == 0, out.stdout + out.stderr
    assert {r["run"]["status"] for r in load_store(store)} == {"CANCELLED"}
    assert all(queue_of(p) == "" for p in parents)


def test_cancelled_jobs_show_as_cancelled_in_status_and_sem_cancel_stops_the_rest(cluster, write_model):
    model = write_model(SLEEP_MODEL, "m_sleep.py")
    store = model.parent / "runs"
    proc = run_model(model, *LAUNCH, "hydra.launcher.wait=false", env={"SEM_TEST_SLEEP": "300"}, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wait_for(lambda: all(r["run"]["status"] == "RUNNING" for r in load_store(store)), 60, "the runs to start")
    runs = {r["config"]["i"]: r for r in load_store(store)}
    victim = slurm_of(runs[0]["run"])["job_id"]
    subprocess.run(["scancel", victim], check=True)  # cancelled outside sem: the run never records it
    wait_for(
        lambda: not subprocess.run(["squeue", "-h", "-j", victim], capture_output=True, text=True).stdout.strip(),
        60,
        "the cancelled job to leave the queue",
    )
    out = sem("status", str(store))
    assert out.returncode == 0, out.stderr
    assert json.loads((runs[0]["dir"] / "run.json").read_text())["status"] == "CANCELLED"
    assert f"updated {runs[0]['dir'].name}: RUNNING -> CANCELLED" in out.stdout
    assert [json.loads((runs[i]["dir"] / "run.json").read_text())["status"] for i in (1, 2)] == ["RUNNING"] * 2

    out = sem("cancel", str(store))
    assert out.returncode == 0, out.stdout + out.stderr
    assert {r["run"]["status"] for r in load_store(store)} == {"CANCELLED"}
    parent = slurm_of(runs[1]["run"])["array_job_id"]
    assert subprocess.run(["squeue", "-h", "-j", parent], capture_output=True, text=True).stdout.strip() == ""
    status = sem("status", str(store))
    assert "CANCELLED" in status.stdout and "RUNNING" not in status.stdout


KILL_MODEL = """
import time
from sem_core import Experiment

ex = Experiment(__file__)

@ex.configs
def get_config():
    return [{"i": 0, "sleep": 300}, {"i": 1, "sleep": 1}, {"i": 2, "sleep": 1}]

@ex.automain
def main(config):
    time.sleep(config["sleep"])
"""


def test_a_job_slurm_stops_while_the_launcher_waits_gets_slurms_verdict(cluster, write_model):
    model = write_model(KILL_MODEL, "m_kill.py")
    store = model.parent / "runs"
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.Popen(
        [sys.executable, str(model), *LAUNCH],
        cwd=str(model.parent),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def victim_running():
            runs = [r for r in load_store(store) if r["config"]["i"] == 0] if store.exists() else []
            return runs and runs[0]["run"]["status"] == "RUNNING" and runs[0]

        victim = wait_for(victim_running, 60, "row 0 to run")
        subprocess.run(["scancel", slurm_of(victim["run"])["job_id"]], check=True)
        output = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, output[-3000:]
    runs = {r["config"]["i"]: r["run"] for r in load_store(store)}
    assert runs[0]["status"] == "CANCELLED"
    assert "ended CANCELLED" in "".join(runs[0]["fail_trace"])
    assert runs[1]["status"] == runs[2]["status"] == "COMPLETED", (runs[1].get("fail_trace"), runs[2].get("fail_trace"))
    assert "2 done, 1 failed" in output


REQUEUE_MODEL = """
import time
from pathlib import Path
from sem_core import Experiment

ex = Experiment(__file__)
MARK = Path(__file__).parent / "checkpointed.txt"

@ex.configs
def get_config():
    return [{"name": "forever"}, {"name": "resumes"}]

@ex.checkpoint
def save(config):
    if config["name"] == "resumes":
        MARK.write_text(config["global_id"])

@ex.automain
def main(config):
    if config["name"] == "resumes" and MARK.exists():
        return "resumed from " + MARK.read_text()
    time.sleep(600)
"""


def slurm_logs(models_dir: Path) -> str:
    """Every submitit log of the sweeps under ``models_dir`` (shown when a test fails)."""
    return "".join(
        f"\n== {log}\n{log.read_text(errors='replace')[-3000:]}"
        for log in sorted(models_dir.glob("multirun/*/*/.slurm/*_log.*"))
    )


def requeue_signal(model: Path) -> str:
    """The signal the job script asks Slurm to send before the time limit (``--signal=USR2@60``):
    submitit's timeout/preemption signal."""
    (script,) = submission_files(model)
    (option,) = [line for line in script.read_text().splitlines() if line.startswith("#SBATCH --signal=")]
    return option.split("=", 1)[1].split("@")[0]


def slurm_state(job_id: str) -> str:
    """squeue's state of one job ('' once it left the queue)."""
    return subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True).stdout.strip()


def start_held_jobs_now() -> None:
    """Slurm holds a requeued job for ~2 minutes (BeginTime); move that forward to stay short."""
    waiting = subprocess.run(["squeue", "-h", "-r", "-t", "PD", "-o", "%i|%r"], capture_output=True, text=True).stdout
    for line in waiting.splitlines():
        job_id, reason = line.split("|", 1)
        if reason == "BeginTime":
            subprocess.run(["scontrol", "update", f"jobid={job_id}", "StartTime=now"], capture_output=True)


def test_a_signalled_job_is_requeued_with_the_same_global_id_then_reported_timeout(cluster, write_model):
    """The signal Slurm sends before the time limit, sent by the test once the run is running
    (slurmctld sends it from a pass it makes every 30 s, up to 60 s early: too loose to time a
    test by). With max_requeue=1 the first signal checkpoints and requeues; the second, in the
    requeued attempt, is the last: that run ends TIMEOUT, the one that checkpointed completes."""
    model = write_model(REQUEUE_MODEL, "m_requeue.py")
    store = model.parent / "runs"
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    # Slurm's own signal would come 9 minutes in, long after the test ended
    proc = subprocess.Popen(
        [
            sys.executable,
            str(model),
            "hydra/launcher=slurm",
            "hydra.launcher.timeout_min=10",
            "hydra.launcher.signal_delay_s=60",
            "hydra.launcher.max_requeue=1",
            "hydra.launcher.poll_interval_s=0.5",
        ],
        cwd=str(model.parent),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # the attempts to signal: (row, restart count); the second attempt of "resumes" ends at once
    to_signal = {("forever", 0), ("forever", 1), ("resumes", 0)}
    # one signal at a time, the next once Slurm has requeued the last: two tasks of one array
    # requeued in the same instant can leave one of them terminated by Slurm mid-requeue (a Slurm
    # race, not what this test is about)
    in_flight = None  # (row, restart count) signalled last
    in_flight_job = ""  # its Slurm job id
    deadline = time.monotonic() + 300
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            runs = load_store(store) if store.exists() else []
            attempts = {(r["config"]["name"], slurm_of(r["run"])["restart_count"]): r["run"]["status"] for r in runs}
            if in_flight is not None and (
                attempts.get(in_flight) == "RUNNING" or slurm_state(in_flight_job) in ("RUNNING", "COMPLETING")
            ):
                start_held_jobs_now()
                time.sleep(0.5)  # the signalled attempt has not handed its run back, or Slurm not requeued it yet
                continue
            in_flight = None
            for r in runs:
                slurm = slurm_of(r["run"])
                attempt = (r["config"]["name"], slurm["restart_count"])
                # RUNNING is written inside main: submitit's signal handler is installed by then
                if r["run"]["status"] == "RUNNING" and attempt in to_signal:
                    to_signal.discard(attempt)
                    in_flight, in_flight_job = attempt, slurm["job_id"]
                    subprocess.run(["scancel", f"--signal={requeue_signal(model)}", slurm["job_id"]], check=True)
                    break
            start_held_jobs_now()
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = proc.communicate()[0]
    assert proc.returncode == 1, output[-4000:] + slurm_logs(model.parent)  # one run did not complete
    assert not to_signal, output[-4000:]
    runs = {r["config"]["name"]: r for r in load_store(store)}
    assert sorted(runs) == ["forever", "resumes"]  # each row kept its global id across the requeue
    forever, resumes = runs["forever"]["run"], runs["resumes"]["run"]
    assert forever["status"] == "TIMEOUT", "".join(forever.get("fail_trace") or []) + slurm_logs(model.parent)
    assert "timed-out too many times" in "".join(forever["fail_trace"])
    assert slurm_of(forever)["restart_count"] == 1
    assert resumes["status"] == "COMPLETED", "".join(resumes.get("fail_trace") or []) + slurm_logs(model.parent)
    assert resumes["result"] == "resumed from " + runs["resumes"]["config"]["global_id"]
    assert slurm_of(resumes)["restart_count"] == 1
    out = sem("status", str(store))
    assert "TIMEOUT" in out.stdout and "COMPLETED" in out.stdout


STUBBORN_MODEL = """
import signal
import time
from sem_core import Experiment

ex = Experiment(__file__)

@ex.configs
def get_config():
    return [{"name": "stubborn"}]

def terminated(signum, frame):
    raise RuntimeError("terminated by SIGTERM")

@ex.automain
def main(config):
    # a framework that takes the signals over: no checkpoint, no requeue
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, terminated)
    time.sleep(600)
"""


def test_a_job_killed_at_its_time_limit_ends_timeout_with_its_own_trace(cluster, write_model):
    """Slurm's real time limit: SIGTERM at the limit, SIGKILL KillWait later. The run fails on
    its way out (its handler raises); Slurm's TIMEOUT is the verdict and the trace stays. A
    2-minute limit leaves the job ample time to start under load; slurmctld enforces limits in
    a periodic pass, so the kill comes up to a minute late."""
    model = write_model(STUBBORN_MODEL, "m_stubborn.py")
    store = model.parent / "runs"
    proc = run_model(
        model,
        "hydra/launcher=slurm",
        "hydra.launcher.timeout_min=2",
        "hydra.launcher.signal_delay_s=30",
        "hydra.launcher.max_requeue=1",
        "hydra.launcher.poll_interval_s=0.5",
        timeout=420,
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = [r["run"] for r in load_store(store)]
    assert run["status"] == "TIMEOUT", "".join(run.get("fail_trace") or []) + slurm_logs(model.parent)
    assert "RuntimeError: terminated by SIGTERM" in "".join(run["fail_trace"])
    assert slurm_of(run)["restart_count"] == 0
    states = final_sacct_states([slurm_of(run)["job_id"]], 1)
    assert set(states.values()) == {"TIMEOUT"}


SHIM = """#!/bin/bash
# Stands in for singularity, which cannot be installed on Debian bookworm: records how it was
# called, then runs the command that follows the image (no container).
echo "$@" >> "$SEM_SHIM_LOG"
shift                                  # exec
while [[ "$1" == --* ]]; do if [[ "$1" == --bind ]]; then shift 2; else shift; fi; done
shift                                  # IMAGE
exec "$@"
"""


def test_container_option_wraps_the_job_python_in_the_configured_exec_command(cluster, rows_model, tmp_path):
    """The job script calls `<binary> exec [flags] [--bind ...] IMAGE python`; a shim named
    singularity (see SHIM) checks the exact words Slurm ran and lets the job proceed."""
    model = rows_model()
    shim_dir = tmp_path / "bin"
    shim_dir.mkdir()
    (shim_dir / "singularity").write_text(SHIM)
    (shim_dir / "singularity").chmod(0o755)
    image = model.parent.parent / "env.sif"
    image.write_bytes(b"not a real image")
    log = tmp_path / "shim.log"
    proc = run_model(
        model,
        *LAUNCH,
        "hydra.launcher.container=env.sif",
        "hydra.launcher.container_binary=singularity",
        "hydra.launcher.container_binds=[/data:/data:ro]",
        "hydra.launcher.container_flags=[--cleanenv]",
        f"hydra.launcher.python={sys.executable}",
        env={"SEM_TEST_ROWS": "2", "PATH": f"{shim_dir}:{os.environ['PATH']}", "SEM_SHIM_LOG": str(log)},
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    calls = log.read_text().splitlines()
    assert len(calls) == 2  # one per array task
    # experiment_dir-relative image resolved to an absolute path; no --nv without GPUs
    expected = f"exec --cleanenv --bind /data:/data:ro {image} {sys.executable} -u -c {ARRAY_TASK_CODE} "
    assert all(call.startswith(expected) for call in calls), calls
    assert {r["run"]["status"] for r in load_store(model.parent / "runs")} == {"COMPLETED"}


@pytest.mark.skipif(
    not (shutil.which("apptainer") or shutil.which("singularity")) or not os.environ.get("SEM_TEST_SIF"),
    reason="needs apptainer or singularity on PATH and an image with sem installed in SEM_TEST_SIF "
    "(neither binary installs on Debian bookworm: see README, Running on Slurm)",
)
def test_sweep_runs_inside_a_real_container_image(cluster, rows_model):
    model = rows_model()
    proc = run_model(
        model,
        *LAUNCH,
        f"hydra.launcher.container={os.environ['SEM_TEST_SIF']}",
        env={"SEM_TEST_ROWS": "2"},
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert {r["run"]["status"] for r in load_store(model.parent / "runs")} == {"COMPLETED"}
