"""Capturing a job's stdout and stderr while they stay live on the terminal.

Two modes (``sem.capture``):

- ``fd`` (default): file descriptors 1 and 2 are redirected into pipes. A separate process
  (``sem_core._tee``) copies each pipe to the original descriptor (output stays live, on the
  stream it was written to) and appends it to the run's ``cout.txt`` as it arrives. This
  captures what Python prints, and also what C extensions, ``os.system`` and child processes
  write, up to the last byte before a hard crash. sacred's own "fd" mode also uses a ``tee``
  subprocess.
- ``sys``: ``sys.stdout`` / ``sys.stderr`` are wrapped. Only Python-level writes are captured.
  This mode needs no file descriptors (embedded interpreters, notebooks).
"""

from __future__ import annotations

import atexit
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sem_core import _tee

CAPTURE_MODES = ("fd", "sys")
# signals that stop a job but must not stop the copy of its output (sem_core._tee)
HELD_BY_COPIER = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2") if hasattr(signal, name)
)


class _Tee:
    """Writes through to the real stream (output stays live) and keeps a copy for the run."""

    def __init__(self, stream: Any, sink: Callable[[str], None]) -> None:
        self._stream = stream
        self._sink = sink

    def write(self, text: str) -> int:
        self._sink(text)
        return self._stream.write(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class SysCapture:
    def __init__(self, sink: Callable[[str], None], names: tuple[str, ...] = ("stdout", "stderr")):
        self._sink = sink
        self._names = names
        self._saved: dict[str, Any] = {}

    def start(self) -> None:
        for name in self._names:
            self._saved[name] = getattr(sys, name)
            setattr(sys, name, _Tee(self._saved[name], self._sink))

    def stop(self) -> None:
        for name, stream in self._saved.items():
            setattr(sys, name, stream)
        self._saved = {}


class FdCapture:
    """File descriptors 1 and 2 go into pipes read by a separate process (``sem_core._tee``)
    that shows the bytes on the original descriptors and appends them to the output file.

    The copy lives outside the job's process so that a job dying hard (``abort()``, a
    segfault, SIGKILL) loses nothing it wrote: the pipes are read to their end after its
    death. The run reads what arrived with ``take()``."""

    # How long stop() waits for the copy to finish. A child process that outlives the job keeps
    # the pipe open; the copy then goes on in the background and its later output is appended
    # after the record is final.
    JOIN_TIMEOUT_S = 5.0

    def __init__(self, output_file: os.PathLike | None = None, copier: OutputCopier | None = None):
        self._own_file = output_file is None  # no observer keeps the output: a temporary spool
        self.output_file = Path(output_file) if output_file is not None else None
        self._saved: dict[int, int] = {}
        self._python_level: int | None = None
        self._sys: SysCapture | None = None
        self._copier: subprocess.Popen | None = None  # where fork is missing
        self._copier_pid: int | None = None
        self._service = copier  # the process's copier for every job, else a copier per capture
        self._session: str | None = None
        self._offset = 0
        self._decoder = _Utf8Decoder()
        self.problem: str | None = None  # set by stop() when output could not be kept

    def start(self) -> None:
        if self.output_file is None:
            fd, name = tempfile.mkstemp(prefix="sem-output-", suffix=".txt")
            os.close(fd)
            self.output_file = Path(name)
        self._offset = _size(self.output_file)
        _flush_python_streams()
        pipes: list[tuple[int, int, int]] = []  # (read end, write end, live fd)
        for fd in (1, 2):
            read_end, write_end = os.pipe()
            pipes.append((read_end, write_end, fd))
        # A sys.stdout that does not write to fd 1 (pytest, notebooks, a user's wrapper) would
        # bypass the pipes: its Python-level writes are recorded through a third pipe.
        streams = (("stdout", 1), ("stderr", 2))
        bypassing = tuple(name for name, fd in streams if not _writes_to_fd(getattr(sys, name), fd))
        if bypassing:
            read_end, write_end = os.pipe()
            pipes.append((read_end, write_end, -1))
        try:
            self._start_copier(pipes)
        except BaseException:
            for read_end, write_end, _ in pipes:
                os.close(read_end)
                os.close(write_end)
            raise
        for read_end, write_end, live in pipes:
            os.close(read_end)
            if live in (1, 2):
                self._saved[live] = os.dup(live)
                os.dup2(write_end, live)
                os.close(write_end)
            else:
                self._python_level = write_end
        if bypassing:
            self._sys = SysCapture(self._write_python_level, bypassing)
            self._sys.start()

    def _start_copier(self, pipes: list[tuple[int, int, int]]) -> None:
        """Start the process that copies the pipes. Forked from this one (about a millisecond;
        an interpreter of its own would cost ten or more per job) where fork exists. It starts
        with the stop signals blocked: a Ctrl-C meant for the job must never kill the copy;
        here they wait for the fork and are delivered right after."""
        if self._service is not None:
            self._session = self._service.copy(str(self.output_file), [(r, live) for r, _, live in pipes])
            return
        with _stop_signals_held():
            if hasattr(os, "fork"):
                pid = os.fork()
                if pid == 0:  # the copier: nothing here may return into the job's code
                    code = 70
                    try:
                        code = _copy_in_child(str(self.output_file), pipes)
                    finally:
                        os._exit(code)
                self._copier_pid = pid
            else:
                args = [sys.executable, "-I", "-S", str(Path(__file__).with_name("_tee.py")), str(self.output_file)]
                for read_end, _, live in pipes:
                    args += [str(read_end), str(live)]
                self._copier = subprocess.Popen(
                    args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, pass_fds=[r for r, _, _ in pipes]
                )

    def _write_python_level(self, text: str) -> None:
        if self._python_level is not None:
            _write_all(self._python_level, text.encode("utf-8", errors="replace"))

    def take(self) -> str:
        """The output that reached the file since the last call."""
        if self.output_file is None:
            return ""
        try:
            with open(self.output_file, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return ""
        self._offset += len(data)
        return self._decoder.decode(data)

    def _restore(self) -> None:
        if self._sys is not None:
            self._sys.stop()
            self._sys = None
        if self._python_level is not None:
            os.close(self._python_level)
            self._python_level = None
        _flush_python_streams()
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)  # closes this process's write end of the pipe: the copier sees EOF
            os.close(saved)
        self._saved = {}

    def stop(self) -> None:
        if not self._saved:
            return
        self._restore()
        code = self._wait_for_copier()
        if code:
            self.problem = f"the job's output could not all be written to {self.output_file} (the disk was full)"

    def _wait_for_copier(self) -> int | None:
        """The copier's exit status, or None when it is still copying after JOIN_TIMEOUT_S (a
        child process of the job holds the pipes: not an error of the record)."""
        if self._session is not None and self._service is not None:
            session, self._session = self._session, None
            return self._service.wait(session, self.JOIN_TIMEOUT_S)
        if self._copier is not None:
            copier, self._copier = self._copier, None
            try:
                return copier.wait(self.JOIN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                return None
        pid, self._copier_pid = self._copier_pid, None
        if pid is None:
            return None
        deadline = time.monotonic() + self.JOIN_TIMEOUT_S
        _wait_for_exit(pid, self.JOIN_TIMEOUT_S)
        delay = 0.0005
        while True:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere (a SIGCHLD handler of the model)
                return None
            if done:
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:
                return None
            time.sleep(delay)
            delay = min(2 * delay, 0.05)

    def discard(self) -> None:
        """Remove a temporary spool once its content was taken."""
        if self._own_file and self.output_file is not None:
            self.output_file.unlink(missing_ok=True)


class OutputCopier:
    """The copier of every job this process runs (``sem_core._tee.serve``): one process forked
    at the first job, handed each job's pipes and live descriptors over a Unix socket, which
    answers when that job's copy ended. (A copier forked per job cost more CPU than the rest of
    a short job's record.) A process forked from this one (a worker) starts its own; the copier
    ends once the processes holding its socket are gone and every copy it was given ended."""

    def __init__(self) -> None:
        self._socket: socket.socket | None = None
        self._pid: int | None = None
        self._owner = 0  # the process that started the copier
        self._count = 0
        self._ended: dict[str, int] = {}  # answers read while waiting for another session
        self._pending = b""

    def copy(self, output_file: str, pipes: list[tuple[int, int]]) -> str:
        """Start copying ``pipes`` ((read end, live descriptor or -1) each) to ``output_file``;
        the session's name for ``wait``."""
        for attempt in (1, 2):
            if self._socket is None or self._owner != os.getpid():
                self._start()
            assert self._socket is not None
            self._count += 1
            key = f"{os.getpid()}-{self._count}"
            fields = [key, output_file] + [str(live) for _, live in pipes]
            fds = [r for r, _ in pipes] + [live for _, live in pipes if live >= 0]
            try:
                socket.send_fds(self._socket, ["\0".join(fields).encode("utf-8", "surrogateescape")], fds)
                return key
            except OSError:  # the copier is gone (killed): a new one, once
                self._drop()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def wait(self, key: str, timeout: float) -> int | None:
        """The exit status of session ``key`` (0: all written), or None when it is still copying
        after ``timeout`` (a child process of the job holds its pipes)."""
        deadline = time.monotonic() + timeout
        while key not in self._ended:
            if self._socket is None:
                return _tee.LOST_EXIT
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self._socket], [], [], remaining)
            if not ready:
                continue
            try:
                data = self._socket.recv(4096)
            except InterruptedError:
                continue
            except OSError:
                data = b""
            if not data:  # the copier died mid-copy
                self._drop()
                return _tee.LOST_EXIT
            self._pending += data
            *lines, self._pending = self._pending.split(b"\n")
            for line in lines:
                name, _, code = line.decode().partition(" ")
                self._ended[name] = int(code)
        return self._ended.pop(key)

    def _start(self) -> None:
        if self._socket is not None:  # inherited from the process this one was forked from:
            self._socket.close()  # this process's copy only (the copier's end stays with its owner)
            self._socket = None
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with _stop_signals_held():
            pid = os.fork()
            if pid == 0:  # the copier: nothing here may return into the job's code
                code = 70
                try:
                    code = _serve_in_child(theirs)
                finally:
                    os._exit(code)
        theirs.close()
        self._socket, self._pid, self._owner, self._ended = mine, pid, os.getpid(), {}
        atexit.register(self.close)  # the copier's last copies end before this process does

    def _drop(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._pid is not None:
            try:
                os.waitpid(self._pid, os.WNOHANG)
            except ChildProcessError:
                pass
            self._pid = None

    def close(self) -> None:
        """Let the copier end once its copies ended; reap it (waiting at most a few seconds)."""
        if self._owner != os.getpid():
            return
        pid = self._pid
        self._drop()
        if pid is not None:
            _wait_for_exit(pid, FdCapture.JOIN_TIMEOUT_S)
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


@contextmanager
def _stop_signals_held() -> Iterator[None]:
    """Fork a copier with the stop signals blocked: a Ctrl-C meant for the job must never kill
    the copy; here they wait for the fork and are delivered right after."""
    mask = set(HELD_BY_COPIER) if threading.current_thread() is threading.main_thread() else set()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, mask) if mask else None
    try:
        yield
    finally:
        if previous is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _close_all_but(keep: set[int]) -> None:
    """In a forked copier: every other descriptor goes, above all the pipes' write ends (a copy
    ends when the job's copies of them close), and the job's sockets and files."""
    low = 0
    for fd in sorted(keep):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, _max_fd())


