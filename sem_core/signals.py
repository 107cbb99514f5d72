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
from typing import Iterator

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
    previous = {}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        previous.clear()

    def hold(received: int, frame) -> None:
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
