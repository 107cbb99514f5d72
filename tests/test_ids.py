"""Properties of the run identifiers (sem_core.ids)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sem_core import ids

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
keys = st.text(min_size=1, max_size=6).filter(lambda k: k not in ids.ID_KEYS)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3), max_leaves=8)
rows = st.dictionaries(keys, values, max_size=6)


@given(rows)
def test_key_order_does_not_change_ids(row):
    reordered = dict(reversed(list(row.items())))
    assert ids.experiment_id(row) == ids.experiment_id(reordered)
    assert ids.config_id(row) == ids.config_id(reordered)


@given(rows, st.integers(-1000, 1000))
def test_int_float_and_numpy_spellings_are_equal(row, n):
    a = dict(row, x=n)
    b = dict(row, x=float(n))
    c = dict(row, x=np.int64(n))
    d = dict(row, x=np.array([n, n])[0])
    assert ids.experiment_id(a) == ids.experiment_id(b) == ids.experiment_id(c) == ids.experiment_id(d)


def test_bool_is_not_int_and_nested_values_count():
    assert ids.experiment_id({"x": True}) != ids.experiment_id({"x": 1})
    assert ids.experiment_id({"a": {"b": [1, 2]}}) != ids.experiment_id({"a": {"b": [2, 1]}})
    assert ids.experiment_id({"a": (1, 2)}) == ids.experiment_id({"a": [1, 2]})
    assert ids.experiment_id({"a": np.array([1.0, 2.0])}) == ids.experiment_id({"a": [1, 2]})


@given(rows, st.integers(0, 9), st.integers(0, 9))
def test_config_id_is_shared_by_folds_and_experiment_id_is_not(row, f1, f2):
    a, b = dict(row, fold=f1), dict(row, fold=f2)
    assert ids.config_id(a) == ids.config_id(b)
    assert (ids.experiment_id(a) == ids.experiment_id(b)) == (f1 == f2)


@given(rows, st.text(min_size=1, max_size=5), st.text(min_size=1, max_size=5))
def test_different_values_give_different_ids(row, v1, v2):
    a, b = dict(row, k=v1), dict(row, k=v2)
    assert (ids.experiment_id(a) == ids.experiment_id(b)) == (v1 == v2)


@given(rows)
def test_id_fields_do_not_feed_the_hash(row):
    with_ids = dict(row, experiment_id="x", config_id="y", order_id=3, global_id="z")
    assert ids.experiment_id(with_ids) == ids.experiment_id(row)


def test_replicate_keys_are_configurable():
    a = {"model": "gp", "seed": 1, "fold": 0}
    b = {"model": "gp", "seed": 2, "fold": 0}
    assert ids.config_id(a, replicate_keys=("seed",)) == ids.config_id(b, replicate_keys=("seed",))
    assert ids.config_id(a) != ids.config_id(b)


@settings(max_examples=20, deadline=None)
@given(st.lists(rows, min_size=1, max_size=5))
def test_ids_are_identical_in_another_process(batch):
    batch = [ids.canonical(r) for r in batch]  # JSON-transportable form of the same rows
    here = [ids.experiment_id(r) for r in batch]
    code = "import json,sys; from sem_core import ids; print(json.dumps([ids.experiment_id(r) for r in json.load(sys.stdin)]))"
    out = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(batch), capture_output=True, text=True, check=True,
        env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"},
    )
    assert json.loads(out.stdout) == here


def test_global_ids_are_unique_and_sortable():
    many = [ids.new_global_id() for _ in range(20000)]
    assert len(set(many)) == len(many)
    assert all(len(g) == 28 and g[8] == "T" for g in many)


def test_unsupported_values_name_the_key():
    with pytest.raises(ids.RowValueError, match="'a.b'"):
        ids.canonical({"a": {"b": object()}})


@given(rows, st.lists(st.sampled_from(["fold", "seed", "a"]), max_size=2))
def test_row_ids_equal_the_separate_functions(row, replicate):
    assert ids.row_ids(row, replicate) == (ids.experiment_id(row), ids.config_id(row, replicate))
