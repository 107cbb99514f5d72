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

import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Optional

CAPTURE_MODES = ("fd", "sys")
# signals that stop a job but must not stop the copy of its output (sem_core._tee)
HELD_BY_COPIER = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2") if hasattr(signal, name)
)


class _Tee:
    """Writes through to the real stream (output stays live) and keeps a copy for the run."""

    def __init__(self, stream, sink: Callable[[str], None]):
        self._stream = stream
        self._sink = sink

    def write(self, text: str) -> int:
        self._sink(text)
        return self._stream.write(text)

    def writelines(self, lines) -> None:
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

    def __init__(self, output_file: Optional[os.PathLike] = None):
        self._own_file = output_file is None  # no observer keeps the output: a temporary spool
        self.output_file = Path(output_file) if output_file is not None else None
        self._saved: dict[int, int] = {}
        self._python_level: Optional[int] = None
        self._sys: Optional[SysCapture] = None
        self._copier: Optional[subprocess.Popen] = None
        self._offset = 0
        self._decoder = _Utf8Decoder()
        self.problem: Optional[str] = None  # set by stop() when output could not be kept

    def start(self) -> None:
        if self.output_file is None:
            fd, name = tempfile.mkstemp(prefix="sem-output-", suffix=".txt")
            os.close(fd)
            self.output_file = Path(name)
        self._offset = _size(self.output_file)
        _flush_python_streams()
        pipes: list[tuple[int, int]] = []  # (read end, live fd) handed to the copier
        to_close: list[int] = []
        for fd in (1, 2):
            read_end, write_end = os.pipe()
            saved = os.dup(fd)
            self._saved[fd] = saved
            pipes.append((read_end, saved))
            to_close += [read_end, write_end]
            os.dup2(write_end, fd)
        # A sys.stdout that does not write to fd 1 (pytest, notebooks, a user's wrapper) would
        # bypass the pipes: its Python-level writes are recorded through a third pipe.
        bypassing = tuple(name for name, fd in (("stdout", 1), ("stderr", 2)) if not _writes_to_fd(getattr(sys, name), fd))
        if bypassing:
            read_end, write_end = os.pipe()
            pipes.append((read_end, -1))
            to_close.append(read_end)
            self._python_level = write_end
            self._sys = SysCapture(self._write_python_level, bypassing)
        args = [sys.executable, "-I", "-S", str(Path(__file__).with_name("_tee.py")), str(self.output_file)]
        for read_end, live in pipes:
            args += [str(read_end), str(live)]
        # The copier starts with the stop signals blocked (a mask survives exec): a Ctrl-C meant
        # for the job must not kill it, not even while its interpreter starts. Here they wait
        # for the few milliseconds of the start and are delivered right after.
        mask = set(HELD_BY_COPIER) if threading.current_thread() is threading.main_thread() else set()
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, mask) if mask else None
        try:
            self._copier = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._saved[2],
                pass_fds=[fd for pair in pipes for fd in pair if fd >= 0],
            )
        except BaseException:
            self._restore()
            raise
        finally:
            for fd in to_close:
                os.close(fd)
            if previous is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        if self._sys is not None:
            self._sys.start()

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
        copier, self._copier = self._copier, None
        if copier is None:
            return
        try:
            code = copier.wait(self.JOIN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            # a child process of the job still holds the pipes; not an error of the record
            return
        if code:
            self.problem = f"the job's output could not all be written to {self.output_file} (the disk was full)"

    def discard(self) -> None:
        """Remove a temporary spool once its content was taken."""
        if self._own_file and self.output_file is not None:
            self.output_file.unlink(missing_ok=True)


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
    problem: Optional[str] = None

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


def make_capture(mode: str, output_file: Optional[os.PathLike] = None):
    """The capture of ``mode``. ``output_file``: where ``fd`` mode appends the output itself
    (the run record's cout.txt); a temporary file when None. ``sys`` mode keeps it in memory."""
    if mode == "fd":
        return FdCapture(output_file)
    if mode == "sys":
        return BufferedSysCapture()
    raise ValueError(f"sem.capture={mode!r}: use one of {', '.join(CAPTURE_MODES)}")
