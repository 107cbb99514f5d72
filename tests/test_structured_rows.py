"""Rows as Hydra structured configs (``schema=``): the planning check (sem_core.schema) against
OmegaConf's own merge, the ids rule, and model files run through Hydra."""

from __future__ import annotations

import dataclasses
import enum
import json
import keyword
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from sem_core import ids
from sem_core.compose import escape_interpolations, schema_node
from sem_core.errors import ConfigError
from sem_core.plan import plan_jobs
from sem_core.schema import check_rows, compile_schema
from tests.conftest import load_store, run_model


class Color(enum.Enum):
    red = 1
    blue = 2


@dataclass
class Inner:
    lr: float = 0.1
    steps: int = 3
    name: str = "adam"


@dataclass
class Conf:
    fold: int = 0
    rate: float = 0.5
    name: str = "x"
    flag: bool = False
    color: Color = Color.red
    maybe: int | None = None
    sizes: list[int] = field(default_factory=lambda: [1])
    weights: dict[str, float] = field(default_factory=dict)
    anything: Any = None
    inner: Inner = field(default_factory=Inner)


FIELDS = [f.name for f in dataclasses.fields(Conf)] + ["lr", "steps", "unknown"]
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["red", "blue", "RED", "3", "0.5", "true", "???", "adam", ""]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126, blacklist_characters="$\\"), max_size=4),
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(FIELDS), inner, max_size=3)),
    max_leaves=6,
)
rows = st.dictionaries(st.sampled_from(FIELDS), values, max_size=5)


