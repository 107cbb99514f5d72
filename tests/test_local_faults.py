"""The local launcher (``hydra/launcher=local``, n_jobs > 1) under faults: a job that kills its
own process, Ctrl-C, ``kill``, ``kill -9`` of the sweep process. Real processes, real signals.

Deadlines below only guard against hangs (a loaded 2-core machine is slow); nothing is timed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import load_store, run_model

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and /proc: Linux")

HANG_GUARD_S = 120.0
LOCAL = ("hydra/launcher=local", "hydra.launcher.n_jobs=2")

# Each row does what BEHAVIOUR says (default: a short job returning its row index).
MODEL = """
import ctypes, json, os, sys, time
from pathlib import Path
from sem_core import Experiment
ex = Experiment(__file__)
HERE = Path(__file__).parent
BEHAVIOUR = {behaviour!r}

@ex.configs
def c():
    return [{{"i": i}} for i in range({rows})]

def wait_for(test, what):
    deadline = time.time() + 120
    while not test():
        if time.time() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)

def mark(name):
    (HERE / "marks").mkdir(exist_ok=True)
    (HERE / "marks" / name).touch()

@ex.automain
def main(config):
    i = config["i"]
    what = BEHAVIOUR.get(i, "ok")
    print(f"row {{i}} says hello", flush=True)
    if what == "exit":
        # the line must be in cout.txt before the process ends: a copy still in flight when
        # the process dies is the capture's business, not the launcher's
        cout = HERE / "runs" / config["global_id"] / "cout.txt"
        wait_for(lambda: cout.exists() and "says hello" in cout.read_text(), "own output in cout.txt")
        os._exit(3)
    if what == "segv":
        ctypes.string_at(0)
    if what == "abort":
        os.abort()
    if what == "wait_failed":  # still running when another row's process dies
        def failed():
            runs = [json.loads(p.read_text()) for p in (HERE / "runs").glob("*/run.json")]
            return any(r["status"] == "FAILED" for r in runs)
        wait_for(failed, "a FAILED record")
    if what == "sleep":
        mark(f"started-{{i}}")
        time.sleep(600)
    if what == "stubborn":  # ignores the first Ctrl-C
        mark(f"started-{{i}}")
        try:
            time.sleep(600)
        except KeyboardInterrupt:
            mark(f"interrupted-{{i}}")
            time.sleep(600)
    time.sleep(0.2)
    return i
"""


def _model(write_model, rows: int, behaviour: dict) -> Path:
    return write_model(MODEL.format(rows=rows, behaviour=behaviour))


def _trace(run: dict) -> str:
    return "".join(run.get("fail_trace") or [])


def _by_row(model: Path) -> dict:
    return {r["config"]["i"]: r for r in load_store(model.parent / "runs")}


def _poll(test: Callable[[], bool], what: str, timeout: float = HANG_GUARD_S) -> None:
    deadline = time.monotonic() + timeout
    while not test():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _alive_in_group(pgid: int) -> list[int]:
    """Processes of the group that are not zombies (an exited process its new parent has not
    reaped yet is not running anything)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state not in ("Z", "X"):
            alive.append(int(entry.name))
    return alive


