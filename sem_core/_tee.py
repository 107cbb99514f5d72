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
import socket
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
    """The copier's signal dispositions. Stop signals are ignored: the copier ends when the
    pipes it copies close. Every other Python handler inherited from the job's process
    (submitit's, the user's) goes back to the default: under Slurm, submitit's handler for
    SIGCONT ran inside the copier's loop and its logging crashed the copier."""
    for signum in signal.valid_signals():
        try:
            if callable(signal.getsignal(signum)):
                signal.signal(signum, signal.SIG_DFL)
        except (OSError, ValueError):  # a signal Python cannot handle
            continue
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGPIPE", "SIGUSR1", "SIGUSR2"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


class Session:
    """One job's pipes: each read end's bytes go to its live descriptor and to the job's output
    file. ``owned``: live descriptors received for this session, closed when it ends."""

    def __init__(self, path: str, live: dict, owned: tuple = ()) -> None:
        self.out = OutputFile(path)
        self.live = dict(live)
        self.open_fds = set(live)
        self.owned = owned
        self.deadline: float | None = None  # once every pipe is closed: when to stop retrying a full disk

    def read(self, fd: int) -> bool:
        """Copy what pipe ``fd`` holds; False once it is closed (at its end)."""
        try:
            chunk = os.read(fd, CHUNK)
        except InterruptedError:
            return True
        except OSError:
            chunk = b""
        if not chunk:
            self.open_fds.discard(fd)
            os.close(fd)
            return False
        target = self.live[fd]
        if target >= 0:
            try:
                _write_all(target, chunk)
            except OSError:
                self.live[fd] = -1  # the terminal or pipe reader is gone; keep recording
        self.out.add(chunk)
        return True

    def waiting(self) -> bool:
        return bool(self.out.pending or self.out.lost)

    def finish(self) -> "int | None":
        """With every pipe closed: the exit status once all is written or the disk stayed full
        for ``GIVE_UP_S``; None while still retrying."""
        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + GIVE_UP_S
        if not self.out.flush() and now < self.deadline:
            return None
        for fd in self.owned:
            os.close(fd)
        if self.out.fd >= 0:
            os.close(self.out.fd)
        unwritten = len(self.out.pending) + self.out.lost_total
        if unwritten:
            try:
                note = f"sem: {unwritten} bytes of output could not be written to {self.out.path}"
                os.write(2, f"{note}: the disk stayed full\n".encode())
            except OSError:
                pass
            return LOST_EXIT
        return 0


class Copier:
    """Copies the pipes of any number of sessions, each until all its pipes are closed."""

    def __init__(self) -> None:
        self.poller = select.poll()
        self.by_fd: dict[int, Session] = {}  # pipe read end -> its session
        self.sessions: dict[object, Session] = {}  # session id -> Session, until it finished
        self.handlers: dict[int, object] = {}  # other descriptors polled (a control socket) -> what reads them

    def add(self, key: object, session: Session) -> None:
        self.sessions[key] = session
        for fd in session.live:
            self.by_fd[fd] = session
            self.poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)

    def step(self) -> list:
        """Wait for bytes and copy them; the (session id, exit status) of the sessions that ended."""
        retrying = any(s.waiting() or (not s.open_fds) for s in self.sessions.values())
        try:
            events = self.poller.poll(int(RETRY_S * 1000) if retrying else None)
        except InterruptedError:
            events = []
        for fd, _ in events:
            handler = self.handlers.get(fd)
            if callable(handler):
                handler()
                continue
            session = self.by_fd.get(fd)
            if session is not None and not session.read(fd):
                self.poller.unregister(fd)
                del self.by_fd[fd]
        ended = []
        for key, session in list(self.sessions.items()):
            session.out.flush()
            if not session.open_fds:
                code = session.finish()
                if code is not None:
                    del self.sessions[key]
                    ended.append((key, code))
        return ended


def copy(path: str, live: dict) -> int:
    """Copy every pipe of ``live`` (read end -> live descriptor or -1) to its live descriptor
    and to ``path`` until all of them are closed; return the exit status (see above)."""
    copier = Copier()
    copier.add(0, Session(path, live))
    while True:
        for _, code in copier.step():
            return code


def serve(control: "socket.socket") -> int:
    """The copier of every job of one process (``sem_core.stdio.OutputCopier``): each message
    on ``control`` starts a session (``ID PATH LIVE...`` with the pipes' read ends and the live
    descriptors attached, in that order); ``ID CODE`` goes back when it ended. Ends when the
    job's process closed ``control`` and every session ended."""
    copier = Copier()
    state = {"open": True}

    def receive() -> None:
        try:
            message, fds, _, _ = socket.recv_fds(control, 4096, 16)
        except InterruptedError:
            return
        except OSError:
            message, fds = b"", []
        if not message:
            copier.poller.unregister(control.fileno())
            del copier.handlers[control.fileno()]
            state["open"] = False
            for fd in fds:
                os.close(fd)
            return
        key, path, *lives = message.decode("utf-8", "surrogateescape").split("\0")
        pipes, received = fds[: len(lives)], fds[len(lives) :]
        live_fds = iter(received)
        live = {r: (next(live_fds) if int(target) >= 0 else -1) for r, target in zip(pipes, lives)}
        copier.add(key, Session(path, live, owned=tuple(received)))

    copier.handlers[control.fileno()] = receive
    copier.poller.register(control.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
    while state["open"] or copier.sessions:
        for key, code in copier.step():
            if state["open"]:
                try:
                    control.sendall(f"{key} {code}\n".encode())
                except OSError:
                    pass  # the job's process is gone: its sessions still finish
    return 0


def main(argv: list) -> int:
    ignore_stop_signals()
    return copy(argv[1], {int(argv[i]): int(argv[i + 1]) for i in range(2, len(argv) - 1, 2)})


if __name__ == "__main__":
    sys.exit(main(sys.argv))
