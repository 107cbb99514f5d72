"""Properties of the run identifiers (sem_core.ids)."""

import json
import re
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
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3), max_leaves=8
)
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
        [sys.executable, "-c", code],
        input=json.dumps(batch),
        capture_output=True,
        text=True,
        check=True,
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


# Rows with any text at all in keys and strings: control characters and lone surrogates included.
any_text = st.text(st.characters(blacklist_categories=()), max_size=6)
wild_values = st.recursive(
    st.one_of(scalars, any_text),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(any_text, wild_values, max_size=4))
def test_a_normalised_row_can_be_written_as_json_or_is_refused_naming_the_key(row):
    try:
        normal = ids.normalise_row(row)
    except ids.RowValueError as exc:
        assert repr(exc.path) in str(exc) or "top level" in str(exc)
        return
    text = json.dumps(normal, ensure_ascii=False)
    text.encode("utf-8")  # no lone surrogate left
    assert ids.experiment_id(json.loads(text)) == ids.experiment_id(normal)


@given(st.integers(1, 60))
def test_nesting_deeper_than_the_limit_is_refused(depth):
    value: object = 1
    for _ in range(depth):
        value = {"k": value} if depth % 2 else [value]
    row = {"a": value}
    if depth < ids.MAX_DEPTH:
        assert ids.normalise_row(row) == row
    else:
        with pytest.raises(ids.RowValueError, match=f"more than {ids.MAX_DEPTH} levels deep"):
            ids.normalise_row(row)


def test_a_row_that_contains_itself_is_refused():
    row: dict = {"x": 1}
    row["self"] = row
    with pytest.raises(ids.RowValueError, match="levels deep"):
        ids.normalise_row(row)


@given(st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.none()), st.integers(1, 3))
def test_keys_written_alike_in_json_are_refused(key, depth):
    row: dict = {key: "a", str(key): "b"}
    for _ in range(depth - 1):
        row = {"outer": row}
    with pytest.raises(ids.RowValueError, match=re.escape(f"are both written as {str(key)!r}")):
        ids.normalise_row(row)


def test_keys_that_are_not_scalars_and_lone_surrogates_are_refused():
    with pytest.raises(ids.RowValueError, match=r"key \(1, 2\) at the top level is a tuple"):
        ids.normalise_row({(1, 2): 0})
    with pytest.raises(ids.RowValueError, match=r"key 'a\.b\[1\]' has a string .* lone surrogate"):
        ids.normalise_row({"a": {"b": ["ok", "x\udc80"]}})
    assert ids.normalise_row({np.int64(3): 1, 2.5: 2}) == {"3": 1, "2.5": 2}


any_text = st.text(st.characters(codec="utf-8") | st.sampled_from(["\t", '"', "'", "\udc80", "é"]), max_size=5)
odd_values = st.recursive(
    st.one_of(scalars, any_text, st.floats(), st.tuples(st.integers()), st.just(np.int64(3)), st.just(np.float32(0.5))),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text | st.integers(), inner, max_size=3),
    max_leaves=8,
)


def outcome(fn, *args):
    try:
        return "ok", fn(*args)
    except ids.RowValueError as exc:
        return "error", str(exc)


@settings(max_examples=300)
@given(st.dictionaries(any_text, odd_values, max_size=4))
def test_the_fast_paths_for_plain_rows_agree_with_the_careful_ones(row):
    """Planning 100,000 rows takes the fast paths; they must give what the careful paths give
    (the same normal form, the same hash, the same error)."""
    assert outcome(ids.normalise_row, row) == outcome(ids._normalise, row, "", 0)
    assert outcome(ids.canonical, row) == outcome(ids._canonical, row, "")

    def careful_ids(r):
        keys = {k: v for k, v in r.items() if k not in ids.ID_KEYS}
        return ids._digest(ids._canonical(keys, "")), ids._digest(
            ids._canonical({k: v for k, v in keys.items() if k != "fold"}, "")
        )

    normal = ids.normalise_row(row) if outcome(ids.normalise_row, row)[0] == "ok" else None
    if normal is not None:
        assert outcome(ids.row_ids, normal) == outcome(careful_ids, normal)


json_data = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(st.characters(codec="utf-8")),
    ),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(st.characters(codec="utf-8"), max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(json_data)
def test_the_hash_is_sha256_of_json_dumps_as_documented(data):
    """The encoder built once for speed writes exactly what json.dumps writes (ids must not move)."""
    import hashlib

    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert ids._digest(data) == hashlib.sha256(text.encode("utf-8")).hexdigest()[: ids.HASH_LENGTH]