def _start_sweep(model: Path, out: Path) -> subprocess.Popen:
    """The sweep in a process group of its own, as a shell starts a foreground command."""
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    with open(out, "w") as fh:
        return subprocess.Popen(
            [sys.executable, str(model), *LOCAL],
            cwd=str(model.parent),
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # a terminal's foreground job gets Ctrl-C even when pytest runs in the background
            # (where a non-interactive shell starts commands with SIGINT ignored)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def _wait_for_marks(model: Path, *names: str) -> None:
    marks = model.parent / "marks"
    _poll(lambda: all((marks / n).exists() for n in names), f"marks {names}")


def _wait_gone(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=HANG_GUARD_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    _poll(lambda: not _alive_in_group(proc.pid), "every process of the sweep's group to end")


@pytest.fixture
def sweep_group():
    """Kills what a failed test leaves behind (the group of each sweep it started)."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if _alive_in_group(proc.pid):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# -- a job that ends its own process -------------------------------------------------------
def test_a_job_that_exits_its_process_fails_alone(write_model):
    model = _model(write_model, rows=6, behaviour={2: "exit"})
    proc = run_model(model, *LOCAL, timeout=HANG_GUARD_S * 3)
    assert proc.returncode != 0
    runs = _by_row(model)
    assert sorted(runs) == list(range(6))  # every row ran: the dead one did not stop the others
    dead = runs.pop(2)["run"]
    assert dead["status"] == "FAILED"
    assert "exit code 3" in _trace(dead)
    assert "row 2 says hello" in _trace(dead)  # the tail of its output
    assert dead["stop_time"]
    assert all(r["run"]["status"] == "COMPLETED" for r in runs.values())
    assert sorted(r["run"]["result"] for r in runs.values()) == [0, 1, 3, 4, 5]
    assert "5 of 6 jobs completed, 1 not completed" in proc.stdout
    assert "exit code 3" in proc.stdout  # the summary's error column


@pytest.mark.parametrize("how, signame", [("segv", "SIGSEGV"), ("abort", "SIGABRT")])
def test_a_job_killed_by_a_signal_is_recorded_killed(write_model, how, signame):
    model = _model(write_model, rows=4, behaviour={1: how})
    proc = run_model(model, *LOCAL, timeout=HANG_GUARD_S * 3)
    assert proc.returncode != 0
    runs = _by_row(model)
    assert sorted(runs) == list(range(4))
    dead = runs.pop(1)["run"]
    assert dead["status"] == "KILLED"
    assert signame in _trace(dead)
    assert all(r["run"]["status"] == "COMPLETED" for r in runs.values())
    assert "3 of 4 jobs completed, 1 not completed" in proc.stdout


def test_a_job_that_dies_before_its_record_exists_is_still_counted(write_model):
    # Hydra resolves hydra.job.env_set before sem's callback starts the record
    model = write_model(
        """
import os
from omegaconf import OmegaConf
from sem_core import Experiment
ex = Experiment(__file__)
OmegaConf.register_new_resolver("die", lambda: os._exit(7))
@ex.configs
def c():
    return [{"i": i} for i in range(3)]
@ex.automain
def main(config):
    return config["i"]
"""
    )
    proc = run_model(model, *LOCAL, "+hydra.job.env_set.DIE=${die:}", timeout=HANG_GUARD_S * 3)
    assert proc.returncode != 0
    store = model.parent / "runs"
    assert not (store.exists() and load_store(store))
    assert proc.stdout.count("NO RECORD") == 3
    assert "exit code 7" in proc.stdout
    assert "0 of 3 jobs completed, 3 not completed" in proc.stdout


def test_fail_fast_counts_a_dead_job_as_failed(write_model):
    # row 0 dies while row 1 runs; rows 2 and 3 never start
    model = _model(write_model, rows=4, behaviour={0: "exit", 1: "wait_failed"})
    proc = run_model(model, *LOCAL, "hydra.launcher.fail_fast=true", timeout=HANG_GUARD_S * 3)
    assert proc.returncode != 0
    runs = _by_row(model)
    assert {i: r["run"]["status"] for i, r in runs.items()} == {0: "FAILED", 1: "COMPLETED"}
    assert "fail_fast" in proc.stderr + proc.stdout
    assert proc.stdout.count("NOT RUN") == 2


# -- stopping the sweep ----------------------------------------------------------------------
def _assert_interrupted_sweep(model: Path, out: Path, running: tuple[int, ...], rows: int) -> None:
    runs = _by_row(model)
    assert sorted(runs) == sorted(running)  # queued rows never started: no record
    assert all(r["run"]["status"] == "INTERRUPTED" for r in runs.values()), [r["run"]["status"] for r in runs.values()]
    text = out.read_text()
    assert f"0 of {rows} jobs completed" in text
    assert text.count("NOT RUN") == rows - len(running)


@pytest.mark.parametrize(
    "signum, to_group, exit_code",
    [(signal.SIGINT, True, 130), (signal.SIGTERM, False, 143)],
    ids=["ctrl-c", "kill-term-parent"],
)
def test_a_stop_signal_interrupts_running_jobs_and_starts_no_more(
    write_model, tmp_path, sweep_group, signum, to_group, exit_code
):
    model = _model(write_model, rows=6, behaviour=dict.fromkeys(range(6), "sleep"))
    out = tmp_path / "out.txt"
    proc = _start_sweep(model, out)
    sweep_group.append(proc)
    _wait_for_marks(model, "started-0", "started-1")
    if to_group:  # Ctrl-C: the terminal signals the whole foreground group
        os.killpg(proc.pid, signum)
    else:  # kill PID: only the sweep process; it passes the stop on
        os.kill(proc.pid, signum)
    _wait_gone(proc)
    assert proc.returncode == exit_code, out.read_text()
    _assert_interrupted_sweep(model, out, running=(0, 1), rows=6)
    assert "0 of 6 jobs completed, 6 not completed" in out.read_text()  # the summary saw them end


def test_a_second_ctrl_c_exits_at_once(write_model, tmp_path, sweep_group):
    # row 0 ignores the first Ctrl-C, so the sweep would wait for it
    model = _model(write_model, rows=4, behaviour={0: "stubborn", 1: "sleep", 2: "sleep", 3: "sleep"})
    out = tmp_path / "out.txt"
    proc = _start_sweep(model, out)
    sweep_group.append(proc)
    _wait_for_marks(model, "started-0", "started-1")
    os.killpg(proc.pid, signal.SIGINT)
    _wait_for_marks(model, "interrupted-0")
    runs = model.parent / "runs"
    _poll(
        lambda: sum(json.loads(p.read_text())["status"] == "INTERRUPTED" for p in runs.glob("*/run.json")) == 1,
        "row 1 INTERRUPTED",
    )
    assert proc.poll() is None  # still waiting for row 0
    os.killpg(proc.pid, signal.SIGINT)
    _wait_gone(proc)
    assert proc.returncode == 130, out.read_text()
    _assert_interrupted_sweep(model, out, running=(0, 1), rows=4)


def test_jobs_stop_when_the_sweep_process_is_killed(write_model, tmp_path, sweep_group):
    model = _model(write_model, rows=6, behaviour=dict.fromkeys(range(6), "sleep"))
    out = tmp_path / "out.txt"
    proc = _start_sweep(model, out)
    sweep_group.append(proc)
    _wait_for_marks(model, "started-0", "started-1")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=HANG_GUARD_S)
    _poll(lambda: not _alive_in_group(proc.pid), "the jobs to end after their sweep process")
    runs = _by_row(model)
    assert sorted(runs) == [0, 1]
    assert all(r["run"]["status"] == "INTERRUPTED" for r in runs.values()), [r["run"]["status"] for r in runs.values()]


# -- worker processes ------------------------------------------------------------------------
def _pids(model: Path) -> dict[int, int]:
    return {i: r["run"]["meta"]["sem"]["process"]["pid"] for i, r in _by_row(model).items()}


@pytest.mark.parametrize(
    "extra, processes",
    [((), 2), (("hydra.launcher.max_jobs_per_worker=1",), 6)],
    ids=["workers-run-several-jobs", "a-process-per-job"],
)
def test_jobs_run_in_n_jobs_worker_processes(write_model, extra, processes):
    model = _model(write_model, rows=6, behaviour={})
    proc = run_model(model, *LOCAL, *extra, timeout=HANG_GUARD_S * 3)
    assert proc.returncode == 0, proc.stderr
    pids = _pids(model)
    assert sorted(pids) == list(range(6))
    assert len(set(pids.values())) == processes


def test_dead_workers_are_replaced(write_model):
    # rows 0 and 1 go to the first two workers and end them both: the other rows run in new ones
    model = _model(write_model, rows=6, behaviour={0: "exit", 1: "segv"})
    proc = run_model(model, *LOCAL, timeout=HANG_GUARD_S * 3)
    assert proc.returncode != 0
    runs = _by_row(model)
    assert {i: r["run"]["status"] for i, r in runs.items()} == {
        0: "FAILED",
        1: "KILLED",
        2: "COMPLETED",
        3: "COMPLETED",
        4: "COMPLETED",
        5: "COMPLETED",
    }
    assert "SIGSEGV" in _trace(runs[1]["run"])
    pids = _pids(model)
    later = {pids[i] for i in range(2, 6)}
    assert pids[0] != pids[1] and not later & {pids[0], pids[1]}
    assert len(later) <= 2  # never more than n_jobs workers
    assert "4 of 6 jobs completed, 2 not completed" in proc.stdout
