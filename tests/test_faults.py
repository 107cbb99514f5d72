"""Faults a run must survive with its record whole: a disk full for a moment, values that cannot
be written, ``sys.exit`` in ``main``, SIGTERM and Ctrl-C on a sweep, a hard crash.

Real processes, real signals and a real small tmpfs (mounting needs root: the test that fills
a disk is skipped with the reason where ``mount`` is refused). Nothing is mocked. The local
launcher's faults (a worker that dies, Ctrl-C on a parallel sweep, the parent killed) are in
``test_local_faults.py``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import load_store, run_model

HANG_GUARD_S = 120  # only against a hang; never a measure of speed


def wait_for(predicate, what: str, timeout: float = HANG_GUARD_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def runs_by_order(store: Path) -> dict:
    return {r["config"]["order_id"]: r for r in load_store(store)} if store.exists() else {}


def sem(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sem_core.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=HANG_GUARD_S
    )


# -- a disk full for a moment ---------------------------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    mount_point = tmp_path / "small_disk"
    mount_point.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode}): needs root")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; return the filler file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (65536, 512, 1):  # to the last byte
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler


LOGGING_MODEL = """
import os, time
from pathlib import Path
from sem_core import Experiment
ex = Experiment(__file__)
@ex.configs
def c():
    return [{"x": 1}]
@ex.automain
def main(config):
    stop = Path(os.environ["STOP_FILE"])
    i = 0
    while not stop.exists():
        ex.log_scalar("x", i)
        print(f"line {i}", flush=True)
        i += 1
        time.sleep(0.005)
    return i
"""


def test_a_disk_full_for_a_moment_loses_no_metric_point_and_no_line(write_model, small_tmpfs, tmp_path):
    model = write_model(LOGGING_MODEL)
    stop = tmp_path / "stop"
    store = small_tmpfs / "runs"
    proc = subprocess.Popen(
        [sys.executable, str(model), f"sem.storage={store}", "sem.heartbeat_interval=0.2"],
        cwd=model.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, STOP_FILE=str(stop)),
    )
    try:
        wait_for(lambda: any((d / "metrics.jsonl").exists() for d in store.glob("*")), "the first flush")
        filler = fill(small_tmpfs)
        time.sleep(2.0)  # several heartbeats meet the full disk while the run keeps logging
        filler.unlink()
        time.sleep(1.0)
        stop.touch()
        out, err = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "its data is kept and retried" in err  # the fault really happened
    (run,) = load_store(store)
    assert run["run"]["status"] == "COMPLETED"
    count = run["run"]["result"]
    metrics = json.loads((run["dir"] / "metrics.json").read_text())
    assert metrics["x"]["values"] == list(range(count))
    assert metrics["x"]["steps"] == list(range(count))
    # stdout and stderr are two pipes: sem's own stderr notes may sit between two stdout lines
    numbers = [int(n) for n in re.findall(r"line (\d+)\n", (run["dir"] / "cout.txt").read_text())]
    assert numbers == list(range(count))


def test_a_job_that_starts_on_a_full_disk_waits_for_space_and_runs(write_model, small_tmpfs, tmp_path):
    model = write_model(LOGGING_MODEL)
    stop = tmp_path / "stop"
    stop.touch()  # main returns at once
    store = small_tmpfs / "runs"
    store.mkdir()
    filler = fill(small_tmpfs)
    err_file = tmp_path / "stderr.txt"
    with open(err_file, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(model), f"sem.storage={store}"],
            cwd=model.parent,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=dict(os.environ, STOP_FILE=str(stop)),
        )
        try:
            wait_for(
                lambda: "waiting for space to start its record" in err_file.read_text(), "the job to meet the full disk"
            )
            filler.unlink()
            out, _ = proc.communicate(timeout=HANG_GUARD_S)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err_file.read_text()
    (run,) = load_store(store)
    assert run["run"]["status"] == "COMPLETED" and run["run"]["result"] == 0
    assert "1 of 1 jobs completed" in out


# -- values that cannot be written ----------------------------------------------------------


def test_an_info_value_that_cannot_be_written_fails_the_run_naming_the_key(write_model):
    model = write_model(
        """
