"""Output capture (sem.capture): everything written reaches the run once, and stays live."""

import os
import subprocess
import sys
import time
from pathlib import Path

from sem_core.stdio import FdCapture, SysCapture


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


def test_output_written_right_before_a_hard_crash_is_kept(tmp_path):
    """The copy runs outside the job's process: bytes still in the pipe when the job dies
    (abort(), a segfault) reach the file and the terminal."""
    out = tmp_path / "cout.txt"
    script = f"""
import ctypes, faulthandler, os, sys
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
from sem_core.stdio import FdCapture
cap = FdCapture({str(out)!r})
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
