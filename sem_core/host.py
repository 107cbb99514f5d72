"""Host information in the shape of ``sacred.host_info.get_host_info()``.

sacred's own function is not used because importing sacred costs ~0.8 s per process, more
than a whole short job; the keys and values are the same (a test compares them).
"""

from __future__ import annotations

import functools
import platform


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
