"""pytest plugin: a real MongoDB wire-protocol server (SecantusDB) for the tests.

- ``mongo_server`` (session): one ``secantusd-py`` process on a free loopback port with a
  temporary storage folder, shared by every test of the session (starting one takes ~0.5 s,
  stopping one 2-4 s).
- ``mongo_url`` / ``mongo_db``: a fresh database per test on that server (no cross-talk).
- ``private_mongo_server``: a server of the test's own, for tests that stop and restart it.

SecantusDB (PyPI ``secantusdb``, GPL-2.0) is a test dependency only. Tests using these
fixtures are marked ``mongo``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

STARTUP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _secantusd_command() -> list[str]:
    exe = shutil.which("secantusd-py")
    if exe:
        return [exe]
    # the console script may be missing from PATH (e.g. a venv not activated)
    return [sys.executable, "-c", "import sys; from secantus.__main__ import main; sys.exit(main())"]


def signal_main_thread(pid: int, signum: int) -> None:
    """Send ``signum`` to the main thread of ``pid``. secantusd stops in a Python signal handler,
    which CPython runs only in the main thread once it wakes; a process-wide signal the kernel
    hands another thread leaves the main thread asleep in ``Event.wait``."""
    import ctypes

    if ctypes.CDLL(None).tgkill(pid, pid, signum) != 0:
        os.kill(pid, signum)


class SecantusServer:
    """A ``secantusd-py`` subprocess; ``stop()`` and ``start()`` again keep the data and the port."""

    def __init__(self, storage: Path, port: int | None = None, host: str = "127.0.0.1"):
        self.host = host
        self.port = port or free_port()
        self.storage = Path(storage)
        self.log_path = self.storage.parent / f"secantusd-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, database: str) -> str:
        return f"mongodb://{self.address}/{database}"

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.storage.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            _secantusd_command()
            + [
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--storage-path",
                str(self.storage),
                "--log-level",
                "WARNING",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"secantusd-py exited with {self.proc.returncode}; log:\n{self._log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"secantusd-py did not open {self.address} in {STARTUP_TIMEOUT_S} s; log:\n{self._log_tail()}"
        )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        signal_main_thread(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except FileNotFoundError:
            return "(no log)"


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[SecantusServer]:
    root = Path(tempfile.mkdtemp(prefix="sem-secantus-"))
    server = SecantusServer(root / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mongo_url(mongo_server: SecantusServer) -> str:
    """URL of a database of this test's own on the session server."""
    return mongo_server.url("t_" + uuid.uuid4().hex[:12])


@pytest.fixture
def connect():
    """``connect(url, **options)`` -> a MongoClient closed when the test ends."""
    import pymongo

    clients = []

    def _connect(url: str, **options):
        client = pymongo.MongoClient(url, **options)
        clients.append(client)
        return client

    try:
        yield _connect
    finally:
        for client in clients:
            client.close()


@pytest.fixture
def mongo_db(mongo_url: str, connect):
    """This test's database on the session server (the client closes when the test ends)."""
    return connect(mongo_url, serverSelectionTimeoutMS=5000).get_default_database()


@pytest.fixture
def private_mongo_server(tmp_path: Path) -> Iterator[SecantusServer]:
    """A server only this test uses: it may stop and restart it."""
    server = SecantusServer(tmp_path / "secantus-data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch) -> Path:
    """HOME (and so ~/.config/sem, ~/.config/seml) in a temp folder, SEM_MONGO_URL unset."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SEM_MONGO_URL", raising=False)
    return home


# -- synthetic run folders (sem's file layout, written through the file observer's events) -----
def write_synthetic_run(
    store: Path,
    global_id: str,
    order_id: int = 0,
    *,
    source_file: Path | None = None,
    metrics: dict | None = None,
    points: int = 10,
    artifact: bytes | None = None,
    captured_out: str = "",
    status: str = "COMPLETED",
    config: dict | None = None,
) -> Path:
    """A run folder as a sweep writes it. ``metrics``: ``{name: n_points}`` (default: loss with
    ``points`` points); ``artifact``: bytes of an artifact named ``model.bin``."""
    import datetime as dt

    from sem_core.observers.file import FileStorageObserver
    from sem_core.sources import file_md5

    store = Path(store)
    if source_file is None:
        source_file = store.parent / "m_synth.py"
        if not source_file.exists():
            source_file.parent.mkdir(parents=True, exist_ok=True)
            source_file.write_text("# a synthetic model file\nprint('hello')\n")
    row = dict(config or {"name": "synth", "lr": 0.1 * (order_id + 1), "fold": order_id % 5})
    row.update(experiment_id=f"e{order_id:015d}", config_id=f"c{order_id:015d}", order_id=order_id, global_id=global_id)
    ex_info = {
        "name": source_file.stem,
        "base_dir": str(source_file.parent),
        "sources": [[source_file.name, file_md5(source_file)]],
        "dependencies": [],
        "repositories": [],
        "mainfile": source_file.name,
    }
    t0 = dt.datetime(2026, 1, 1, 12, 0, 0)
    obs = FileStorageObserver(store)
    obs.started_event(
        ex_info,
        "main",
        {"hostname": "testhost", "os": ["Linux", "test"]},
        t0,
        row,
        {"command": "main", "options": {}},
        global_id,
    )
    series = {}
    for name, n in (metrics or {"loss": points}).items():
        stamps = [(t0 + dt.timedelta(microseconds=i)).isoformat() for i in range(n)]
        series[name] = {
            "steps": list(range(n)),
            "values": [1.0 / (i + 1) + order_id for i in range(n)],
            "timestamps": stamps,
        }
    obs.log_metrics(series, {})
    obs.heartbeat_event({"note": f"run {order_id}"}, captured_out, t0 + dt.timedelta(seconds=1), None)
    if artifact is not None:
        tmp = store / f".artifact-{global_id}.tmp"
        tmp.write_bytes(artifact)
        obs.artifact_event("model.bin", str(tmp))
        tmp.unlink()
    if status == "COMPLETED":
        obs.completed_event(t0 + dt.timedelta(seconds=2), 0.5 + order_id)
    elif status == "FAILED":
        obs.failed_event(t0 + dt.timedelta(seconds=2), ["Traceback (most recent call last):\n", "ValueError: boom\n"])
    return store / global_id