def omegaconf_merge(row: dict) -> dict | None:
    """What OmegaConf makes of ``row`` merged onto ``Conf`` (None: it refuses the row)."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Conf), escape_interpolations(row))
        return OmegaConf.to_container(merged, resolve=True, enum_to_str=True)  # type: ignore[return-value]
    except Exception:
        return None


def unchanged(row: dict, merged: dict) -> bool:
    """OmegaConf kept every value of the row as written (no conversion, like '3' -> 3)."""

    def same(a: Any, b: Any) -> bool:
        if isinstance(a, dict) and isinstance(b, dict):
            return all(k in b and same(v, b[k]) for k, v in a.items())
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        return (
            type(a) is type(b)
            and a == b
            or (isinstance(a, int) and not isinstance(a, bool) and isinstance(b, float) and a == b)
        )

    return same(row, merged)


def containers_in_containers(row: dict) -> bool:
    def nested(value: Any) -> bool:
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        return any(isinstance(v, (list, dict)) for v in items)

    return any(nested(v) for v in row.values())


@settings(max_examples=400, deadline=None)
@given(rows)
def test_the_planning_check_accepts_exactly_the_rows_omegaconf_merges_unchanged(row):
    compiled = compile_schema(Conf)
    accepted = compiled.problem(row) is None
    # the fast test (planning 100,000 rows) never passes a row the careful one refuses
    assert accepted or not compiled.fits(row)
    merged = omegaconf_merge(row)
    if accepted:
        # no row passes planning to fail in its job
        assert merged is not None
        assert unchanged(row, merged)
    elif merged is not None and not containers_in_containers(row):
        # refused while OmegaConf took it: only where OmegaConf would have converted a value
        # (OmegaConf 2.3 also lets a list or dict into a typed list or dict, [[]] for List[int]:
        # refused here, and not compared)
        assert not unchanged(row, merged)


def test_one_line_names_the_row_the_key_the_value_and_the_type():
    jobs = plan_jobs([{"fold": 0}, {"fold": 1, "inner": {"lr": "fast"}}])
    with pytest.raises(ConfigError) as err:
        check_rows(jobs, Conf, "m_x.py")
    assert str(err.value) == (
        "m_x.py row order_id=1: key 'inner.lr' has value 'fast' (str), but the schema Conf expects float; "
        "change the row or the schema"
    )
    with pytest.raises(
        ConfigError,
        match=r"order_id=0: key 'inner.depth' is not a field of the schema Conf "
        r"\(fields under 'inner': lr, steps, name\)",
    ):
        check_rows(plan_jobs([{"inner": {"depth": 3}}]), Conf, "m_x.py")


@dataclass
class Required:
    fold: int
    lr: float = 0.1


def test_a_field_without_default_is_required_in_every_row():
    with pytest.raises(ConfigError, match=r"order_id=1: required key 'fold' \(schema Required\) is missing"):
        check_rows(plan_jobs([{"fold": 1}, {"lr": 0.2}]), Required, "m_x.py")


@dataclass
class NeedsSeed:
    seed: int


@dataclass
class Outer:
    inner: NeedsSeed = field(default_factory=lambda: NeedsSeed(seed=dataclasses.MISSING))  # type: ignore[arg-type]
    lr: float = 0.1


def test_a_nested_required_field_is_required_even_when_the_row_leaves_its_parent_out():
    compiled = compile_schema(Outer)
    assert not compiled.fits({"lr": 0.2}) and compiled.fits({"inner": {"seed": 1}})
    with pytest.raises(ConfigError, match=r"order_id=0: required key 'inner.seed' \(schema Outer\) is missing"):
        check_rows(plan_jobs([{"lr": 0.2}]), Outer, "m_x.py")


def test_schema_node_fills_defaults_and_enforces_types_under_an_open_root():
    node = schema_node(Conf)
    merged = OmegaConf.merge(node, {"inner": {"lr": 2}, "experiment_id": "e"})
    assert merged.inner.lr == 2.0 and isinstance(merged.inner.lr, float) and merged.rate == 0.5
    assert merged.experiment_id == "e"  # sem's ids sit next to the schema's fields
    with pytest.raises(Exception, match="could not be converted to Float"):
        OmegaConf.merge(node, {"rate": "abc"})


# -- which ids a schema's defaults give ------------------------------------------------------
def with_extra_field(schema: type, name: str, default: Any) -> type:
    return dataclasses.make_dataclass(schema.__name__, [(name, type(default), field(default=default))], bases=(schema,))


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=5,
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.fixed_dictionaries({"fold": st.integers(0, 5), "rate": st.floats(0, 1)}), min_size=1, max_size=5),
    st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=8),
    json_values,
)
def test_adding_a_field_with_a_default_keeps_every_existing_id(rows_, name, default):
    """The ids hash the row as written: a schema's defaults are not part of them."""
    before = plan_jobs(rows_)
    check_rows(before, Conf, "m.py")
    if name in {f.name for f in dataclasses.fields(Conf)} or keyword.iskeyword(name):
        return
    wider = with_extra_field(Conf, name, json.dumps(default))
    after = plan_jobs(rows_)
    check_rows(after, wider, "m.py")
    assert [(j.experiment_id, j.config_id) for j in after] == [(j.experiment_id, j.config_id) for j in before]


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 5))
def test_spelling_out_a_default_is_another_row(fold):
    """The rule's other side, on purpose: a row that writes a default value down differs from
    one that leaves it to the schema (changing the default later changes only the latter)."""
    (bare,), (spelled,) = plan_jobs([{"fold": fold}]), plan_jobs([{"fold": fold, "rate": Conf.rate}])
    assert bare.experiment_id != spelled.experiment_id
    assert bare.experiment_id == ids.experiment_id({"fold": fold})


# -- model files with a schema, run through Hydra ---------------------------------------------
TYPED = """
import enum
from dataclasses import dataclass, field
from sem_core import Experiment

class Kind(enum.Enum):
    plain = 1
    fancy = 2

@dataclass
class Optim:
    lr: float = 0.1
    name: str = "adam"

@dataclass
class Conf:
    fold: int
    optim: Optim = field(default_factory=Optim)
    kind: Kind = Kind.plain
    EXTRA

ex = Experiment(__file__, schema=Conf)

@ex.configs
def configs():
    return [{"fold": 0}, {"fold": 1, "optim": {"lr": 1}, "kind": "fancy"}]

@ex.automain
def main(config: ANNOTATION):
    print("main got", type(config).__name__, repr(config))
    return RESULT
"""


def typed_model(write_model, annotation: str = "Conf", result: str = "config.optim.lr", extra: str = "") -> Path:
    source = TYPED.replace("ANNOTATION", annotation).replace("RESULT", result).replace("EXTRA", extra or "pass")
    return write_model(source)


