"""GPUs for the local launcher's workers: each worker owns ``gpus_per_job`` devices for its
whole life (CUDA reads ``CUDA_VISIBLE_DEVICES`` once, when a process first uses it), so no
two running jobs share a device."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from typing import Any

from sem_core.errors import ConfigError


def gpu_sets(gpus: Sequence[Any] | None, per_job: int | None) -> list[tuple[str, ...]] | None:
    """The workers' device sets, ``per_job`` devices each, none shared; None when the jobs are
    not given GPUs. A setting that cannot be met raises ConfigError (before any job)."""
    if per_job is None:
        if gpus is not None:
            raise ConfigError("hydra.launcher.gpus is used with hydra.launcher.gpus_per_job=K (devices per job)")
        return None
    if isinstance(per_job, bool) or not isinstance(per_job, int) or per_job < 1:
        raise ConfigError(f"hydra.launcher.gpus_per_job={per_job}: give 1 or more devices per job, or null")
    devices, source = _find_gpus(gpus)
    if not devices:
        raise ConfigError(
            f"hydra.launcher.gpus_per_job={per_job}: no GPUs found ({source}); list them with hydra.launcher.gpus=[0,1]"
        )
    if per_job > len(devices):
        raise ConfigError(
            f"hydra.launcher.gpus_per_job={per_job}: only {len(devices)} GPUs ({','.join(devices)}, from {source})"
        )
    return [tuple(devices[i : i + per_job]) for i in range(0, len(devices) - per_job + 1, per_job)]


def _find_gpus(explicit: Sequence[Any] | None) -> tuple[list[str], str]:
    """(device ids as CUDA_VISIBLE_DEVICES takes them, where they came from). A list given on
    the command line wins over what this process can see."""
    if explicit is not None:
        devices = [str(d).strip() for d in explicit]
        repeated = sorted({d for d in devices if devices.count(d) > 1})
        if repeated:
            raise ConfigError(f"hydra.launcher.gpus lists {', '.join(repeated)} more than once")
        return devices, "hydra.launcher.gpus"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return _parse_visible(visible), f"CUDA_VISIBLE_DEVICES={visible!r}"
    devices = _nvidia_smi_gpus()
    if devices:
        # nvidia-smi numbers GPUs in PCI bus order, CUDA (by default) fastest first
        os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    return devices, "CUDA_VISIBLE_DEVICES is not set; nvidia-smi -L"


def _parse_visible(value: str) -> list[str]:
    """CUDA_VISIBLE_DEVICES as CUDA reads it: ids up to the first invalid one ("-1" hides all)."""
    devices = []
    for part in value.split(","):
        part = part.strip()
        if not part or part.startswith("-"):
            break
        devices.append(part)
    return devices


def _nvidia_smi_gpus() -> list[str]:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):  # no driver installed
        return []
    if out.returncode != 0:
        return []
    return re.findall(r"^GPU (\d+):", out.stdout, flags=re.MULTILINE)


def own_gpus(task_function: Any, gpus: Sequence[str]) -> None:
    """This process's devices, for each of its jobs and in each of their records."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    if isinstance(getattr(task_function, "sweep_meta", None), dict):
        task_function.sweep_meta = {**task_function.sweep_meta, "gpus": list(gpus)}
