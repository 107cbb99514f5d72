"""The sweep's settings checked before any job: ``sem.*``, the sweeper's and the launcher's."""

from __future__ import annotations

import math
from typing import Any

from sem_core import settings
from sem_core.errors import ConfigError

# hydra.launcher.<key> -> (smallest value, what it counts). Below it a launcher would start no
# job, wait forever or busy-loop (n_jobs=-1 ran nothing and reported success).
LAUNCHER_MINIMUMS = {
    "n_jobs": (1, "jobs at once, or null for one per CPU"),
    "timeout_min": (1, "minutes"),
    "array_parallelism": (1, "array tasks at once"),
    "configs_per_task": (1, "rows per array task"),
    "max_requeue": (0, "requeues"),
    "signal_delay_s": (0, "seconds"),
    "cpus_per_task": (1, "CPUs, or null for the cluster's default"),
    "gpus_per_task": (0, "GPUs, or null"),
    "gpus_per_node": (0, "GPUs, or null"),
}
LAUNCHER_POSITIVE = {"poll_interval_s": "seconds", "mem_gb": "GB, or null for the cluster's default"}


def check_settings(config: Any, sweeper: Any) -> None:
    """The merged ``sem.*`` settings and the launcher and sweeper options, before any job:
    one ConfigError naming the key. (Values from experiment_config.yaml were checked as it
    was read, naming the file; what fails here came from the command line.)"""
    for key in settings.SEM_SETTING_CHECKS:
        value = config.sem.get(key)
        problem = settings.sem_setting_problem(key, value)
        if problem:
            raise ConfigError(f"sem.{key}={getattr(value, 'value', value)}: {problem}")
    batch = sweeper.max_batch_size
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ConfigError(
            f"hydra.sweeper.max_batch_size={batch}: must be a whole number of jobs at least 1, "
            "or null for the whole sweep in one batch"
        )
    launcher = config.hydra.launcher
    for key, (least, unit) in LAUNCHER_MINIMUMS.items():
        value = launcher.get(key) if key in launcher else None
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise ConfigError(f"hydra.launcher.{key}={value}: must be a whole number at least {least} ({unit})")
    for key, unit in LAUNCHER_POSITIVE.items():
        value = launcher.get(key) if key in launcher else None
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ConfigError(f"hydra.launcher.{key}={value}: must be a number above 0 ({unit})")
