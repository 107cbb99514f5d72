"""Capturing a job's stdout and stderr while they stay live on the terminal.

Two modes (``sem.capture``):

- ``fd`` (default): file descriptors 1 and 2 are redirected into pipes. Two reader threads copy
  each pipe to the original descriptor (output stays live, on the stream it was written to)
  and to the run's buffer. This captures what Python prints, and also what C extensions,
  ``os.system`` and child processes write. sacred's own "fd" mode does the same with a
  ``tee`` subprocess.
- ``sys``: ``sys.stdout`` / ``sys.stderr`` are wrapped. Only Python-level writes are captured.
  This mode needs no file descriptors (embedded interpreters, notebooks).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Callable, Optional

CAPTURE_MODES = ("fd", "sys")


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
    # How long stop() waits for the readers to see end-of-file. A child process that outlives
    # the job keeps the pipe open; its later output is then not recorded.
    JOIN_TIMEOUT_S = 2.0

    def __init__(self, sink: Callable[[str], None]):
        self._sink = sink
        self._saved: dict[int, int] = {}
        self._readers: list[threading.Thread] = []
        self._sys: Optional[SysCapture] = None

    def start(self) -> None:
        _flush_python_streams()
        # A sys.stdout that does not write to fd 1 (pytest, notebooks, a user's wrapper) would
        # bypass the pipes: its Python-level writes are captured by wrapping it instead.
        bypassing = tuple(name for name, fd in (("stdout", 1), ("stderr", 2)) if not _writes_to_fd(getattr(sys, name), fd))
        if bypassing:
            self._sys = SysCapture(self._sink, bypassing)
            self._sys.start()
        for fd in (1, 2):
            saved = os.dup(fd)
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            self._saved[fd] = saved
            reader = threading.Thread(target=self._pump, args=(read_end, saved), name=f"sem-capture-{fd}", daemon=True)
            reader.start()
            self._readers.append(reader)

    def _pump(self, read_end: int, live_fd: int) -> None:
        decoder = _Utf8Decoder()
        try:
            while True:
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                _write_all(live_fd, chunk)
                self._sink(decoder.decode(chunk))
            tail = decoder.flush()
            if tail:
                self._sink(tail)
        finally:
            os.close(read_end)

    def stop(self) -> None:
        if self._sys is not None:
            self._sys.stop()
            self._sys = None
        if not self._saved:
            return
        _flush_python_streams()
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)  # closes this process's write end of the pipe: the reader sees EOF
        for reader, saved in zip(self._readers, self._saved.values()):
            reader.join(self.JOIN_TIMEOUT_S)
            if not reader.is_alive():
                os.close(saved)
            # else: a child process still holds the pipe; its reader keeps writing to `saved`,
            # which therefore stays open (closing it could hand the number to another file)
        self._saved = {}
        self._readers = []


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


def make_capture(mode: str, sink: Callable[[str], None]):
    if mode == "fd":
        return FdCapture(sink)
    if mode == "sys":
        return SysCapture(sink)
    raise ValueError(f"sem.capture={mode!r}: use one of {', '.join(CAPTURE_MODES)}")
