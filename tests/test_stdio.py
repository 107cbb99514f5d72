"""Output capture (sem.capture): everything written reaches the run once, and stays live."""

import os
import subprocess
import sys

from sem_core.stdio import FdCapture, SysCapture


def test_fd_capture_records_python_c_level_and_child_output_once():
    got = []
    cap = FdCapture(got.append)
    cap.start()
    print("python line")
    sys.stdout.flush()
    os.write(1, b"fd line\n")
    os.write(2, "é split ".encode()[:1])  # half a UTF-8 character, completed by the next write
    os.write(2, "é split ".encode()[1:] + b"\n")
    subprocess.run([sys.executable, "-c", "print('child line')"], check=True)
    cap.stop()
    text = "".join(got)
    for line in ("python line", "fd line", "é split", "child line"):
        assert text.count(line) == 1, (line, text)
    # the descriptors are back: writing after stop is not captured
    os.write(1, b"after\n")
    assert "after" not in "".join(got)


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
