"""``sem run`` as one model file's process sees it (the command's side is ``sem_core.multi``,
which explains the whole design): the gate it waits at before its first job, the job slots
its local jobs share with the other model files, and the outcomes file it writes instead of
printing its summary. Outside ``sem run`` every function here does nothing (or returns None)."""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sem_core import records

GATE_ENV = "SEM_RUN_GATE"  # the gate folder of the `sem run` this model file runs under
NAME_ENV = "SEM_RUN_NAME"  # the name this model file reports ready under
SLOTS_ENV = "SEM_RUN_SLOTS"  # the folder of the job slots the model files share
OUTCOMES_FILE = "sem_outcomes.json"
NOT_STARTED_CODE = 3  # a model file told at the gate not to start (another one failed)
GATE_POLL_S = 0.02
SLOT_POLL_S = 0.02


def in_run() -> bool:
    return bool(os.environ.get(GATE_ENV))


def wait_at_gate(model_path: Path, n_jobs: int) -> None:
    """Under ``sem run``: say this file is planned, and wait until every file is (``go``) or
    one failed (``abort``: exit without starting a job). Outside ``sem run``: nothing."""
    gate = os.environ.get(GATE_ENV)
    if not gate:
        return
    gate_dir = Path(gate)
    name = os.environ.get(NAME_ENV) or Path(model_path).name
    records.atomic_write_json(gate_dir / f"{name}.ready", {"jobs": n_jobs, "pid": os.getpid()})
    parent = os.getppid()
    while not (gate_dir / "go").exists():
        if (gate_dir / "abort").exists() or os.getppid() != parent:
            print(
                f"{Path(model_path).name}: not started: another model file of this `sem run` could not be planned",
                file=sys.stderr,
                flush=True,
            )
            raise SystemExit(NOT_STARTED_CODE)
        time.sleep(GATE_POLL_S)


def write_outcomes(sweep_dir: Path, rows: Sequence[dict]) -> None:
    records.atomic_write_json(Path(sweep_dir) / OUTCOMES_FILE, {"rows": list(rows)})


class JobSlot:
    """One of ``n`` slots shared by the jobs of every model file of a ``sem run``."""

    def __init__(self, folder: Path, n: int):
        self.folder = Path(folder)
        self.n = max(1, int(n))
        self.fd: int | None = None

    def acquire(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            for i in range(self.n):
                fd = os.open(self.folder / f"slot-{i}", os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                self.fd = fd
                return
            time.sleep(SLOT_POLL_S)

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)  # closing the file drops the lock


def job_slot(config: Any) -> JobSlot | None:
    """The job's slot under ``sem run`` on sem's local launchers (sequential, local); None
    otherwise (alone, or on Slurm, whose scheduler keeps its own budget)."""
    folder = os.environ.get(SLOTS_ENV)
    if not folder:
        return None
    try:
        launcher = config.hydra.launcher
        target = str(launcher.get("_target_", ""))
    except Exception:  # noqa: BLE001 - a config without Hydra's node: not one of sem's launchers
        return None
    if not target.endswith("sem_plugins.launcher.LocalLauncher"):
        return None
    return JobSlot(Path(folder), launcher.get("n_jobs") or os.cpu_count() or 1)
