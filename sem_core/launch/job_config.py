"""Each job's config, composed once per sweep and derived per job by copy and set.

Hydra composes every job of a sweep from scratch (``ConfigLoader.load_sweep_config``:
defaults list, config sources, merges, deep copies), which was about two thirds of a short
job's time. The jobs of a sem sweep differ in one thing: the row, one ConfigStore option
chosen by the job's last override (``+sem_row=j<k>``, package ``_global_``). So the config
of everything but the row is composed once, and each job's config is a copy of it with the
row merged on top and the few ``hydra.*`` fields Hydra derives from a job's overrides set
(``overrides.task``, ``runtime.choices``, ``job.override_dirname``): what Hydra would
have composed, in a fraction of the time.

Anything else is composed by Hydra as before: overrides that choose config-group options per
job, an option with a defaults list, an override of a key the row also sets, any other Hydra
app. The first job of a sweep is composed by Hydra; when a second comes, the template is
checked once against that first composition (its YAML: keys in order, interpolations
unresolved), and if they differ every job of the sweep is composed by Hydra.
Relies on the ConfigStore's repository layout (``repo[group][name.yaml] = ConfigNode``), as
``sem_core.row_store`` does.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from hydra._internal.config_loader_impl import get_overrides_dirname
from hydra.core.config_store import ConfigNode, ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, Node, OmegaConf, open_dict

from sem_core.config_yaml import yaml_text

log = logging.getLogger(__name__)

# `+group=option`: appending one option of a group, no package, no sweep, no quoting
_APPENDED_OPTION = re.compile(r"^\+(?P<group>[A-Za-z_][\w/-]*)=(?P<option>[\w.-]+)$")


class _Base:
    """The composition shared by the jobs whose overrides start with the same ``common`` list."""

    def __init__(self, config: DictConfig, common: Sequence[Override]) -> None:
        self.config = config
        self.app_overrides = [ov for ov in common if not ov.is_hydra_override()]
        # top-level keys the common overrides may set: an option that also sets one would be
        # overridden in Hydra's order, not in ours
        self.touched = {ov.key_or_group.split("/")[0].split(".")[0] for ov in self.app_overrides}
        self.usable = False  # the config it derives is the one Hydra composes (checked once)
        # the YAML of each part of ``hydra`` its jobs share (see JobConfigs.hydra_yaml); None: not
        # known yet, {}: write each job's whole
        self.hydra_blocks: dict[str, str] | None = None


@dataclass
class _FirstJob:
    """What Hydra composed for the first job of some common overrides: the reference the
    template is checked against when a second job comes (a one-job sweep composes once)."""

    yaml: str
    choices: list[str]  # the order in which Hydra lists the group choices
    text: str  # the job's last override, ``+group=option``
    group: str
    option: str


class JobConfigs:
    """The configs of the jobs of one sweep (``master``: the sweep's config, as Hydra hands it
    to a launcher). ``for_job`` returns a config no other job shares."""

    def __init__(self, config_loader: Any, master: DictConfig, derive: bool = True) -> None:
        self.loader = config_loader
        self.master = master
        self.derive = derive
        self.parser = OverridesParser.create()
        self._bases: dict[tuple[str, ...], _Base] = {}
        self._first_jobs: dict[tuple[str, ...], _FirstJob] = {}
        self._last: tuple[DictConfig, _Base] | None = None  # the config derived last, and its base

    def for_job(self, overrides: Sequence[str]) -> DictConfig:
        overrides = list(overrides)
        derived = self._derive(overrides) if self.derive else None
        return derived if derived is not None else self.compose(overrides)

    def compose(self, overrides: Sequence[str]) -> DictConfig:
        """Hydra's own composition of one job's config."""
        return self.loader.load_sweep_config(self.master, list(overrides))

    # -- derivation ----------------------------------------------------------------------
    def _derive(self, overrides: list[str]) -> DictConfig | None:
        if not overrides:
            return None
        match = _APPENDED_OPTION.match(overrides[-1])
        if match is None:
            return None
        group, option = match["group"], match["option"]
        node = _global_option(group, option)
        if node is None:
            return None
        common = tuple(overrides[:-1])
        base = self._bases.get(common)
        if base is None:
            first = self._first_jobs.pop(common, None)
            if first is None:
                composed = self.compose(overrides)
                self._first_jobs[common] = _FirstJob(
                    OmegaConf.to_yaml(composed), list(composed.hydra.runtime.choices), overrides[-1], group, option
                )
                return composed
            base = self._bases[common] = self._checked_base(common, first)
        if not base.usable or base.touched.intersection(node.keys()):
            return None
        config = self._derived(base, node, overrides[-1], group, option)
        self._last = (config, base)
        return config

    def hydra_yaml(self, config: DictConfig) -> str:
        """The YAML of ``config``'s ``hydra`` node, as ``.hydra/hydra.yaml`` holds it. The parts
        every job of a derived config's base shares are turned into YAML once, the parts that
        differ per job (``PER_JOB_HYDRA``) for each job: the same text, a fifth of the time."""
        base = self._last[1] if self._last is not None and self._last[0] is config else None
        blocks = base.hydra_blocks if base is not None else None
        if blocks and blocks.keys() == set(config.hydra):
            return "hydra:\n" + "".join(
                _hydra_block(key, OmegaConf.to_container(config.hydra[key], resolve=False, enum_to_str=True))
                if key in PER_JOB_HYDRA
                else blocks[key]
                for key in blocks
            )
        hydra = cast(dict, OmegaConf.to_container(config.hydra, resolve=False, enum_to_str=True))
        text = yaml_text({"hydra": hydra})
        if base is not None and base.hydra_blocks is None:
            blocks = {str(key): _hydra_block(str(key), value) for key, value in hydra.items()}
            # the same text, or each job's whole YAML from now on
            base.hydra_blocks = blocks if "hydra:\n" + "".join(blocks.values()) == text else {}
        return text

    def _checked_base(self, common: tuple[str, ...], first: _FirstJob) -> _Base:
        """The template of the jobs whose overrides start with ``common``, usable only if the
        config it derives for the first job is the one Hydra composed for it."""
        if len(self._bases) >= 8:  # a launcher sees one common list per sweep; stay bounded
            self._bases.clear()
        base = _Base(self.compose(common), self.parser.parse_overrides(list(common)))
        node = _global_option(first.group, first.option)
        if node is None or set(first.choices) != set(base.config.hydra.runtime.choices) | {first.group}:
            return base
        choices = base.config.hydra.runtime.choices
        with open_dict(base.config.hydra):  # the group's choice where Hydra lists it
            base.config.hydra.runtime.choices = {key: choices.get(key, first.option) for key in first.choices}
        derived = self._derived(base, node, first.text, first.group, first.option)
        base.usable = not base.touched.intersection(node.keys()) and OmegaConf.to_yaml(derived) == first.yaml
        if not base.usable:
            log.debug("a derived job config differs from Hydra's composition: Hydra composes every job")
        return base

    def _derived(self, base: _Base, node: DictConfig, text: str, group: str, option: str) -> DictConfig:
        config = copy_config(base.config)
        with open_dict(config):  # Hydra merges options before it closes the root (struct mode)
            config.merge_with(node)
        hydra = config.hydra
        hydra.overrides.task.append(text)
        with open_dict(hydra):
            hydra.runtime.choices[group] = option
        dirname = hydra.job.config.override_dirname
        hydra.job.override_dirname = get_overrides_dirname(
            overrides=base.app_overrides + self.parser.parse_overrides([text]),
            kv_sep=dirname.kv_sep,
            item_sep=dirname.item_sep,
            exclude_keys=dirname.exclude_keys,
        )
        OmegaConf.copy_cache(from_config=self.master, to_config=config)
        return config


# the parts of ``hydra`` set for each job: by the derivation (overrides.task, runtime.choices,
# job.override_dirname), the launcher (job.num, job.id) and run_job (runtime.output_dir)
PER_JOB_HYDRA = frozenset(("job", "runtime", "overrides"))


def _hydra_block(key: str, value: Any) -> str:
    """The lines of ``hydra.<key>`` in the YAML of a whole ``hydra`` node (block style: each key's
    lines depend on nothing but its own value)."""
    return yaml_text({"hydra": {key: value}}).split("\n", 1)[1]


def copy_config(config: DictConfig) -> DictConfig:
    """``copy.deepcopy(config)`` as OmegaConf defines it (every node and its metadata copied,
    the values shared, the root's parent kept), built directly instead of through
    ``copy.deepcopy``'s generic machinery, which took four fifths of deriving a job's config."""
    copied = _copy_node(config, config.__dict__["_parent"])
    assert isinstance(copied, DictConfig)
    return copied


def _copy_node(node: Node, parent: Any) -> Node:
    copied = object.__new__(type(node))
    fields = copied.__dict__
    fields.update(node.__dict__)  # a value node's value and its other fields (an EnumNode's type), shared
    metadata = node.__dict__["_metadata"]
    metadata_copy = object.__new__(type(metadata))
    metadata_copy.__dict__.update(metadata.__dict__)
    if metadata.flags is not None:
        metadata_copy.flags = dict(metadata.flags)
    metadata_copy.resolver_cache = (
        copy.deepcopy(metadata.resolver_cache) if metadata.resolver_cache else type(metadata.resolver_cache)(dict)
    )
    fields["_metadata"] = metadata_copy
    fields["_parent"] = parent
    fields["_flags_cache"] = None  # recomputed on demand from the flags, as after any change of parent
    content = fields.get("_content")
    if isinstance(content, dict):
        fields["_content"] = {key: _copy_node(child, copied) for key, child in content.items()}
    elif isinstance(content, list):
        fields["_content"] = [_copy_node(child, copied) for child in content]
    return copied


def _global_option(group: str, option: str) -> DictConfig | None:
    """A copy of ConfigStore option ``group/option`` if it merges at the root as it is: package
    ``_global_`` and no defaults list of its own; None otherwise."""
    folder: Any = ConfigStore.instance().repo
    for part in group.split("/"):
        folder = folder.get(part) if isinstance(folder, dict) else None
    entry = folder.get(f"{option}.yaml") if isinstance(folder, dict) else None
    if not isinstance(entry, ConfigNode) or entry.package != "_global_":
        return None
    node = ConfigStore.instance().load(f"{group}/{option}.yaml").node  # a copy: the stored entry stays as it is
    if not isinstance(node, DictConfig) or "defaults" in node:
        return None
    return node