def _copy_in_child(output_file: str, pipes: list[tuple[int, int, int]]) -> int:
    """In the forked copier of one capture: keep only the read ends and the terminal, then copy."""
    _tee.ignore_stop_signals()
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    _close_all_but({0, 1, 2} | {r for r, _, _ in pipes})
    return _tee.copy(output_file, {r: live for r, _, live in pipes})


def _serve_in_child(control: socket.socket) -> int:
    """In the forked copier of every job: keep only the socket and the terminal, then serve."""
    _tee.ignore_stop_signals()
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    _close_all_but({0, 1, 2, control.fileno()})
    return _tee.serve(control)


def _wait_for_exit(pid: int, timeout: float) -> None:
    """Sleep until ``pid`` exits or ``timeout`` passes (woken at once by a pidfd where Linux
    has one; the caller polls otherwise)."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.poll(int(timeout * 1000))
    finally:
        os.close(pidfd)


def _max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):
        return 65536


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


class _Utf8Decoder:
    """Incremental UTF-8 decoding: a character split across two reads is not mangled."""

    def __init__(self) -> None:
        import codecs

        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def decode(self, chunk: bytes) -> str:
        return self._decoder.decode(chunk)

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _writes_to_fd(stream: Any, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (AttributeError, ValueError, OSError):  # io.UnsupportedOperation is both
        return False


def _flush_python_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass  # a closed or replaced stream has nothing of ours to flush


class BufferedSysCapture(SysCapture):
    """``sys`` mode: Python-level writes kept in memory until the run takes them."""

    output_file = None
    problem: str | None = None

    def __init__(self) -> None:
        self._buffer: list[str] = []
        self._lock = threading.Lock()
        super().__init__(self._keep)

    def _keep(self, text: str) -> None:
        with self._lock:
            self._buffer.append(text)

    def take(self) -> str:
        with self._lock:
            out = "".join(self._buffer)
            self._buffer.clear()
        return out

    def discard(self) -> None:
        pass


def make_capture(
    mode: str, output_file: os.PathLike | None = None, copier: OutputCopier | None = None
) -> FdCapture | BufferedSysCapture:
    """The capture of ``mode``. ``output_file``: where ``fd`` mode appends the output itself
    (the run record's cout.txt); a temporary file when None. ``copier``: the process's copier
    for every job (else ``fd`` mode forks one for this capture). ``sys`` mode keeps it in memory."""
    if mode == "fd":
        return FdCapture(output_file, copier)
    if mode == "sys":
        return BufferedSysCapture()
    raise ValueError(f"sem.capture={mode!r}: use one of {', '.join(CAPTURE_MODES)}")
