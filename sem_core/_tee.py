"""Copies a job's output pipes to the terminal and to the run's output file, in a process of its own.

Run by ``sem_core.stdio.FdCapture`` in a process forked from the job (``copy``), or where fork
is missing as ``python -I -S _tee.py OUT_FILE R1 LIVE1 [R2 LIVE2 ...]`` (plain ``os`` calls
only, no sem import). Because the copy
happens outside the job's process, what the job wrote right before dying (a native message
before ``abort()``, faulthandler's trace of a segfault, a CUDA assert) is still read from the
pipes after its death, reaches the terminal and is kept in OUT_FILE.

- ``LIVE`` is the descriptor the pipe's bytes are shown on (the terminal), or -1. A live side
  that goes away (``python m.py | head``) stops being written; the file still gets everything.
- A full disk: bytes wait in memory (at most ``MAX_PENDING`` bytes; beyond that the oldest are
  dropped and the count is written into the file once space returns, never silently) and the
  write is retried every ``RETRY_S`` seconds, and for ``GIVE_UP_S`` seconds after the job closed
  its pipes.
- Signals meant for the job (Ctrl-C to the process group, ``kill``) are ignored: the copy ends
  when every writer has closed its end of the pipes.

Exit status: 0 when every byte reached OUT_FILE, 3 when some could not be written (the last
line on stderr says how many).
"""

import errno
import os
import select
import signal
import sys
import time

RETRY_S = 0.5
GIVE_UP_S = 30.0
MAX_PENDING = 64 << 20
CHUNK = 65536
LOST_EXIT = 3


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except InterruptedError:
            continue


class OutputFile:
    """OUT_FILE, appended to; bytes it cannot take yet wait in ``pending``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1
        self.pending = bytearray()
        self.lost = 0  # dropped while the disk was full, not yet reported in the file
        self.lost_total = 0

    def add(self, chunk: bytes) -> None:
        self.pending += chunk
        excess = len(self.pending) - MAX_PENDING
        if excess > 0:
            del self.pending[:excess]
            self.lost += excess
            self.lost_total += excess

    def flush(self) -> bool:
        """Write what is pending; False while the disk refuses it."""
        try:
            if self.fd < 0:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            if self.lost:
                note = f"\n[sem: {self.lost} bytes of output were lost here: the disk was full]\n".encode()
                _write_all(self.fd, note)
                self.lost = 0
            while self.pending:
                written = os.write(self.fd, self.pending)
                del self.pending[:written]
        except InterruptedError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN, errno.ENOENT):
                raise
            return False
        return True


def ignore_stop_signals() -> None:
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGPIPE", "SIGUSR1", "SIGUSR2"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


def copy(path: str, live: dict) -> int:
    """Copy every pipe of ``live`` (read end -> live descriptor or -1) to its live descriptor
    and to ``path`` until all of them are closed; return the exit status (see above)."""
    out = OutputFile(path)
    live = dict(live)
    poller = select.poll()
    for fd in live:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    open_fds = set(live)
    while open_fds:
        timeout_ms = int(RETRY_S * 1000) if out.pending or out.lost else None
        try:
            events = poller.poll(timeout_ms)
        except InterruptedError:
            continue
        for fd, _ in events:
            try:
                chunk = os.read(fd, CHUNK)
            except InterruptedError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                poller.unregister(fd)
                open_fds.discard(fd)
                os.close(fd)
                continue
            target = live[fd]
            if target >= 0:
                try:
                    _write_all(target, chunk)
                except OSError:
                    live[fd] = -1  # the terminal or pipe reader is gone; keep recording
            out.add(chunk)
        out.flush()
    deadline = time.monotonic() + GIVE_UP_S
    while not out.flush() and time.monotonic() < deadline:
        time.sleep(RETRY_S)
    unwritten = len(out.pending) + out.lost_total
    if unwritten:
        try:
            note = f"sem: {unwritten} bytes of output could not be written to {out.path}: the disk stayed full\n"
            os.write(2, note.encode())
        except OSError:
            pass
        return LOST_EXIT
    return 0


def main(argv: list) -> int:
    ignore_stop_signals()
    return copy(argv[1], {int(argv[i]): int(argv[i + 1]) for i in range(2, len(argv) - 1, 2)})


if __name__ == "__main__":
    sys.exit(main(sys.argv))
