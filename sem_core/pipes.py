"""A closed stdout (``python m.py | head``, ``sem ls | head``) never stops sem.

Python ignores SIGPIPE, so a write to a pipe whose reader is gone raises BrokenPipeError. As
Python's documentation ("Note on SIGPIPE") advises, sem then points file descriptor 1 at
/dev/null: every later write, Hydra's log lines, the sweep summary and the interpreter's own
flush at exit, goes nowhere instead of raising again. The jobs still run and are recorded; their
output still reaches cout.txt through the output copier.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO


def stdout_to_devnull() -> None:
    """Point file descriptor 1 at /dev/null (the reader of stdout went away)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ else 1)
    finally:
        os.close(devnull)


class _GuardedStdout:
    """``sys.stdout`` whose write and flush survive a closed pipe (everything else is the stream's)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            stdout_to_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            stdout_to_devnull()
            self._stream.flush()  # what was buffered now goes to /dev/null

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_stdout() -> None:
    """Make ``sys.stdout`` survive a closed pipe for the rest of this process (and its forks).
    Call it before Hydra configures logging: its handlers keep the stream they were given."""
    if sys.stdout is not None and not isinstance(sys.stdout, _GuardedStdout):
        sys.stdout = _GuardedStdout(sys.stdout)