from sem_core import Experiment
ex = Experiment(__file__)
@ex.configs
def c():
    return [{"x": 1}]
@ex.automain
def main(config):
    ex.info["fine"] = {"a": 1}
    ex.info["mixed"] = {1: "one", "two": 2}
    loop = []
    loop.append(loop)
    ex.info["loop"] = loop
    ex.log_scalar("loss", 0.5)
    return 1
"""
    )
    proc = run_model(model, "sem.heartbeat_interval=0.1")
    assert proc.returncode != 0
    (run,) = load_store(model.parent / "runs")
    assert run["run"]["status"] == "FAILED"
    trace = "".join(run["run"]["fail_trace"])
    assert "ex.info['mixed']" in trace and "ex.info['loop']" in trace
    info = json.loads((run["dir"] / "info.json").read_text())
    assert info == {"fine": {"a": 1}}  # what could be written was
    assert json.loads((run["dir"] / "metrics.json").read_text())["loss"]["values"] == [0.5]


def test_a_metric_name_that_is_not_a_string_is_refused_where_it_is_logged(write_model):
    model = write_model(
        """
from sem_core import Experiment
ex = Experiment(__file__)
@ex.configs
def c():
    return [{"x": 1}]
@ex.automain
def main(config):
    ex.log_scalar("5", 1.0)
    ex.log_scalar(5, 2.0)
"""
    )
    proc = run_model(model)
    assert proc.returncode != 0
    (run,) = load_store(model.parent / "runs")
    assert run["run"]["status"] == "FAILED"
    trace = "".join(run["run"]["fail_trace"])
    assert "metric name must be a str, got int 5" in trace and "ex.log_scalar(5, 2.0)" in trace
    assert json.loads((run["dir"] / "metrics.json").read_text())["5"]["values"] == [1.0]


# -- sys.exit in main -----------------------------------------------------------------------


def test_sys_exit_in_main_ends_that_job_with_a_record_and_the_sweep_goes_on(write_model):
    model = write_model(
        """
import argparse, sys
from sem_core import Experiment
ex = Experiment(__file__)
@ex.configs
def c():
    return [{"code": 0}, {"code": 3}, {"code": None}, {"code": "argparse"}, {"code": 0}]
@ex.automain
def main(config):
    print("before exit", config["code"], flush=True)
    if config["code"] == "argparse":
        argparse.ArgumentParser().parse_args(["--no-such-flag"])
    sys.exit(config["code"])
"""
    )
    proc = run_model(model)
    assert proc.returncode == 1
    runs = runs_by_order(model.parent / "runs")
    status = {k: r["run"]["status"] for k, r in runs.items()}
    assert status == {0: "COMPLETED", 1: "FAILED", 2: "COMPLETED", 3: "FAILED", 4: "COMPLETED"}
    assert runs[0]["run"]["result"] is None
    assert "main() called sys.exit(3)" in "".join(runs[1]["run"]["fail_trace"])
    assert "main() called sys.exit(2)" in "".join(runs[3]["run"]["fail_trace"])
    assert "unrecognized arguments: --no-such-flag" in (runs[3]["dir"] / "cout.txt").read_text()
    for k, r in runs.items():
        assert f"before exit {r['config']['code']}" in (r["dir"] / "cout.txt").read_text()
    assert "3 of 5 jobs completed, 2 not completed" in proc.stdout


# -- SIGTERM and Ctrl-C on a sequential sweep -------------------------------------------------

SLOW_ROWS_MODEL = """
import os, time
from pathlib import Path
from sem_core import Experiment
ex = Experiment(__file__)
@ex.configs
def c():
    return [{"row": i} for i in range(4)]
@ex.automain
def main(config):
    if config["row"] == 0:
        return 0
    ex.log_scalar("progress", 1)
    print("working on", config["row"], flush=True)
    Path(os.environ["STARTED_FILE"]).touch()
    time.sleep(600)
