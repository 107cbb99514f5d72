"""The planned rows of a sweep in Hydra's ConfigStore, one option per job.

Each planned row is registered as a ConfigStore option ``sem_row/j<k>`` (package
``_global_``) and the job's only row override is ``+sem_row=j<k>``: values never go through
override strings (no quoting or type mangling), and Hydra composes the row like any config.
Jobs are not composed up front (BasicSweeper does, ~10-100 ms per job, hydra #1324).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Sequence
from typing import Any

from hydra.core.config_store import ConfigNode
from omegaconf import DictConfig

from sem_core import ids
from sem_core.compose import row_node
from sem_core.groups import ConfigGroups
from sem_core.sequences import MadeWhenRead

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


class RowGroup(dict):
    """The ``sem_row`` group of Hydra's ConfigStore: ``j<k>.yaml`` for every planned row,
    each entry made when Hydra (or a launcher) asks for it.

    ConfigStore's repository is nested dicts, and Hydra reads a group with ``in``, ``[]``,
    ``get`` and ``keys``; a sweep of 10,000 rows would hold 10,000 entries, each keeping the
    config built from its row until the sweep ends. Entries stored by hand (a Slurm task
    registers one row at a time) are plain dict items and come first."""

    def __init__(self) -> None:
        super().__init__()
        # (first index, records, groups) per registered batch of rows
        self.batches: list[tuple[int, Sequence[dict], ConfigGroups | None]] = []

    def add(self, records_: Sequence[dict], first_index: int, groups: ConfigGroups | None) -> None:
        self.batches.append((first_index, records_, groups))

    def _planned(self, name: str) -> _RowNode | None:
        index = _row_index(name.removesuffix(".yaml")) if name.endswith(".yaml") else None
        if index is None:
            return None
        for first, records_, groups in self.batches:
            if first <= index < first + len(records_):
                return _RowNode(name, records_[index - first], ROW_GROUP, groups)
        return None

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or (isinstance(name, str) and self._planned(name) is not None)

    def __getitem__(self, name: str) -> ConfigNode:
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        node = self._planned(name)
        if node is None:
            raise KeyError(name)
        return node

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def keys(self) -> list[str]:  # type: ignore[override]
        planned = (f"j{first + i}.yaml" for first, records_, _ in self.batches for i in range(len(records_)))
        return [*dict.keys(self), *(name for name in planned if not dict.__contains__(self, name))]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __reduce__(self) -> tuple:
        # pickled (a spawned worker, submitit) with its batches, not as an empty dict
        return (_rebuilt_group, (dict(dict.items(self)), self.batches))

    def __deepcopy__(self, memo: dict) -> RowGroup:
        # Hydra deep-copies its config repository, ConfigStore included, for every composition
        # (CachingConfigRepository): the planned rows are shared, not copied. They are never
        # changed in place: each read of a row makes a new record (``PlannedRecords``) and a new
        # entry; a job gets a copy (``job_row``).
        return _rebuilt_group(copy.deepcopy(dict(dict.items(self)), memo), list(self.batches))


def _rebuilt_group(entries: dict, batches: list) -> RowGroup:
    group = RowGroup()
    dict.update(group, entries)
    group.batches = batches
    return group


def _row_index(name: str) -> int | None:
    """k of a row option's name ``j<k>``; None for any other name."""
    digits = name[1:]
    if not name.startswith("j") or not digits.isdigit() or (len(digits) > 1 and digits[0] == "0"):
        return None
    return int(digits)


def _row_group() -> RowGroup:
    from hydra.core.config_store import ConfigStore

    repo = ConfigStore.instance().repo
    group = repo.get(ROW_GROUP)
    if not isinstance(group, RowGroup):
        fresh = RowGroup()
        dict.update(fresh, group or {})
        repo[ROW_GROUP] = group = fresh
    return group


def register_rows(records_: Sequence[dict], first_index: int = 0, groups: ConfigGroups | None = None) -> RowOverrides:
    """Store each row as ``sem_row/j<k>``; return the job override for each. ``groups``: the
    config tree's groups, whose options the rows choose (``sem_core.compose.row_config``)."""
    _row_group().add(records_, first_index, groups)
    return RowOverrides(first_index, len(records_))


class RowOverrides(MadeWhenRead[str]):
    """``+sem_row=j<k>`` for k in a range: made when read, as the rows they name."""

    def __init__(self, first_index: int, length: int) -> None:
        self.first_index = first_index
        self.length = length

    def __len__(self) -> int:
        return self.length

    def _item(self, i: int) -> str:
        return row_override(self.first_index + i)


def row_override(index: int) -> str:
    """The override that gives a job planned row ``index`` (``sem_row/j<index>``)."""
    return f"+{ROW_GROUP}=j{index}"


def row_index(overrides: Sequence[str]) -> int | None:
    """The planned row a job's overrides name (``+sem_row=j<k>`` -> k); None for other jobs."""
    prefix = f"+{ROW_GROUP}="
    for text in reversed(overrides):  # the row override comes last
        if text.startswith(prefix):
            return _row_index(text[len(prefix) :])
    return None


class JobOverrides(MadeWhenRead[list]):
    """Each job's overrides, made when read: ``before`` (the sweep's own overrides), the row's
    config-group choices (``model=mlp``, a model file with a config tree), then its
    ``+sem_row=j<k>``, always last. Hydra's launchers take any sequence of override lists;
    a list of lists would hold a few hundred bytes per row for the whole sweep."""

    def __init__(self, records_: Sequence[dict], rows: RowOverrides, tree: Any, before: Sequence[str] = ()) -> None:
        self.records = records_
        self.rows = rows
        self.tree = tree
        self.before = list(before)

    def with_before(self, before: Sequence[str]) -> JobOverrides:
        """The same jobs with ``before`` ahead of each one's overrides."""
        return JobOverrides(self.records, self.rows, self.tree, [*before, *self.before])

    def __len__(self) -> int:
        return len(self.rows)

    def _item(self, i: int) -> list:
        row = self.rows[i]
        if self.tree is None:
            return [*self.before, row]
        return [*self.before, *self.tree.overrides(ids.user_keys(self.records[i])), row]


def job_overrides(planned: Sequence[dict], experiment: Any, first_index: int = 0) -> JobOverrides:
    """Register the planned rows (``register_rows``) and return each job's row overrides: the
    row's config-group choices (``model=mlp``, a model file with a config tree), then its
    ``+sem_row=j<k>``, always last."""
    tree = experiment.config_tree()
    rows = register_rows(planned, first_index, groups=tree.groups if tree is not None else None)
    return JobOverrides(planned, rows, tree)


def _registered_row(overrides: Sequence[str]) -> dict | None:
    """The planned row behind a job's ``+sem_row=j<k>`` override; None if none."""
    from hydra.core.config_store import ConfigStore

    index = row_index(overrides)
    if index is None:
        return None
    entry = ConfigStore.instance().repo.get(ROW_GROUP, {}).get(f"j{index}.yaml")
    return entry.record if entry is not None else None


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
