"""sem's settings: the ``sem`` node of the Hydra config and ``experiment_config.yaml``.

Precedence (first wins): command-line override (``sem.storage=...``) > the ``sem:`` section
of ``<experiment>/experiment_config.yaml`` > the defaults below.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

from sem_core.errors import ConfigError, warn

EXPERIMENT_CONFIG_NAME = "experiment_config.yaml"


@dataclass
class MongoConf:
    # mongodb:// URI naming the database; None = look in SEM_MONGO_URL and the config files
    url: str | None = None


class CaptureMode(Enum):
    fd = "fd"  # file descriptors 1 and 2: also C extensions, os.system and child processes
    sys = "sys"  # sys.stdout/sys.stderr only (no file descriptors needed)


@dataclass
class SemConf:
    # run store; None = <models folder>/runs beside the model file
    storage: str | None = None
    # seconds between heartbeats (run.json heartbeat time, metric and stdout flushes)
    heartbeat_interval: float = 10.0
    # how cout.txt captures the job's output: fd (everything written to stdout/stderr) or sys
    capture: CaptureMode = CaptureMode.fd
    # skip rows whose experiment_id already has a COMPLETED run of the same model file
    skip_completed: bool = False
    # "failed": only rows whose latest run failed; "missing": only rows never run; None: all
    rerun: str | None = None
    # seconds without a heartbeat after which another sweep takes over a row's claim in
    # MongoDB (with skip_completed); None = 10 heartbeat intervals, at least 120 s
    claim_stale_after: float | None = None
    # MongoDB connection (optional; sem works without a database)
    mongo: MongoConf = field(default_factory=MongoConf)
    # sacred observers made in each job: ``{_target_: sacred.observers.SqlObserver, url: ...}``
    # entries (hydra.utils.instantiate); secret values stay out of Hydra's saved config
    observers: list[Any] = field(default_factory=list)


# sem's top-level sections of experiment_config.yaml and the keys each may hold. Every other
# top-level key belongs to the user (experiment_manager, the predecessor tool, keeps global
# settings there: NUM_FOLDS, epochs...) and is only read by their model files, except cluster
# sections (see ``cluster_type``).
EXPERIMENT_SECTION_KEYS = {
    # experiment_manager's settings: accepted, and sem says once what it does instead
    # (PREDECESSOR_SETTINGS_NOTE, shown once per file for good: experiment_manager's own template has
    # both keys, so every file written for it has them)
    "experiment": {"use_config_id", "overwrite_id"},
    "sem": {f.name for f in fields(SemConf)},
}
# Sections owned by other parts of sem (each validates its own keys).
OTHER_SECTIONS = {"mongo", "dvc"}
CLUSTER_TYPES = {"local", "slurm"}
# experiment_manager's cluster keys: a section holding one is a Slurm launcher preset even without `type:`.
PREDECESSOR_CLUSTER_KEYS = {"sif", "partition"}
PREDECESSOR_SETTINGS_NOTE = (
    "use_config_id and overwrite_id (section 'experiment') are experiment_manager's settings "
    "and change nothing in sem: every run records both experiment_id and config_id, and no run "
    "overwrites another (each run has its own folder; results take the newest run of a row; "
    "sem.skip_completed=true skips rows already completed; sem clean bins the older runs). "
    "This note is shown once per experiment_config.yaml"
)
# where sem remembers the notes it has shown for good (one hash a line)
NOTES_SHOWN_FILE = "sem/notes-shown"
# notes and warnings already given by this command (experiment_config.yaml is read by every
# command, once per model file of a sweep, and again in the processes `sem run` starts: each is
# said once). The environment carries them into those processes.
_said: set[str] = set()
SAID_ENV = "SEM_CONFIG_NOTES_SAID"


def say_once(message: str) -> None:
    """Warn with ``message`` unless this command (this process or the one that started it) did."""
    import hashlib
    import os

    key = hashlib.sha1(message.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    inherited = os.environ.get(SAID_ENV, "").split(",")
    if message in _said or key in inherited:
        return
    _said.add(message)
    os.environ[SAID_ENV] = ",".join([k for k in inherited if k] + [key])
    warn(message)


def say_once_for_good(message: str) -> None:
    """Warn with ``message`` the first time only, across commands (remembered in the user's cache
    folder). Where the cache cannot be written, it is said once per command instead."""
    import hashlib
    import os

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / NOTES_SHOWN_FILE
    key = hashlib.sha1(message.encode("utf-8", "surrogateescape")).hexdigest()
    try:
        shown = set(cache.read_text(encoding="utf-8").split()) if cache.exists() else set()
        if key in shown:
            return
        cache.parent.mkdir(parents=True, exist_ok=True)
        with open(cache, "a", encoding="utf-8") as fh:  # one short line: appends do not interleave
            fh.write(key + "\n")
    except OSError:
        pass
    say_once(message)


def did_you_mean(word: str, choices: Iterable[Any]) -> str:
    """`` (did you mean 'x'?)`` for a close spelling among ``choices`` (case ignored), else ''."""
    import difflib

    by_lower = {str(c).lower(): str(c) for c in choices}
    close = difflib.get_close_matches(str(word).lower(), list(by_lower), n=1, cutoff=0.75)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""


def cluster_type(section: Any) -> str | None:
    """``local`` or ``slurm`` for a cluster section of experiment_config.yaml, None for a
    section of the user's own. A section is a cluster section when its ``type`` is a cluster
    type, or when it holds one of experiment_manager's cluster keys (``sif``, ``partition``): then it is
    a Slurm preset unless it says ``type: local``."""
    if not isinstance(section, dict):
        return None
    kind = section.get("type")
    if kind in CLUSTER_TYPES:
        return kind
    if "type" not in section and PREDECESSOR_CLUSTER_KEYS & set(section):
        return "slurm"
    return None


# Longest heartbeat interval: a longer one is no heartbeat at all (and inf overflows the clock).
MAX_HEARTBEAT_S = 86400.0


def _check_storage(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        return "is not a folder path: give one path as text (or null for <models>/runs)"
    return None


def _check_heartbeat(value: Any) -> str | None:
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not (0 < number <= MAX_HEARTBEAT_S):  # also false for nan
        return f"must be a number of seconds above 0 and at most {MAX_HEARTBEAT_S:g} (default 10)"
    return None


def _check_choice(*choices: Any) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        value = value.value if isinstance(value, Enum) else value
        if value in choices and type(value) in {type(c) for c in choices}:  # True == 1: not a choice
            return None
        return f"must be one of {', '.join('null' if c is None else str(c).lower() for c in choices)}"

    return check


# sem.<key> -> why a value cannot be used (None: it can). Used for experiment_config.yaml (the
# message names the file) and again for the merged settings before a sweep (command line).
# A setting without an entry here is checked by OmegaConf's typing alone.
SEM_SETTING_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "storage": _check_storage,
    "heartbeat_interval": _check_heartbeat,
    "capture": _check_choice(*(m.value for m in CaptureMode)),
    "skip_completed": _check_choice(True, False),
    # rerun: checked where the sweep resumes (sem_core.resume), with its own message
}


def sem_setting_problem(key: str, value: Any) -> str | None:
    """Why ``value`` cannot be ``sem.<key>`` (to follow the value in a message), or None."""
    check = SEM_SETTING_CHECKS.get(key)
    return check(value) if check is not None else None


def experiment_dir_of(model_file: Path) -> Path:
    """The experiment folder: the parent of ``models/`` (or the model's own folder)."""
    models = Path(model_file).resolve().parent
    return models.parent if models.name == "models" else models


def read_yaml(path: Path | str) -> Any:
    """Load a YAML file; a syntax error, a key given twice in one mapping (YAML would keep the
    last silently) and text that is not UTF-8 name the file, line and column."""
    import yaml

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8"
        ) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None


