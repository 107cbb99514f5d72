"""Output capture (sem.capture): everything written reaches the run once, and stays live."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sem_core.stdio import FdCapture, OutputCopier, SysCapture


def test_fd_capture_records_python_c_level_and_child_output_once(tmp_path):
    out = tmp_path / "cout.txt"
    cap = FdCapture(out)
    cap.start()
    print("python line")
    sys.stdout.flush()
    os.write(1, b"fd line\n")
    os.write(2, "é split ".encode()[:1])  # half a UTF-8 character, completed by the next write
    os.write(2, "é split ".encode()[1:] + b"\n")
    subprocess.run([sys.executable, "-c", "print('child line')"], check=True)
    cap.stop()
    text = out.read_text()
    for line in ("python line", "fd line", "é split", "child line"):
        assert text.count(line) == 1, (line, text)
    assert cap.take() == text  # what the run hands to observers other than the file's own
    # the descriptors are back: writing after stop is not captured
    os.write(1, b"after\n")
    assert "after" not in out.read_text() and cap.problem is None


@pytest.mark.parametrize("copier", ["OutputCopier()", "None"])
def test_output_written_right_before_a_hard_crash_is_kept(tmp_path, copier):
    """The copy runs outside the job's process: bytes still in the pipe when the job dies
    (abort(), a segfault) reach the file and the terminal, with the process's copier of
    every job as with a copier of its own."""
    out = tmp_path / "cout.txt"
    script = f"""
import ctypes, faulthandler, os, sys
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
from sem_core.stdio import FdCapture, OutputCopier
previous = FdCapture({str(out)!r} + ".before", {copier})
previous.start(); print("an earlier job"); previous.stop()
cap = FdCapture({str(out)!r}, previous._service)
cap.start()
faulthandler.enable()
os.write(2, b"native message before abort\\n")
print("python line, never flushed by Python", end="")
sys.stdout.flush()
ctypes.string_at(0)  # segfault
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -11
    deadline = time.monotonic() + 30
    while "Fatal Python error" not in out.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)  # the copier drains the pipes after the crash
    text = out.read_text()
    assert "native message before abort" in text and "python line" in text
    assert "Fatal Python error: Segmentation fault" in text  # faulthandler's trace
    assert "native message before abort" in proc.stderr  # and on the terminal


def test_sys_capture_restores_the_streams():
    got = []
    before = sys.stdout, sys.stderr
    cap = SysCapture(got.append)
    cap.start()
    print("hi")
    print("err", file=sys.stderr)
    cap.stop()
    assert (sys.stdout, sys.stderr) == before
    assert "".join(got) == "hi\nerr\n"


def _copier_pids() -> set[int]:
    """The children of this process (the copier processes it forked)."""
    path = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    return {int(pid) for pid in path.read_text().split()}


def test_one_copier_serves_every_job_of_a_process(tmp_path):
    """Jobs run one after another in a process share one copier; each job's output reaches
    its own file once, live descriptors are back after each job, and a process forked from
    this one (a launcher's worker) copies through a copier of its own."""
    before = _copier_pids()
    copier = OutputCopier()
    for job in range(3):
        cap = FdCapture(tmp_path / f"cout{job}.txt", copier)
        cap.start()
        print(f"python line of job {job}")
        os.write(2, f"fd line of job {job}\n".encode())
        subprocess.run([sys.executable, "-c", f"print('child line of job {job}')"], check=True)
        cap.stop()
        assert cap.problem is None
        if job == 0:
            copiers = _copier_pids() - before
            assert len(copiers) == 1
    assert _copier_pids() - before == copiers  # the same process copied all three
    for job in range(3):
        text = (tmp_path / f"cout{job}.txt").read_text()
        for line in (f"python line of job {job}", f"fd line of job {job}", f"child line of job {job}"):
            assert text.count(line) == 1, (line, text)
        assert "job" not in text.replace(f"job {job}", "")  # nothing of another job
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # a worker forked after the copier started
        code = 1
        try:
            os.close(read_end)
            cap = FdCapture(tmp_path / "worker.txt", copier)
            cap.start()
            print("worker line")
            cap.stop()
            os.write(write_end, " ".join(map(str, _copier_pids())).encode())
            code = 0 if cap.problem is None else 2
        finally:
            os._exit(code)
    os.close(write_end)
    worker_copiers = {int(p) for p in os.read(read_end, 1000).split()}
    os.close(read_end)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert (tmp_path / "worker.txt").read_text().count("worker line") == 1
    assert len(worker_copiers) == 1 and not worker_copiers & copiers
    copier.close()
    assert not _copier_pids() - before  # ended and reaped


def test_the_copier_runs_none_of_the_signal_handlers_of_the_jobs_process(tmp_path):
    """Under Slurm, submitit's Python handler for SIGCONT was inherited by the copier and ran
    in its loop (its logging crashed the copier). The copier keeps no Python handler of the
    process it was forked from: a signal sent to it runs none, and it copies on."""
    import signal

    handled = tmp_path / "handled"

    def note(signum, frame):
        with open(handled, "a") as fh:
            fh.write(f"{os.getpid()}\n")

    before = _copier_pids()
    saved = signal.signal(signal.SIGCONT, note)
    copier = OutputCopier()
    try:
        cap = FdCapture(tmp_path / "cout.txt", copier)
        cap.start()
        (copier_pid,) = _copier_pids() - before
        os.kill(copier_pid, signal.SIGCONT)
        time.sleep(0.2)  # the copier's loop has seen the signal
        print("after the signal")
        cap.stop()
    finally:
        signal.signal(signal.SIGCONT, saved)
        copier.close()
    assert cap.problem is None
    assert (tmp_path / "cout.txt").read_text().count("after the signal") == 1
    assert not handled.exists() or str(copier_pid) not in handled.read_text().split()
