"""``sem board [PATH] [--port N]``: start Omniboard against the configured MongoDB, print its URL.

The connection URI goes to Omniboard in a temporary config file readable only by you
(``OMNIBOARD_CONFIG``), deleted as soon as Omniboard has read it (and on exit): no password on a
command line (``ps`` shows those to every user). Omniboard comes from npm:
``npm install -g omniboard`` (or set ``SEM_OMNIBOARD`` to the ``omniboard`` executable).
Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

OMNIBOARD_ENV = "SEM_OMNIBOARD"
URL_PATH = "/sacred"
INSTALL_HINT = (
    "Omniboard is not installed: install it with npm (Node.js >= 14): `npm install -g omniboard`, "
    f"or set {OMNIBOARD_ENV} to the path of its `omniboard` executable"
)
_LISTENING = re.compile(r"listening on port (\d+)")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "board",
        help="start Omniboard on the configured MongoDB and print its URL",
        description="Start Omniboard on the configured MongoDB and print its URL; Ctrl-C stops it. "
        "The database URL reaches Omniboard in a file only you can read, deleted once Omniboard has read it, "
        "never on a command line.\n\nOmniboard comes from npm: `npm install -g omniboard` (or set "
        "SEM_OMNIBOARD to its executable).",
    )
    p.add_argument(
        "path",
        nargs="?",
        default=None,
        metavar="PATH",
        help="experiment folder whose experiment_config.yaml names the database (default: current)",
    )
    p.add_argument("--port", type=int, default=9000, help="port to serve on (Omniboard takes the next free one)")
    p.add_argument(
        "--url",
        default=None,
        metavar="MONGODB_URL",
        help="database to show instead of the configured one (no passwords here: use SEM_MONGO_URL)",
    )
    p.set_defaults(func=run)


def find_omniboard(env: Mapping[str, str] | None = None) -> str | None:
    explicit = (os.environ if env is None else env).get(OMNIBOARD_ENV)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("omniboard")


def omniboard_config(url: str) -> dict:
    """Omniboard's config file format (``OMNIBOARD_CONFIG``): one database, served under /sacred."""
    return {"sem": {"mongodbURI": url, "path": URL_PATH}}


def write_private_config(url: str) -> Path:
    """A temp JSON file with mode 0600 (mkstemp's mode) holding the URI."""
    fd, name = tempfile.mkstemp(prefix="sem-omniboard-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(omniboard_config(url), fh)
    os.chmod(name, 0o600)
    return Path(name)


def run(args: argparse.Namespace) -> int:
    from sem_core.errors import SemError
    from sem_core.mongo import connection
    from sem_core.results.load import find_experiment_dir

    try:
        experiment_dir = find_experiment_dir(Path(args.path) if args.path else None)
    except SemError:
        if args.path:
            raise
        experiment_dir = None
    settings = connection.require_settings(args.url, experiment_dir)
    exe = find_omniboard()
    if exe is None:
        print(f"sem board: error: {INSTALL_HINT}", file=sys.stderr)
        return 3

    config_path = write_private_config(settings.url)
    env = dict(os.environ, OMNIBOARD_CONFIG=str(config_path), PORT=str(args.port))
    secrets = settings.secrets
    proc = subprocess.Popen(
        [exe],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        assert proc.stdout is not None  # stdout=PIPE
        for line in proc.stdout:
            sys.stdout.write(connection.redact_uri(line, secrets))
            m = _LISTENING.search(line)
            if m:
                config_path.unlink(missing_ok=True)  # read at Omniboard's start-up; no longer needed
                print(
                    f"Omniboard: http://127.0.0.1:{m.group(1)}{URL_PATH}  (database {settings.display}; "
                    "Ctrl-C stops it)",
                    flush=True,
                )
            sys.stdout.flush()
        code = proc.wait()
        if code != 0:
            print(f"sem board: error: Omniboard exited with code {code}", file=sys.stderr)
            return code
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        config_path.unlink(missing_ok=True)
        _stop(proc)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
