"""The command that starts Python inside a container image on a compute node.

submitit runs ``<python command> -u -m submitit.core._submit <folder>`` in the job script;
with a container the python command becomes
``<singularity|apptainer> exec [--nv] [flags] [--bind SRC[:DST[:OPTS]]]... IMAGE python``.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sem_core.errors import ConfigError

CONTAINER_BINARIES = ("apptainer", "singularity")


@dataclass(frozen=True)
class ContainerSpec:
    image: str
    binary: str = "auto"  # "auto": apptainer if on PATH, else singularity
    flags: Sequence[str] = field(default_factory=tuple)  # e.g. ("--cleanenv", "--userns")
    binds: Sequence[str] = field(default_factory=tuple)  # "SRC[:DST[:OPTS]]"
    python: str = "python"  # the interpreter inside the image


def wants_gpus(gpus_per_task: int | None, gpus_per_node: int | None, gres: str | None) -> bool:
    """Did the job ask for GPUs (the only case where ``--nv`` is passed)?"""
    if (gpus_per_task or 0) > 0 or (gpus_per_node or 0) > 0:
        return True
    return bool(gres) and "gpu" in str(gres).split(":")[0].lower()


def resolve_binary(binary: str, which: Callable[[str], str | None] = shutil.which) -> str:
    """``auto`` -> the first of apptainer/singularity on PATH (apptainer if neither is: the
    error then comes from the compute node, which may have it while this host has not)."""
    if binary != "auto":
        return binary
    for name in CONTAINER_BINARIES:
        if which(name):
            return name
    return CONTAINER_BINARIES[0]


def container_python_command(spec: ContainerSpec, gpus: bool) -> str:
    """The shell words that replace ``python`` in the job script (already quoted)."""
    if spec.binary == "auto":
        raise ValueError("resolve the container binary first (resolve_binary)")
    words = [spec.binary, "exec"]
    if gpus:
        words.append("--nv")
    words += list(spec.flags)
    for bind in spec.binds:
        words += ["--bind", bind]
    words += [spec.image, spec.python]
    return " ".join(shlex.quote(w) for w in words)


def resolve_image(image: str, base_dir: Path, source: str) -> str:
    """A local image path made absolute (relative to ``base_dir``) and checked to exist;
    ``docker://``-style URIs are passed through. ``source`` names where the setting came from."""
    if "://" in image:
        return image
    path = Path(image).expanduser()
    if not path.is_absolute():
        path = (base_dir / path).resolve()
    if not path.exists():
        raise ConfigError(
            f"{source}: container image {image!r} not found (looked for {path}); "
            "fix the path or put the image on a file system the compute nodes share"
        )
    return str(path)
