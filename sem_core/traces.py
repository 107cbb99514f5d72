"""A failed run's traceback as a user reads it: the frames of their model, not sem's.

The record keeps every frame (``fail_trace``); what is printed (the job's failure line,
``sem show``, ``sem report``) leaves out the frames of the code that runs every job."""

from __future__ import annotations

import os
import re
from pathlib import Path

_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line \d+')
# Frames of the code that runs a job, not of the user's model: they are the same in every failed run.
_MACHINERY = re.compile(r"[\\/](sem_core|hydra|hydra_plugins|submitit|omegaconf)[\\/]")


def _machinery_dirs() -> tuple[str, ...]:
    import hydra

    sem_core_dir = Path(__file__).resolve().parent  # this module's package
    return tuple(str(folder) + os.sep for folder in (sem_core_dir, Path(str(hydra.__file__)).resolve().parent))


def user_trace(trace: str) -> str:
    """``trace`` without the frames of sem, Hydra and the launchers (a line says how many were
    left out; the record keeps the full trace). Unchanged when no frame of the user's would be left."""
    dirs = _machinery_dirs()
    out: list[str] = []
    dropped = kept = 0
    skipping = False
    for line in trace.splitlines():
        frame = _FRAME.match(line)
        if frame:
            path = frame.group("path")
            skipping = path.startswith(dirs) or bool(_MACHINERY.search(path))
            dropped += skipping
            kept += not skipping
            if not skipping:
                out.append(line)
            continue
        if skipping and line.startswith("    "):  # the frame's source line and its ^^^ markers
            continue
        skipping = False
        out.append(line)
    if not dropped or not kept:
        return trace
    frames = f"{dropped} frame{'s' if dropped != 1 else ''}"
    note = f"  ({frames} of sem and Hydra left out; `sem show --full-trace` shows them)"
    return "\n".join([out[0], note, *out[1:]]) + ("\n" if trace.endswith("\n") else "")
