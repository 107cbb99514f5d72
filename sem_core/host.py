"""Host information in the shape of ``sacred.host_info.get_host_info()``.

sacred's own function is not used because importing sacred costs 1.0-1.9 s per process (measured
2026-12-01 on the 2-core test machine under load; get_host_info itself 3-17 ms, this one 0.1 ms),
more than a whole short job; the keys and values are the same (a test compares them).
"""

from __future__ import annotations

import functools
import os
import platform
from typing import Any


@functools.lru_cache(maxsize=1)
def host_info() -> dict:
    return {
        "hostname": platform.node(),
        "os": [platform.system(), platform.platform()],
        "python_version": platform.python_version(),
        "cpu": _cpu_name(),
        "ENV": {},
    }


def _cpu_name() -> str:
    system = platform.system()
    if system == "Linux":
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as fh:
                for line in fh:
                    if line.startswith("model name"):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
    return platform.processor() or "unknown"


BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _process_start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (``/proc/<pid>/stat`` field 22):
    with the boot id it tells a process from a later one that reuses its pid."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    # the command name (field 2) may hold spaces and parentheses: count from its closing one
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def process_info() -> dict:
    """Who runs this job: host, boot id, pid and the pid's start time (Linux; None elsewhere)."""
    pid = os.getpid()
    return {
        "host": platform.node(),
        "boot_id": _read(BOOT_ID_FILE),
        "pid": pid,
        "start_ticks": _process_start_ticks(pid),
    }


def process_alive(info: Any) -> bool | None:
    """Whether the process a run record names is still alive: None when this host cannot
    tell (another machine, another boot, a record without process information)."""
    if not isinstance(info, dict) or not info.get("pid") or info.get("start_ticks") is None:
        return None
    boot_id = _read(BOOT_ID_FILE)
    if boot_id is None or info.get("host") != platform.node() or info.get("boot_id") != boot_id:
        # another machine (possibly of the same name), or this one rebooted: its heartbeat tells
        return None
    return _process_start_ticks(int(info["pid"])) == info["start_ticks"]
