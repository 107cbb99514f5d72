"""``sem board``: real Omniboard (npm, installed by tests/omniboard/install.sh) on a real database
filled by a live-synced sweep; its REST API and a headless Chromium screenshot of its runs page."""

from __future__ import annotations

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote_plus

import pytest

from sem_core import records
from tests.conftest import REPO, run_model
from tests.mongo_fixtures import free_port
from tests.services import missing_service

pytestmark = pytest.mark.mongo

OMNIBOARD_DIR = Path(os.environ.get("SEM_OMNIBOARD_DIR", Path.home() / ".cache" / "sem-test" / "omniboard"))
OMNIBOARD = OMNIBOARD_DIR / "node_modules" / ".bin" / "omniboard"
ARTIFACTS = REPO / "tests" / "artifacts"
PASSWORD = "board#pw:" + uuid.uuid4().hex[:6]


def sem_env(**extra: str) -> dict:
    env = dict(os.environ)
    env.pop("SEM_OMNIBOARD", None)
    env.update(extra)
    return env


def test_board_without_omniboard_says_how_to_install_it(mongo_url, tmp_path, isolated_home):
    env = sem_env(SEM_MONGO_URL=mongo_url, SEM_OMNIBOARD=str(tmp_path / "no-such-omniboard"), HOME=str(isolated_home))
    res = subprocess.run(
        [sys.executable, "-m", "sem_core.cli", "board"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode != 0
    assert "npm install -g omniboard" in res.stderr


def _get_json(url: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return json.loads(resp.read().decode())
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _wait_for_url(proc: subprocess.Popen, timeout: float = 90.0) -> tuple[str, list[str]]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError("sem board exited before printing a URL:\n" + "".join(lines))
        lines.append(line)
        if line.startswith("Omniboard: http://"):
            return line.split()[1], lines
    raise AssertionError("no URL from sem board:\n" + "".join(lines))


@pytest.mark.slow
@pytest.mark.browser
def test_omniboard_shows_the_synced_sweep(example_dir, mongo_server, isolated_home, connect):
    if not OMNIBOARD.exists():
        missing_service(f"Omniboard is not installed in {OMNIBOARD_DIR}: run bash tests/omniboard/install.sh")
    from tests.browser import png_size, screenshot

    # a database with a password: it must reach Omniboard without touching a command line
    name = "board_" + uuid.uuid4().hex[:8]
    admin = connect(mongo_server.url(name))
    admin[name].command("createUser", "boarduser", pwd=PASSWORD, roles=[{"role": "readWrite", "db": name}])
    url = f"mongodb://boarduser:{quote_plus(PASSWORD)}@{mongo_server.address}/{name}?authSource={name}"
    (example_dir / "models" / "m_gd.py").unlink()
    env = sem_env(SEM_MONGO_URL=url, HOME=str(isolated_home), SEM_OMNIBOARD=str(OMNIBOARD))
    res = run_model(example_dir / "models" / "m_linear.py", env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    local = {r.global_id: r for r in records.iter_runs(example_dir / "models" / "runs")}

    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "sem-omniboard-*.json")))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sem_core.cli", "board", "--port", str(port)],
        cwd=example_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        board_url, lines = _wait_for_url(proc)
        assert board_url == f"http://127.0.0.1:{port}/sacred"
        # the password is on no command line of any process, and its temp config file is gone
        for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
            try:
                data = Path(cmdline).read_bytes()
            except OSError:
                continue
            assert PASSWORD.encode() not in data and quote_plus(PASSWORD).encode() not in data, cmdline
        assert set(glob.glob(os.path.join(tempfile.gettempdir(), "sem-omniboard-*.json"))) == before

        runs = _get_json(f"{board_url}/api/v1/Runs?select=_id,config,status,info")
        assert {r["config"]["global_id"] for r in runs} == set(local)
        for r in runs:
            rec = local[r["config"]["global_id"]]
            assert r["status"] == "COMPLETED" and isinstance(r["_id"], int)
            for key in ("experiment_id", "config_id", "order_id", "noise", "fold"):
                assert r["config"][key] == rec.config[key]
        some = runs[0]
        query = urllib.parse.quote(json.dumps({"run_id": some["_id"]}))
        metrics = _get_json(f"{board_url}/api/v1/Metrics?query={query}")
        rec = local[some["config"]["global_id"]]
        assert {m["name"]: m["values"] for m in metrics} == {n: s["values"] for n, s in rec.metrics.items()}
        count = _get_json(f"{board_url}/api/v1/Runs/count")
        assert count["count"] == len(local)

        png = screenshot(board_url, ARTIFACTS / "omniboard-runs.png", size=(1400, 900), budget_ms=15000, timeout=120)
        assert png_size(png) == (1400, 900) and png.stat().st_size > 20_000
        print(f"Omniboard screenshot: {png}")
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out
    assert PASSWORD not in "".join(lines) + out
    with pytest.raises(OSError):  # Omniboard stopped with sem board
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
