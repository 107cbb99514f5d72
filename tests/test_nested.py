"""nested.map_leaves / map_strings: the one walker over JSON-like data (pure, property-tested)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sem_core.nested import map_leaves, map_strings

leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
json_like = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)


@given(json_like)
def test_the_identity_keeps_the_data(value):
    assert map_strings(value, lambda s: s) == value
    assert map_leaves(value, lambda leaf, key: leaf) == value


@given(json_like)
def test_every_string_leaf_and_only_strings_change(value):
    marked = map_strings(value, lambda s: s + "!")

    def strings(v):
        if isinstance(v, dict):
            return [s for x in v.values() for s in strings(x)]
        if isinstance(v, list):
            return [s for x in v for s in strings(x)]
        return [v] if isinstance(v, str) else []

    assert strings(marked) == [s + "!" for s in strings(value)]
    assert map_strings(marked, lambda s: s[:-1]) == value


def test_a_leaf_sees_the_key_it_is_under_and_tuples_become_lists():
    seen = []
    out = map_leaves({"password": "x", "urls": ("a", {"token": 1})}, lambda leaf, key: seen.append((key, leaf)) or leaf)
    assert sorted(seen) == [("password", "x"), ("token", 1), ("urls", "a")]
    assert out == {"password": "x", "urls": ["a", {"token": 1}]}