"""


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "Ctrl-C"])
def test_a_stopped_sequential_sweep_interrupts_its_run_prints_the_summary_and_starts_nothing(
    write_model, tmp_path, signum, code
):
    model = write_model(SLOW_ROWS_MODEL)
    started = tmp_path / "started"
    proc = subprocess.Popen(
        [sys.executable, str(model), "sem.heartbeat_interval=60"],
        cwd=model.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=dict(os.environ, STARTED_FILE=str(started)),
    )
    try:
        wait_for(started.exists, "row 1 to start")
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signal.SIGINT)  # what the terminal does: the whole process group
        else:
            proc.send_signal(signal.SIGTERM)  # kill, timeout, docker stop: the process only
        out, err = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == code, err
    runs = runs_by_order(model.parent / "runs")
    assert {k: r["run"]["status"] for k, r in runs.items()} == {0: "COMPLETED", 1: "INTERRUPTED"}
    interrupted = runs[1]
    assert "working on 1" in (interrupted["dir"] / "cout.txt").read_text()  # output since the last beat
    metrics = json.loads((interrupted["dir"] / "metrics.json").read_text())
    assert metrics["progress"]["values"] == [1]
    assert "1 of 4 jobs completed, 3 not completed" in out
    assert out.count("NOT RUN") == 2


# -- a hard crash ---------------------------------------------------------------------------


def test_a_run_whose_process_died_shows_killed_at_once_and_status_records_it(write_model):
    model = write_model(
        """
import ctypes, time
from sem_core import Experiment
ex = Experiment(__file__)
@ex.configs
def c():
    return [{"x": 1}]
@ex.automain
def main(config):
    ex.log_scalar("before", 1.0)
    time.sleep(1.0)  # lets a heartbeat record the point
    ctypes.CDLL(None).write(2, b"native message before the crash\\n", 32)
    ctypes.string_at(0)
"""
    )
    proc = run_model(model, "sem.heartbeat_interval=0.2")
    assert proc.returncode == -signal.SIGSEGV
    assert "native message before the crash" in proc.stderr  # reached the terminal after the crash
    (run,) = load_store(model.parent / "runs")
    cout = (run["dir"] / "cout.txt").read_text()
    assert "native message before the crash" in cout
    assert "Fatal Python error: Segmentation fault" in cout and 'm_test.py", line 13 in main' in cout
    assert run["run"]["status"] == "RUNNING"  # nothing could write its end in that process
    experiment = model.parent.parent
    listing = sem("ls", cwd=experiment)
    assert listing.returncode == 0, listing.stderr
    assert "KILLED" in listing.stdout and "RUNNING" not in listing.stdout
    assert json.loads((run["dir"] / "run.json").read_text())["status"] == "RUNNING"  # ls only reads
    status = sem("status", cwd=experiment)
    assert status.returncode == 0, status.stderr
    record = json.loads((run["dir"] / "run.json").read_text())
    assert record["status"] == "KILLED"
    assert record["stop_time"] == record["heartbeat"]  # its duration ends at its last sign of life
    assert "process of this run is gone" in "".join(record["fail_trace"])


# -- the summary ----------------------------------------------------------------------------


def test_an_error_before_recording_began_is_printed_in_full_once_with_no_empty_run_folder(write_model, tmp_path):
    model = write_model(
        """
from sem_core import Experiment
ex = Experiment(__file__)
@ex.configs
def c():
    return [{"x": 1}, {"x": 2}]
@ex.automain
def main(config):
    return 1
"""
    )
    store = tmp_path / ("a-store-that-cannot-be-made-" + "x" * 80)
    store.write_text("a file where the run store's folder should be")
    proc = run_model(model, f"sem.storage={store}")
    assert proc.returncode != 0
    reasons = [l for l in proc.stdout.splitlines() if l.startswith("order_id 0: ")]
    assert len(reasons) == 1 and str(store) in reasons[0]  # not cut to the table's width
    assert "0 of 2 jobs completed, 2 not completed" in proc.stdout
    assert store.is_file()