def test_main_annotated_with_the_schema_receives_the_dataclass_with_defaults(write_model):
    model = typed_model(write_model)
    proc = run_model(model)
    assert proc.returncode == 0, proc.stderr
    assert "main got Conf Conf(fold=0, optim=Optim(lr=0.1, name='adam'), kind=<Kind.plain: 1>)" in proc.stdout
    # 1 in the row, 1.0 for the float field: OmegaConf converted it in the job
    assert "main got Conf Conf(fold=1, optim=Optim(lr=1.0, name='adam'), kind=<Kind.fancy: 2>)" in proc.stdout
    runs = {r["config"]["order_id"]: r for r in load_store(model.parent / "runs")}
    first, second = runs[0]["config"], runs[1]["config"]
    # config.json: the row as written, hashed by the ids, and the job's config with the defaults
    assert ids.user_keys(second) == {"fold": 1, "optim": {"lr": 1}, "kind": "fancy"}
    assert second["experiment_id"] == ids.experiment_id({"fold": 1, "optim": {"lr": 1}, "kind": "fancy"})
    assert first["composed"] == {"fold": 0, "optim": {"lr": 0.1, "name": "adam"}, "kind": "plain"}
    assert second["composed"] == {"fold": 1, "optim": {"lr": 1.0, "name": "adam"}, "kind": "fancy"}
    assert runs[1]["run"]["result"] == 1.0


def test_main_without_annotation_receives_the_merged_dict_and_with_dictconfig_a_config(write_model):
    model = typed_model(write_model, annotation="dict", result="config['optim']['name']")
    proc = run_model(model, "+order_id=0")
    assert proc.returncode == 0, proc.stderr
    assert (
        "main got dict {'fold': 0, 'optim': {'lr': 0.1, 'name': 'adam'}, 'kind': 'plain', 'experiment_id':"
        in proc.stdout
    )
    model = typed_model(write_model, annotation="DictConfig", result="config.optim.name")
    model.write_text("from omegaconf import DictConfig\n" + model.read_text())
    proc = run_model(model, "+order_id=1")
    assert proc.returncode == 0, proc.stderr
    assert "main got DictConfig {'fold': 1, 'optim': {'lr': 1.0, 'name': 'adam'}, 'kind': 'fancy'" in proc.stdout


def test_cfg_job_shows_the_typed_config(write_model):
    proc = run_model(typed_model(write_model), "--cfg", "job")
    assert proc.returncode == 0, proc.stderr
    assert "fold: ???\noptim:\n  lr: 0.1\n  name: adam\nkind: plain\n" in proc.stdout


def test_bad_values_stop_the_sweep_before_any_job_with_one_line(write_model):
    model = typed_model(write_model)
    proc = run_model(model, "++optim.lr=fast")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "m_test.py: error: m_test.py row order_id=0: key 'optim.lr' has value 'fast' (str), but the schema Conf "
        "expects float; change the row or the schema"
    )
    proc = run_model(model, "+optim.momentum=0.9")
    assert proc.returncode == 1
    assert (
        "row order_id=0: key 'optim.momentum' is not a field of the schema Conf (fields under 'optim': lr, name)"
        in proc.stderr
    )
    proc = run_model(model, "++kind=odd")
    assert "key 'kind' has value 'odd' (str), but the schema Conf expects Kind" in proc.stderr
    assert not (model.parent / "runs").exists()
    proc = run_model(model, "++optim.lr=0.5")  # a good value: checked, then merged by OmegaConf
    assert proc.returncode == 0, proc.stderr


def test_a_field_added_with_a_default_keeps_the_ids_of_earlier_runs(write_model):
    model = typed_model(write_model, annotation="Conf")
    assert run_model(model).returncode == 0
    model.write_text(model.read_text().replace("    pass\n", "    epochs: int = 5\n", 1))
    proc = run_model(model)
    assert proc.returncode == 0, proc.stderr
    runs = load_store(model.parent / "runs")
    by_order: dict = {}
    for r in runs:
        by_order.setdefault(r["config"]["order_id"], []).append(r["config"])
    for configs in by_order.values():
        assert len(configs) == 2 and configs[0]["experiment_id"] == configs[1]["experiment_id"]
        assert sorted("epochs" in c["composed"] for c in configs) == [False, True]


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(["$", "{", "}", "\\", "a", "y", ":"]), max_size=12))
def test_a_row_string_reaches_main_as_written(text):
    """Row strings are data: ``${...}`` and the backslashes around it are not OmegaConf's to read."""
    config = OmegaConf.create({"s": escape_interpolations(text), "y": "resolved"})
    assert OmegaConf.to_container(config, resolve=True)["s"] == text
