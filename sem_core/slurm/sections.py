"""Cluster sections of ``experiment_config.yaml`` as ``hydra/launcher`` options.

    mycluster:
      partition: gpu
      timeout_min: "02:00:00"
      sif: ../images/env.sif

is selectable as ``hydra/launcher=mycluster``: its keys are ``SlurmLauncherConf``'s field names
(plus experiment_manager's ``sif``); command-line ``hydra.launcher.*`` overrides still win. A section
is a cluster section by its ``type`` or by experiment_manager's ``sif``/``partition`` keys
(``settings.cluster_type``). An earlier spelling of a key is an error naming the key to write.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sem_core.errors import ConfigError

# The keys of a cluster section are the launcher's option names, as in hydra.launcher.<name>=...
# (one spelling, which works in both places), plus experiment_manager's `sif` for the container image.
PREDECESSOR_KEYS = {"sif": "container"}
# Spellings of earlier versions: not read; each is an error naming the key to write instead.
OLD_SPELLINGS = {
    "queue": "partition",
    "time": "timeout_min",
    "time_limit": "timeout_min",
    "walltime": "timeout_min",
    "cpus": "cpus_per_task",
    "n_cpus": "cpus_per_task",
    "gpus": "gpus_per_task",
    "n_gpus": "gpus_per_task",
    "mem": "mem_gb",
    "memory": "mem_gb",
    "sbatch": "additional_parameters",
    "sbatch_options": "additional_parameters",
    "modules": "setup",
    "env": "setup",
    "parallelism": "array_parallelism",
    "max_parallel": "array_parallelism",
    "image": "container",
    "singularity": "container_binary",
    "binary": "container_binary",
    "singularity_flags": "container_flags",
    "binds": "container_binds",
    "bind": "container_binds",
}
# value forms a key takes besides the launcher option's own, named in the old-spelling error
_VALUE_FORMS = {"timeout_min": "minutes or [D-]HH:MM:SS", "mem_gb": "GB or text like 16G"}


@functools.cache
def launcher_keys() -> dict[str, str]:
    """experiment_config.yaml key -> SlurmLauncherConf field, for the keys to write."""
    from sem_core.slurm.config import SlurmLauncherConf

    names = {f.name: f.name for f in dataclasses.fields(SlurmLauncherConf) if not f.name.startswith("_")}
    return {**names, **PREDECESSOR_KEYS}


_MEM_RE = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<u>[KMGT]?)B?\s*$", re.IGNORECASE)
_MEM_FACTOR_GB = {"K": 1 / 1024**2, "M": 1 / 1024, "": 1 / 1024, "G": 1.0, "T": 1024.0}  # no unit: MB, as sbatch


def parse_time_limit(value: Any) -> int:
    """Minutes from a number of minutes or one of sbatch's ``--time`` forms: ``M``, ``M:S``,
    ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S`` (seconds round up: a limit is never shortened)."""
    bad = ValueError(f"time limit {value!r}: expected minutes or [D-]HH:MM:SS")
    if isinstance(value, bool):
        raise bad
    if isinstance(value, (int, float)):
        if value <= 0:
            raise bad
        return max(1, int(-(-value // 1)))
    text = str(value).strip()
    days, _, clock = text.rpartition("-")
    try:
        d = int(days) if days else 0
        parts = [int(x) for x in clock.split(":")]
    except ValueError:
        raise bad from None
    if days:  # D-H, D-H:M, D-H:M:S
        if not 1 <= len(parts) <= 3:
            raise bad
        h, m, sec = (parts + [0, 0])[:3]
    elif len(parts) == 1:
        h, m, sec = 0, parts[0], 0
    elif len(parts) == 2:
        h, m, sec = 0, parts[0], parts[1]
    elif len(parts) == 3:
        h, m, sec = parts
    else:
        raise bad
    total = ((d * 24 + h) * 60 + m) * 60 + sec
    if total <= 0:
        raise bad
    return -(-total // 60)


def parse_memory_gb(value: Any) -> float:
    """GB from a number (GB) or sbatch-style text: ``4G``, ``500M``, ``16GB`` (no unit: MB)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _MEM_RE.match(str(value))
    if match is None:
        raise ValueError(f"memory {value!r}: expected GB as a number or text like 4G, 500M")
    return float(match.group("n")) * _MEM_FACTOR_GB[match.group("u").upper()]


