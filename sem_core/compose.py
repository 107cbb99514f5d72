"""The OmegaConf side of rows: a schema or a Hydra config tree in the primary config, each job's
row node, what the record keeps and what ``main`` receives.

Three kinds of model file (``sem_core.schema`` and ``sem_core.groups`` check their rows at
planning, without OmegaConf):

- plain rows: the job's config is the row, as before;
- ``schema=MyConf``: the primary config holds the schema's typed fields, each job's row is merged
  onto them, so OmegaConf fills in defaults and enforces types;
- ``config_path=``/``config_name=``: the primary config includes the user's config tree; a
  row's group choices become ``override`` entries in its node's defaults list, so Hydra composes
  the job's config from them, and its other keys are set after composition.

A job's node is merged last (package ``_global_``) onto the primary config, by Hydra's composition
or by copy-and-merge (``job_config``). ``config.json`` holds the row as written (the ids hash
it) and, when the job's config differs from it, that config under ``composed``.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import typing
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from omegaconf import DictConfig, OmegaConf

from sem_core import ids
from sem_core.errors import ConfigError
from sem_core.groups import ConfigGroups, nest_keys, split_row

# where config.json keeps the job's config when it differs from the row (defaults filled in by
# a schema, or composed from config groups)
COMPOSED_KEY = ids.COMPOSED_KEY
# config groups that belong to Hydra or sem, never chosen by a row
_OWN_GROUPS = ("hydra", "sem_row")


def escape_interpolations(value: Any) -> Any:
    """Row strings are data: ``${...}`` in them must not be resolved by OmegaConf."""
    if isinstance(value, str):
        return value.replace("${", "\\${")
    if isinstance(value, dict):
        return {k: escape_interpolations(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape_interpolations(v) for v in value]
    return value


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


def config_groups(config_dir: Path, config_name: str) -> ConfigGroups:
    """The config groups reachable from ``config_dir`` (and Hydra's ConfigStore) with their
    options, and the groups ``config_name``'s defaults list chooses."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.core.object_type import ObjectType
    from hydra.errors import HydraException
    from hydra.types import RunMode

    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(config_dir)))
    options: dict[str, tuple[str, ...]] = {}

    def walk(parent: str) -> None:
        for name in loader.list_groups(parent):
            path = f"{parent}/{name}" if parent else name
            if path in _OWN_GROUPS:
                continue
            found = loader.get_group_options(path, results_filter=ObjectType.CONFIG)
            if found:
                options[path] = tuple(sorted(found))
            walk(path)

    walk("")
    try:
        chosen = loader.compute_defaults_list(config_name, [], RunMode.RUN).overrides.known_choices
    except HydraException as exc:
        raise ConfigError(f"{config_dir}: cannot read config {config_name!r}: {exc}") from None
    return ConfigGroups(options=options, in_defaults=frozenset(g for g in chosen if g in options))


def row_config(record: Mapping[str, Any], groups: Optional[ConfigGroups] = None) -> dict:
    """The plain data of a job's row node: the row (and its ids) for plain and schema rows; for
    a config tree, the other keys nested by their dots and the choices as defaults entries."""
    if groups is None:
        return escape_interpolations(dict(record))
    choices, values = split_row(ids.user_keys(record), groups)
    node = nest_keys(escape_interpolations(values))
    node.update({k: record[k] for k in ids.ID_KEYS if k in record})
    added = [{f"/{g}": o} for g, o in choices.items() if g not in groups.in_defaults]
    overridden = [{f"override /{g}": o} for g, o in choices.items() if g in groups.in_defaults]
    if added or overridden:
        # Hydra wants added entries, then _self_, then overrides; the row's keys still win:
        # this node comes last in the primary config's defaults list
        node["defaults"] = [*added, "_self_", *overridden]
    return node


def row_node(record: Mapping[str, Any], groups: Optional[ConfigGroups] = None) -> DictConfig:
    """``row_config`` as the DictConfig Hydra merges (package ``_global_``) for the job."""
    return OmegaConf.create(row_config(record, groups))


def job_config(base: DictConfig, record: Mapping[str, Any], groups: Optional[ConfigGroups] = None) -> Optional[DictConfig]:
    """The job's config derived from the sweep's composed primary config ``base``: a copy with
    the row merged on (a schema's typed nodes fill in defaults and check types). None when the
    row chooses config-group options: then only Hydra's full composition builds it."""
    if groups is not None and any(k in groups.options for k in record):
        return None
    config = copy.deepcopy(base)
    with _open_struct(config):
        config.merge_with(row_node(record))
    return config


class _open_struct:
    """Hydra's composed config is in struct mode; the row adds keys to it."""

    def __init__(self, config: DictConfig) -> None:
        self.config = config
        self.was = OmegaConf.is_struct(config)

    def __enter__(self) -> DictConfig:
        OmegaConf.set_struct(self.config, False)
        return self.config

    def __exit__(self, *exc: Any) -> None:
        OmegaConf.set_struct(self.config, self.was)


def job_values(config: DictConfig) -> dict:
    """The job's config as plain data, without ``hydra`` and ``sem``. (Converting only these
    keys: resolving the whole ``hydra`` node costs more than a short job.)"""
    row = {}
    for key in config:
        if key in ("hydra", "sem"):
            continue
        value = config[key]
        if OmegaConf.is_config(value):
            row[key] = OmegaConf.to_container(value, resolve=True, enum_to_str=True)
        else:
            row[key] = value.name if isinstance(value, enum.Enum) else value
    return row


def record_config(record: Optional[Mapping[str, Any]], values: dict) -> dict:
    """What ``config.json`` holds: the row as written with its ids (``record``, the planned
    row) and, when the job's config differs from that row, the job's config under ``composed``.
    ``values``: the job's config as plain data (``job_values``)."""
    if record is None:
        return values
    composed = ids.user_keys(values)
    if composed == ids.user_keys(record):
        return values
    return {**record, COMPOSED_KEY: composed}


def main_config(config: Mapping[str, Any]) -> dict:
    """What ``main`` receives as a dict: the job's config (composed, or the row) with the ids.
    A new dict: main may change it."""
    if COMPOSED_KEY not in config:
        return copy.deepcopy(dict(config))
    out = copy.deepcopy(dict(config[COMPOSED_KEY]))
    out.update({k: config[k] for k in ids.ID_KEYS if k in config})
    return out


def main_argument(main_fn: Callable[..., Any], config: dict, schema: Optional[type]) -> Any:
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


def check_layout(schema: Optional[type], config_path: Optional[str], config_name: Optional[str],
                 where: Path) -> Optional[Path]:
    """The absolute config folder of a model file (None without a config tree); a ConfigError for
    settings that cannot work together."""
    if config_path is None and config_name is None:
        return None
    if schema is not None:
        raise ConfigError(f"{where}: give schema= or config_path=/config_name=, not both (a config tree "
                          "carries its own structured configs in its defaults lists)")
    if config_path is None or config_name is None:
        raise ConfigError(f"{where}: config_path= and config_name= go together "
                          "(e.g. Experiment(__file__, config_path='conf', config_name='config'))")
    folder = Path(config_path)
    folder = folder if folder.is_absolute() else where.parent / folder
    if not folder.is_dir():
        raise ConfigError(f"{where}: config_path={config_path!r}: no folder {folder}")
    return folder.resolve()
