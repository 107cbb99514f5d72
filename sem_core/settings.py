"""sem's settings: the ``sem`` node of the Hydra config and ``experiment_config.yaml``.

Precedence (first wins): command-line override (``sem.storage=...``) > the ``sem:`` section
of ``<experiment>/experiment_config.yaml`` > the defaults below.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from sem_core.errors import ConfigError, warn

EXPERIMENT_CONFIG_NAME = "experiment_config.yaml"


@dataclass
class MongoConf:
    # mongodb:// URI naming the database; None = look in SEM_MONGO_URL and the config files
    url: Optional[str] = None


class CaptureMode(Enum):
    fd = "fd"  # file descriptors 1 and 2: also C extensions, os.system and child processes
    sys = "sys"  # sys.stdout/sys.stderr only (no file descriptors needed)


@dataclass
class SemConf:
    # run store; None = <models folder>/runs beside the model file
    storage: Optional[str] = None
    # seconds between heartbeats (run.json heartbeat time, metric and stdout flushes)
    heartbeat_interval: float = 10.0
    # how cout.txt captures the job's output: fd (everything written to stdout/stderr) or sys
    capture: CaptureMode = CaptureMode.fd
    # skip rows whose experiment_id already has a COMPLETED run of the same model file
    skip_completed: bool = False
    # "failed": only rows whose latest run failed; "missing": only rows never run; None: all
    rerun: Optional[str] = None
    # MongoDB connection (optional; sem works without a database)
    mongo: MongoConf = field(default_factory=MongoConf)


# Top-level sections of experiment_config.yaml and the keys each may hold.
# Cluster sections (any name) are recognised by their ``type`` key.
EXPERIMENT_SECTION_KEYS = {
    # the seed's settings, accepted for compatibility (sem always records config_id and never
    # overwrites a run); anything else in this section warns as unknown
    "experiment": {"use_config_id", "overwrite_id"},
    "sem": {f.name for f in fields(SemConf)},
}
# Sections owned by other parts of sem (each validates its own keys).
OTHER_SECTIONS = {"mongo", "dvc"}
CLUSTER_TYPES = {"local", "slurm"}


def experiment_dir_of(model_file: Path) -> Path:
    """The experiment folder: the parent of ``models/`` (or the model's own folder)."""
    models = Path(model_file).resolve().parent
    return models.parent if models.name == "models" else models


def read_yaml(path: Path | str) -> Any:
    """Load a YAML file; a syntax error names the file, line and column."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None


def load_experiment_config(experiment_dir: Path) -> dict:
    """Read ``experiment_config.yaml`` if present ({} if not); warn once per unknown key."""
    path = Path(experiment_dir) / EXPERIMENT_CONFIG_NAME
    if not path.exists():
        return {}
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level, got {type(data).__name__}")
    for section, value in data.items():
        if section in EXPERIMENT_SECTION_KEYS:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: section {section!r} must be a mapping, got {value!r}")
            unknown = sorted(set(value) - EXPERIMENT_SECTION_KEYS[section])
            for key in unknown:
                del value[key]  # warned and ignored: the rest of the section still applies
            if unknown:
                known = ", ".join(sorted(EXPERIMENT_SECTION_KEYS[section]))
                warn(f"{path}: unknown key(s) {unknown} in section {section!r} (known: {known})")
        elif section in OTHER_SECTIONS:
            continue
        elif isinstance(value, dict) and "type" in value:
            if value["type"] not in CLUSTER_TYPES:
                raise ConfigError(
                    f"{path}: cluster section {section!r} has type {value['type']!r}; "
                    f"use one of {sorted(CLUSTER_TYPES)}"
                )
            unused = sorted(set(value) - {"type"})
            if value["type"] == "local" and unused:
                # only type: slurm sections become launchers; a local section's keys would otherwise vanish
                warn(
                    f"{path}: section {section!r} (type: local): key(s) {unused} are not used; run locally with "
                    "hydra/launcher=local hydra.launcher.n_jobs=N on the command line"
                )
        else:
            known = sorted(set(EXPERIMENT_SECTION_KEYS) | OTHER_SECTIONS)
            warn(f"{path}: unknown section {section!r} (known: {known}, or a cluster section with a 'type' key)")
    return data


def cluster_sections(experiment_config: dict) -> dict[str, dict]:
    """The cluster sections (``name: {type: slurm|local, ...}``) of an experiment config."""
    return {k: v for k, v in experiment_config.items() if isinstance(v, dict) and "type" in v}