def _setup_lines(key: str, value: Any) -> list[str]:
    if key == "modules":
        names = value if isinstance(value, list) else str(value).split()
        return [f"module load {name}" for name in names]
    if key == "env":
        if not isinstance(value, Mapping):
            raise ValueError("env: expected a mapping NAME: value")
        import shlex

        return [f"export {name}={shlex.quote(str(v))}" for name, v in value.items()]
    return [str(line) for line in (value if isinstance(value, list) else [value])]


def _replacement(key: str, field: str, value: Any) -> str:
    """The key (and for modules/env the lines) to write instead of an old spelling."""
    if field == "setup":
        try:
            return f"setup: {_setup_lines(key, value)} (one shell line each)"
        except ValueError:
            return "setup: [shell lines]"
    form = _VALUE_FORMS.get(field)
    return f"{field!r}" + (f" (it takes {form})" if form else "") + f", the name hydra.launcher.{field}=... uses too"


def map_section(name: str, section: Mapping[str, Any], experiment_dir: Path, source: str) -> dict:
    """A slurm cluster section -> SlurmLauncherConf overrides. Unknown keys are errors that
    list the known ones."""
    from sem_core.settings import did_you_mean

    known = launcher_keys()
    out: dict[str, Any] = {}
    for key, value in section.items():
        if key == "type":
            continue
        where = f"{source}: section {name!r} key {key!r}"
        if key in OLD_SPELLINGS:
            raise ConfigError(f"{where}: an old spelling; write {_replacement(key, OLD_SPELLINGS[key], value)}")
        field = known.get(key)
        if field is None:
            raise ConfigError(f"{where}: unknown key{did_you_mean(key, known)}; known keys: {', '.join(sorted(known))}")
        try:
            if field == "timeout_min":
                value = parse_time_limit(value)
            elif field == "mem_gb":
                value = parse_memory_gb(value)
            elif field == "setup":
                value = out.get("setup", []) + _setup_lines(key, value)
            elif field in ("container_binds", "container_flags"):
                value = [str(v) for v in (value if isinstance(value, list) else [value])]
            elif field == "additional_parameters" and not isinstance(value, Mapping):
                raise ValueError("expected a mapping of sbatch options, e.g. {mail-type: END}")
            elif field == "container" and value and "://" not in str(value):
                path = Path(str(value)).expanduser()
                value = str(path if path.is_absolute() else (experiment_dir / path).resolve())
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if field in out and field != "setup":
            raise ConfigError(f"{where}: sets {field} a second time (aliases of one setting)")
        out[field] = value
    return out


def register_cluster_launchers(experiment_config: Mapping[str, Any], experiment_dir: Path) -> list[str]:
    """Store each Slurm section (``type: slurm``, or a ``sif``/``partition`` key without a
    ``type``) as a ``hydra/launcher`` option; return their names."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    from sem_core.settings import EXPERIMENT_CONFIG_NAME, cluster_sections, cluster_type
    from sem_core.slurm.config import SlurmLauncherConf

    source = str(Path(experiment_dir) / EXPERIMENT_CONFIG_NAME)
    names = []
    for name, section in cluster_sections(dict(experiment_config)).items():
        if cluster_type(section) != "slurm":
            continue
        mapped = map_section(name, section, Path(experiment_dir), source)
        try:
            node = OmegaConf.merge(OmegaConf.structured(SlurmLauncherConf), mapped)
        except Exception as exc:
            raise ConfigError(f"{source}: section {name!r}: {exc}") from None
        ConfigStore.instance().store(group="hydra/launcher", name=name, node=node, provider="sem")
        names.append(name)
    return names
