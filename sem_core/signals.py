"""Holding signals back while a run's final record is written.

A second Ctrl-C, or the SIGTERM srun sends twice when Slurm stops a job, raises wherever the
main thread happens to be - in the middle of the write that records how the run ended, if
nothing stops it. ``signals_held`` swaps the Python handlers for one that only notes the
signal, and hands every noted signal to the original handler once the body is done. Ctrl-C
pressed twice while held stops at once: the body may be waiting on something stuck.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

HELD = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2") if hasattr(signal, name)
)


@contextlib.contextmanager
def signals_held(signums: tuple = HELD) -> Iterator[None]:
    """Run the body with ``signums`` held back, then deliver those that arrived, once each,
    in arrival order. Outside the main thread (where Python runs no signal handler) it does
    nothing; a signal whose handler Python did not install is left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous: dict[int, Any] = {}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        previous.clear()

    def hold(received: int, frame: FrameType | None) -> None:
        if received == signal.SIGINT and signal.SIGINT in arrived:
            restore()  # Ctrl-C pressed twice while held: the user means it, stop now
            raise KeyboardInterrupt
        arrived.append(received)

    for signum in signums:
        handler = signal.getsignal(signum)
        if handler is None:  # installed outside Python: cannot be put back, so not touched
            continue
        previous[signum] = handler
        signal.signal(signum, hold)
    try:
        yield
    finally:
        restore()
        for signum in dict.fromkeys(arrived):
            signal.raise_signal(signum)


class Interrupted(KeyboardInterrupt):
    """The run or sweep was asked to stop by a signal (Ctrl-C, ``kill``, ``timeout``,
    ``docker stop``). A KeyboardInterrupt, so every ``except KeyboardInterrupt`` that
    ends a run as INTERRUPTED handles SIGTERM the same way; ``exit_code`` is the shell's
    ``128 + signal number`` (130 for Ctrl-C, 143 for SIGTERM)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def interrupt_exit_code(exc: BaseException) -> int:
    """The exit code of a process stopped by ``exc`` (a KeyboardInterrupt: 130 unless an
    ``Interrupted`` names another signal)."""
    return exc.exit_code if isinstance(exc, Interrupted) else 128 + signal.SIGINT


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def stop_signals_interrupt(signums: tuple = STOP_SIGNALS) -> Iterator[None]:
    """SIGTERM and SIGHUP raise ``Interrupted`` in the main thread, as Ctrl-C raises
    KeyboardInterrupt, so that a sweep stopped by ``kill`` ends its runs INTERRUPTED and
    prints its summary instead of dying with them RUNNING. Handlers the user installed
    (not Python's default) are left alone. Outside the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}

    def stop(received: int, frame: FrameType | None) -> None:
        raise Interrupted(received)

    for signum in signums:
        if signal.getsignal(signum) is signal.SIG_DFL:
            previous[signum] = signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
