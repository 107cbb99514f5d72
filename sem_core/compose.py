"""The OmegaConf side of rows: a schema or a Hydra config tree in the primary config, each job's
row node, what the record keeps and what ``main`` receives.

Three kinds of model file (``sem_core.schema`` and ``sem_core.groups`` check their rows at
planning, without OmegaConf):

- plain rows: the job's config is the row, as before;
- ``schema=MyConf``: the primary config holds the schema's typed fields, each job's row is merged
  onto them, so OmegaConf fills in defaults and enforces types;
- ``config_path=``/``config_name=``: the primary config includes the user's config tree; a
  row's group choices become the job's overrides (``model=mlp``, as typed on Hydra's command
  line), so Hydra composes the job's config from them, and its other keys are set after
  composition by its node.

A job's node is merged last (package ``_global_``) onto the primary config, by Hydra's composition
or by copy-and-merge (``sem_core.launch.job_config``: jobs with the same choices share one
composition). ``config.json`` holds the row as written (the ids hash it) and the job's config
under ``composed``.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sem_core import ids
from sem_core.errors import ConfigError
from sem_core.groups import ConfigGroups, check_rows, choice_overrides, nest_keys, split_row
from sem_core.nested import map_strings

# where config.json keeps the job's config (defaults filled in by a schema, or composed from
# config groups)
COMPOSED_KEY = ids.COMPOSED_KEY
# config groups that belong to Hydra or sem, never chosen by a row
_OWN_GROUPS = ("hydra", "sem_row")


# `${` and the backslashes right before it: OmegaConf reads `\\` there as one backslash
_INTERPOLATION_START = re.compile(r"(\\*)\$\{")


def escape_interpolations(value: Any) -> Any:
    """Row strings are data: ``${...}`` in them must not be resolved by OmegaConf (the
    backslashes before it are doubled, so they stay as written)."""
    return map_strings(value, lambda text: _INTERPOLATION_START.sub(lambda m: m.group(1) * 2 + "\\${", text))


def schema_node(schema: type) -> DictConfig:
    """The schema's fields as typed nodes under an untyped root: the primary config also holds
    ``hydra``, ``sem`` and the ids, which a dataclass root would refuse."""
    try:
        typed = OmegaConf.structured(schema)
    except Exception as exc:  # a field type OmegaConf does not support
        raise ConfigError(f"schema {schema.__name__}: OmegaConf cannot build a config from it: {exc}") from None
    root = OmegaConf.create({})
    for key in typed:
        root[key] = typed._get_node(key)
    return root


class GroupComposer:
    """A model file's config tree: its groups with their options, and the Hydra overrides that
    compose a row's choices (``model=mlp model/activation=tanh``, ``+data=x`` for a group the
    defaults tree does not choose). Each distinct set of choices is composed once at planning
    (a defaults list, about 50 ms), so a bad one stops the sweep before any job."""

    def __init__(self, config_dir: Path, config_name: str) -> None:
        if not config_dir.is_dir():
            raise ConfigError(f"config_path: no folder {config_dir} (it is taken relative to the model file)")
        self.config_dir = config_dir
        self.config_name = config_name
        self._loader: Any = None
        self.groups = ConfigGroups(options=self._read_options())
        # the overrides of each distinct set of choices (in row order), once composed
        self._overrides: dict[tuple, list[str]] = {}
        try:
            self.overrides({})  # the primary config itself composes
        except ChoiceError as exc:
            raise ConfigError(f"{config_dir}: config_name={config_name!r}: {exc}") from None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_loader": None}  # rebuilt where needed; the rest is plain data

    @property
    def loader(self) -> Any:
        if self._loader is None:
            from hydra._internal.config_loader_impl import ConfigLoaderImpl
            from hydra._internal.utils import create_config_search_path

            self._loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(self.config_dir)))
        return self._loader

    def _read_options(self) -> dict[str, tuple[str, ...]]:
        from hydra.core.object_type import ObjectType

        options: dict[str, tuple[str, ...]] = {}

        def walk(parent: str) -> None:
            for name in self.loader.list_groups(parent):
                path = f"{parent}/{name}" if parent else name
                if path in _OWN_GROUPS:
                    continue
                found = self.loader.get_group_options(path, results_filter=ObjectType.CONFIG)
                if found:
                    options[path] = tuple(sorted(found))
                walk(path)

        walk("")
        return options

    def overrides(self, row: Mapping[str, Any]) -> list[str]:
        """The Hydra overrides composing ``row``'s group choices (a checked row)."""
        choices, _ = split_row(row, self.groups)
        key = tuple(choices.items())
        found = self._overrides.get(key)
        if found is None:
            found = self._overrides[key] = self._compose(choices)
        return found

    def _compose(self, choices: dict) -> list[str]:
        from hydra.errors import ConfigCompositionException, HydraException
        from hydra.types import RunMode

        appended: set[str] = set()
        while True:
            texts = choice_overrides(choices, appended)
            try:
                self.loader.compute_defaults_list(self.config_name, texts, RunMode.RUN)
                return texts
            except ConfigCompositionException as exc:
                # Hydra: "Could not override 'G'. No match in the defaults list.": append G instead
                group = next(
                    (g for g in choices if g not in appended and f"Could not override '{g}'" in str(exc)), None
                )
                if group is None:
                    raise ChoiceError(" ".join(texts), str(exc)) from None
                appended.add(group)
            except HydraException as exc:
                raise ChoiceError(" ".join(texts), str(exc)) from None

    def check(self, jobs: Iterable[Any], source: str) -> None:
        """Every planned row's choices are options of their groups and compose: one
        ``ConfigError`` naming the file, the row, and the options or Hydra's reason."""
        jobs = list(jobs)
        check_rows(jobs, self.groups, source)
        for job in jobs:
            try:
                self.overrides(job.row)
            except ChoiceError as exc:
                raise ConfigError(f"{source} row order_id={job.order_id}: {exc}") from None


