"""Rows that choose Hydra config-group options (pure: no Hydra, no I/O).

With ``Experiment(__file__, config_path="conf", config_name="config")`` a row is what a Hydra
user types as overrides, written as a dict: ``{"model": "resnet", "optimizer": "adam",
"optimizer.lr": 0.01, "fold": 2}``.

- A key naming a config group of the tree (``model``, or ``model/encoder`` for a nested group)
  chooses one of its options; Hydra composes the job's config from those choices.
- Every other key is a dotted path into the composed config (``optimizer.lr``), set after
  composition; a key the tree does not have is added (``fold``).
- The ids hash the row as written, so they depend on the choices, not on the contents of
  the chosen files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sem_core.errors import ConfigError
from sem_core.plan import PlannedJob


@dataclass(frozen=True)
class ConfigGroups:
    """The config groups of a Hydra config tree (``sem_core.compose.GroupComposer`` reads them)."""

    options: Mapping[str, tuple[str, ...]]  # group path -> its options, sorted


def split_row(row: Mapping[str, Any], groups: ConfigGroups) -> tuple[dict, dict]:
    """``(choices, values)``: the row's group choices and its other keys, in row order."""
    choices = {k: v for k, v in row.items() if k in groups.options}
    values = {k: v for k, v in row.items() if k not in groups.options}
    return choices, values


def choice_problem(group: str, option: Any, groups: ConfigGroups) -> str | None:
    """Why ``group=option`` cannot be composed, or None."""
    available = groups.options[group]
    listed = ", ".join(available) or "none"
    if not isinstance(option, str):
        return (
            f"key {group!r} is a config group, so its value is the name of one of its options "
            f"({listed}), not {option!r:.80}; set a key inside it as '{group.replace('/', '.')}.KEY'"
        )
    if option not in available:
        return f"{group}={option!r} is not an option of the config group {group!r} (options: {listed})"
    return None


def check_rows(jobs: Iterable[PlannedJob], groups: ConfigGroups, source: str) -> None:
    """One ``ConfigError`` for the first row choosing an option its group does not have (or
    two values for one key path), naming the file, the row, the group and its options."""
    for job in jobs:
        choices, values = split_row(job.row, groups)
        for group, option in choices.items():
            problem = choice_problem(group, option, groups)
            if problem:
                raise ConfigError(f"{source} row order_id={job.order_id}: {problem}")
        try:
            nest_keys(values)
        except ValueError as exc:
            raise ConfigError(f"{source} row order_id={job.order_id}: {exc}") from None


def nest_keys(values: Mapping[str, Any]) -> dict:
    """Dotted keys as nested dicts: ``{"optimizer.lr": 0.1}`` -> ``{"optimizer": {"lr": 0.1}}``.
    ValueError when two keys set the same path (``a.b`` and ``a: {b: ...}``)."""
    out: dict = {}
    for key, value in values.items():
        parts = key.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"keys {'.'.join(parts[: i + 1])!r} and {key!r} both set {'.'.join(parts[: i + 1])!r}")
            node = child
        last = parts[-1]
        if last in node:
            if isinstance(node[last], dict) and isinstance(value, dict):
                _merge_into(node[last], value, key)
                continue
            raise ValueError(f"two keys of the row set {key!r}; keep one")
        node[last] = value
    return out


def _merge_into(target: dict, more: Mapping[str, Any], where: str) -> None:
    for k, v in more.items():
        if k in target and isinstance(target[k], dict) and isinstance(v, dict):
            _merge_into(target[k], v, f"{where}.{k}")
        elif k in target:
            raise ValueError(f"two keys of the row set {where + '.' + k!r}; keep one")
        else:
            target[k] = v


# an option name Hydra's override grammar takes unquoted
_PLAIN_OPTION = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_GRAMMAR_WORDS = {"true", "false", "null", "nan", "inf"}


def _quoted(text: str) -> str:
    """``text`` in single quotes as Hydra's override grammar reads it: a quote is escaped, and
    backslashes only where they come before a quote or the closing quote."""
    text = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text)
    text = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, text)
    return f"'{text}'"


def choice_overrides(choices: Mapping[str, str], appended: Iterable[str] = ()) -> list[str]:
    """The Hydra overrides composing a row's choices, as typed on Hydra's command line:
    ``model=resnet``, or ``+data=imagenet`` for a group in ``appended`` (one the defaults tree
    does not choose)."""
    appended = set(appended)
    out = []
    for group, option in choices.items():
        plain = _PLAIN_OPTION.fullmatch(option) and option.lower() not in _GRAMMAR_WORDS
        value = option if plain else _quoted(option)
        out.append(f"{'+' if group in appended else ''}{group}={value}")
    return out


def config_folder(schema: type | None, config_path: str | None, config_name: str | None, where: Path) -> Path | None:
    """The absolute config folder of a model file (``where``), from ``config_path`` relative to
    it, as Hydra takes it (None without a config tree); a ConfigError for settings that cannot
    work together."""
    if config_path is None and config_name is None:
        return None
    if schema is not None:
        raise ConfigError(
            f"{where}: give schema= or config_path=/config_name=, not both (a config tree "
            "carries its own structured configs in its defaults lists)"
        )
    if config_path is None or config_name is None:
        raise ConfigError(
            f"{where}: config_path= and config_name= go together "
            "(e.g. Experiment(__file__, config_path='conf', config_name='config'))"
        )
    folder = Path(config_path)
    return folder if folder.is_absolute() else where.parent / folder