def _unique_key_loader() -> type:
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        """yaml.safe_load's loader, refusing a key given twice in one mapping."""

        def construct_mapping(self, node, deep=False):  # type: ignore[no-untyped-def]
            if isinstance(node, yaml.MappingNode):
                first: dict = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue  # `<<: *base` then a key of its own: overriding is the point
                    key = self.construct_object(key_node, deep=True)
                    try:
                        seen = first.setdefault(key, key_node.start_mark)
                    except TypeError:
                        continue  # an unhashable key: SafeLoader's own error names it
                    if seen is not key_node.start_mark:
                        raise yaml.constructor.ConstructorError(
                            None,
                            None,
                            f"key {key!r} is given twice (first on line {seen.line + 1}); keep one",
                            key_node.start_mark,
                        )
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


_UniqueKeyLoader = _unique_key_loader()


def load_experiment_config(experiment_dir: Path) -> dict:
    """Read ``experiment_config.yaml`` if present ({} if not). An unknown key in ``sem:`` is an
    error; warns (once per process) about unknown keys in ``experiment:`` (experiment_manager's)
    and near misses of sem's section names; the user's own keys are theirs."""
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
            unknown = sorted(set(value) - EXPERIMENT_SECTION_KEYS[section], key=str)
            if section == "sem" and unknown:
                # sem's own section: a misspelt key would silently change what runs
                # (`skip_complete: true` re-running every completed row)
                key, names = unknown[0], EXPERIMENT_SECTION_KEYS[section]
                raise ConfigError(
                    f"{path}: section 'sem' key {key!r}: unknown key{did_you_mean(key, names)}; "
                    f"known keys: {', '.join(sorted(names))}"
                )
            for key in unknown:
                del value[key]  # warned and ignored: the rest of the section still applies
            if unknown:
                known = ", ".join(sorted(EXPERIMENT_SECTION_KEYS[section]))
                hints = "".join(did_you_mean(k, EXPERIMENT_SECTION_KEYS[section]) for k in unknown)
                say_once(f"{path}: unknown key(s) {unknown} in section {section!r}{hints} (known: {known})")
            if section == "experiment" and value:
                say_once_for_good(f"{path.resolve()}: {PREDECESSOR_SETTINGS_NOTE}")
            if section == "sem":
                for key, setting in value.items():
                    problem = sem_setting_problem(key, setting)
                    if problem:
                        raise ConfigError(f"{path}: section 'sem' key {key!r}: {setting!r:.80} {problem}")
        elif section in OTHER_SECTIONS:
            continue
        elif (
            isinstance(value, dict)
            and PREDECESSOR_CLUSTER_KEYS & set(value)
            and value.get("type", "slurm") not in CLUSTER_TYPES
        ):
            raise ConfigError(
                f"{path}: cluster section {section!r} has type {value['type']!r}; "
                f"use one of {sorted(CLUSTER_TYPES)} "
                "(or leave type out: a section with sif or partition is a Slurm preset)"
            )
        elif cluster_type(value) == "local":
            unused = sorted(set(value) - {"type"}, key=str)
            if unused:
                # only Slurm sections become launchers; a local section's keys would otherwise vanish
                say_once(
                    f"{path}: section {section!r} (type: local): key(s) {unused} are not used; run locally with "
                    "hydra/launcher=local hydra.launcher.n_jobs=N on the command line"
                )
        elif cluster_type(value) is None:
            # the user's own setting (NUM_FOLDS, epochs, training: {...}): theirs, unless it is a
            # near miss of one of sem's names
            hint = did_you_mean(section, set(EXPERIMENT_SECTION_KEYS) | OTHER_SECTIONS)
            if hint:
                say_once(
                    f"{path}: section {section!r} is not read by sem{hint}; a setting of your own may "
                    "keep this name (sem ignores it)"
                )
            elif (
                isinstance(value, dict)
                and isinstance(value.get("type"), str)
                and did_you_mean(value["type"], CLUSTER_TYPES)
            ):
                say_once(
                    f"{path}: section {section!r} has type {value['type']!r}, not a cluster type"
                    f"{did_you_mean(value['type'], CLUSTER_TYPES)}; as it is, the section is yours and sem ignores it"
                )
    return data


def cluster_sections(experiment_config: dict) -> dict[str, dict]:
    """The cluster sections of an experiment config (see ``cluster_type``)."""
    return {k: v for k, v in experiment_config.items() if cluster_type(v) is not None}
