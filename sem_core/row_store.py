"""The planned rows of a sweep in Hydra's ConfigStore, one option per job.

Each planned row is registered as a ConfigStore option ``sem_row/j<k>`` (package
``_global_``) and the job's only row override is ``+sem_row=j<k>``: values never go through
override strings (no quoting or type mangling), and Hydra composes the row like any config.
Jobs are not composed up front (BasicSweeper does, ~10-100 ms per job, hydra #1324).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

from hydra.core.config_store import ConfigNode
from omegaconf import DictConfig

from sem_core import ids
from sem_core.compose import row_node
from sem_core.groups import ConfigGroups

ROW_GROUP = "sem_row"


class _RowNode(ConfigNode):
    """A ConfigStore entry whose DictConfig is built when Hydra first loads it.

    ``ConfigStore.store`` converts every node to a DictConfig up front, which for a large sweep
    delays the first job by seconds (benchmarks/bench_plan.py measures eager against lazy rows;
    docs/performance.md shows it). Rows are built lazily instead, so a
    job composes only its own row; pickling the store (submitit, spawn) sends plain dicts,
    and ``job_row`` reads ``record`` without composing anything.
    Relies on ConfigStore's repository layout (``repo[group][name.yaml] = ConfigNode``),
    stable across hydra-core 1.3.x (pinned in setup.cfg).
    """

    def __init__(
        self, name: str, record: dict, group: str, groups: ConfigGroups | None = None
    ) -> None:  # dataclass fields set by hand
        self.name = name
        self.group = group
        self.package = "_global_"
        self.provider = "sem"
        self.record = record  # the planned row with its ids, as planned
        self.groups = groups  # the config tree's groups, when the row chooses their options
        self._node: DictConfig | None = None

    @property
    def node(self) -> DictConfig:
        if self._node is None:
            self._node = row_node(self.record, self.groups)
        return self._node

    @node.setter
    def node(self, value: DictConfig) -> None:
        self._node = value


def register_rows(records_: Sequence[dict], first_index: int = 0, groups: ConfigGroups | None = None) -> list[str]:
    """Store each row as ``sem_row/j<k>``; return the job override for each. ``groups``: the
    config tree's groups, whose options the rows choose (``sem_core.compose.row_config``)."""
    from hydra.core.config_store import ConfigStore

    group = ConfigStore.instance().repo.setdefault(ROW_GROUP, {})
    overrides = []
    for k, record in enumerate(records_, start=first_index):
        name = f"j{k}"
        group[f"{name}.yaml"] = _RowNode(f"{name}.yaml", record, ROW_GROUP, groups)
        overrides.append(f"+{ROW_GROUP}={name}")
    return overrides


def job_overrides(planned: Sequence[dict], experiment: Any, first_index: int = 0) -> list[list[str]]:
    """Register the planned rows (``register_rows``) and return each job's row overrides: the
    row's config-group choices (``model=mlp``, a model file with a config tree), then its
    ``+sem_row=j<k>``, always last."""
    tree = experiment.config_tree()
    if tree is None:
        return [[ov] for ov in register_rows(planned, first_index)]
    rows = register_rows(planned, first_index, groups=tree.groups)
    return [[*tree.overrides(ids.user_keys(record)), ov] for record, ov in zip(planned, rows)]


def _registered_row(overrides: Sequence[str]) -> dict | None:
    """The planned row behind a job's ``+sem_row=j<k>`` override (not a copy); None if none."""
    from hydra.core.config_store import ConfigStore

    prefix = f"+{ROW_GROUP}="
    for text in overrides:
        if text.startswith(prefix):
            entry = ConfigStore.instance().repo.get(ROW_GROUP, {}).get(f"{text[len(prefix) :]}.yaml")
            return entry.record if entry is not None else None
    return None


def job_row(overrides: Sequence[str]) -> dict | None:
    """The row (with ids) registered for a job, from its override list; None if not a sem job."""
    row = _registered_row(overrides)
    return copy.deepcopy(row) if row is not None else None


def job_label(overrides: Sequence[str], width: int = 120) -> str:
    """What the launcher logs for a job: ``order_id=6 noise=0.1 fold=1`` for a sem row (its
    override ``+sem_row=j6`` means nothing to a reader), the overrides as Hydra shows them
    otherwise."""
    from hydra.core.utils import filter_overrides

    from sem_core.mongo.connection import redact_uri

    # redacted before the cut: a cut URL could leave part of a password behind
    shown = [redact_uri(o) for o in filter_overrides(overrides)]
    row = _registered_row(overrides)
    if row is None:
        return " ".join(shown)
    words = [f"order_id={row['order_id']}"]
    words += [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in ids.user_keys(row).items()]
    # the row's group choices (model=mlp) are in the row already
    words += [o for o in shown if not o.startswith(f"+{ROW_GROUP}=") and o.lstrip("+").split("=")[0] not in row]
    label = " ".join(words)
    return label if len(label) <= width else label[: width - 3] + "..."