class ChoiceError(ValueError):
    """A row's choices do not compose (Hydra's reason, in one line)."""

    def __init__(self, overrides: str, reason: str) -> None:
        first = " ".join(line.strip() for line in reason.strip().splitlines() if line.strip())
        super().__init__(f"Hydra cannot compose {overrides or 'it'}: {first}")


def row_config(record: Mapping[str, Any], groups: ConfigGroups | None = None) -> dict:
    """The plain data of a job's row node: the row (and its ids) for plain and schema rows; for
    a config tree, the keys that are not group choices, nested by their dots (the choices are
    the job's overrides, ``GroupComposer.overrides``)."""
    if groups is None:
        return escape_interpolations(dict(record))
    _, values = split_row(ids.user_keys(record), groups)
    node = nest_keys(escape_interpolations(values))
    node.update({k: record[k] for k in ids.ID_KEYS if k in record})
    return node


def row_node(record: Mapping[str, Any], groups: ConfigGroups | None = None) -> DictConfig:
    """``row_config`` as the DictConfig Hydra merges (package ``_global_``) for the job."""
    return OmegaConf.create(row_config(record, groups))


def record_config(record: Mapping[str, Any] | None, values: dict) -> dict:
    """What ``config.json`` holds for a model file with a schema or a config tree: the row as
    written with its ids (``record``, the planned row) and the job's config under ``composed``
    (in every run, so results tables have the same columns for all). ``values``: the job's
    config as plain data (``sem_core.callback.job_row_of``); alone when the row is unknown."""
    if record is None:
        return values
    return {**record, COMPOSED_KEY: ids.user_keys(values)}


def main_config(config: Mapping[str, Any]) -> dict:
    """What ``main`` receives as a dict: the job's config (composed, or the row) with the ids.
    A new dict: main may change it."""
    if COMPOSED_KEY not in config:
        return copy.deepcopy(dict(config))
    out = copy.deepcopy(dict(config[COMPOSED_KEY]))
    out.update({k: config[k] for k in ids.ID_KEYS if k in config})
    return out


def main_argument(main_fn: Callable[..., Any], config: dict, schema: type | None) -> Any:
    """``main``'s argument, chosen by the annotation of its first parameter: the schema
    dataclass (or any dataclass) -> an instance built by OmegaConf (``OmegaConf.to_object``;
    the ids stay on ``ex.current_run.config``); ``DictConfig`` -> an OmegaConf config of the
    dict; anything else -> the dict."""
    wanted = first_parameter_type(main_fn)
    if wanted is None or wanted is dict or wanted is Any:
        return config
    if wanted is DictConfig:
        return OmegaConf.create(escape_interpolations(config))
    if dataclasses.is_dataclass(wanted) and isinstance(wanted, type):
        fields = {f.name for f in dataclasses.fields(wanted)}
        values = {k: v for k, v in config.items() if k in fields}
        typed = OmegaConf.merge(OmegaConf.structured(wanted), escape_interpolations(values))
        return OmegaConf.to_object(typed)
    return config


def first_parameter_type(fn: Callable[..., Any]) -> Any:
    """The resolved annotation of ``fn``'s first parameter, or None."""
    import inspect

    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if not params or params[0].annotation is inspect.Parameter.empty:
        return None
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        return None  # an annotation that does not resolve: main gets the dict, as without one
    return hints.get(params[0].name)
