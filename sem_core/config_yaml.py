"""Configs written as YAML files, as Hydra saves them (a job's ``.hydra/``, a sweep's
``multirun.yaml``): ``OmegaConf.to_yaml``'s data, emitted by libyaml when PyYAML has it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf._utils import OmegaConfDumper


class _LibYamlDumper(getattr(yaml, "CDumper", yaml.Dumper)):  # type: ignore[misc]
    """OmegaConf's YAML dumper (its quoting of strings that read as numbers or booleans) on
    libyaml's emitter: the same data as ``OmegaConf.to_yaml``, long strings folded at other
    places, in a quarter of the time."""


_LibYamlDumper.add_representer(str, OmegaConfDumper.str_representer)


def config_yaml(cfg: Any) -> str:
    """``OmegaConf.to_yaml(cfg)``'s data (interpolations kept, keys in order)."""
    return yaml_text(OmegaConf.to_container(cfg, resolve=False, enum_to_str=True))


def yaml_text(container: Any) -> str:
    """A config's plain data (``OmegaConf.to_container``) as ``OmegaConf.to_yaml`` writes it."""
    return yaml.dump(container, Dumper=_LibYamlDumper, default_flow_style=False, allow_unicode=True, sort_keys=False)


def write_yaml(cfg: Any, path: Path) -> None:
    """``cfg`` written to ``path`` as Hydra's ``_save_config`` writes it."""
    write_text(path, config_yaml(cfg))


def write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
