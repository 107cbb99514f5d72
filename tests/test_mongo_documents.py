"""Pure parts of the Mongo schema: bounded copies at the 16 MB limit, fingerprints, times."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from sem_core.mongo import documents


@given(n=st.integers(0, 5000), k=st.integers(1, 500))
def test_bounded_indices_keep_first_and_last_evenly(n, k):
    idx = documents.bounded_indices(n, k)
    assert len(idx) == min(n, k)
    assert idx == sorted(set(idx))
    assert all(0 <= i < n for i in idx)
    if n and k >= 2:
        assert idx[0] == 0 and idx[-1] == n - 1
    if n > k >= 2:  # evenly spaced: gaps differ by at most one
        gaps = [b - a for a, b in zip(idx, idx[1:])]
        assert max(gaps) - min(gaps) <= 1


@given(n=st.integers(0, 3000), limit=st.integers(2, 1000))
def test_bounded_series_is_a_subsequence_of_aligned_points(n, limit):
    series = {"steps": list(range(n)), "values": [i * 0.5 for i in range(n)], "timestamps": [str(i) for i in range(n)]}
    out, thinned = documents.bounded_series(series, limit)
    assert thinned == (n > limit)
    assert len(out["values"]) == min(n, limit)
    for step, value, stamp in zip(out["steps"], out["values"], out["timestamps"]):
        assert value == step * 0.5 and stamp == str(step)  # the three arrays stay aligned


def test_full_series_round_trips_through_the_gridfs_encoding():
    t = dt.datetime(2026, 1, 1, 12, 0, 0, 123456)
    series = {"steps": [0, 1], "values": [0.1, float("1e300")], "timestamps": [t.isoformat(), t]}
    back = documents.decode_full_series(documents.encode_full_series(series))
    assert back == {"steps": [0, 1], "values": [0.1, 1e300], "timestamps": [t.isoformat(), t.isoformat()]}


@given(text=st.text(min_size=0, max_size=3000), limit=st.integers(8, 400))
def test_bounded_text_keeps_head_and_tail_within_the_limit(text, limit):
    shown, cut = documents.bounded_text(text, limit)
    size = len(text.encode("utf-8", "surrogateescape"))
    assert cut == (size > limit)
    if not cut:
        assert shown == text
    else:
        assert len(shown.encode("utf-8", "surrogateescape")) <= limit + 1
        # the last characters of the log are kept
        assert text.endswith(shown.rsplit("\n", 1)[-1][-5:] if shown.rsplit("\n", 1)[-1] else "")


@given(
    entries=st.lists(
        st.tuples(st.text(min_size=1, max_size=10), st.integers(0, 10**9), st.integers(0, 10**18)),
        max_size=8,
        unique_by=lambda e: e[0],
    )
)
def test_fingerprint_ignores_listing_order_and_sees_every_change(entries):
    fp = documents.fingerprint(entries)
    assert fp == documents.fingerprint(list(reversed(entries)))
    for i, (name, size, mtime) in enumerate(entries):
        changed = list(entries)
        changed[i] = (name, size, mtime + 1)
        assert documents.fingerprint(changed) != fp
        changed[i] = (name, size + 1, mtime)
        assert documents.fingerprint(changed) != fp


def test_times_become_datetimes_and_back():
    assert documents.document_time("2026-01-01T12:00:00.5") == dt.datetime(
        2026, 1, 1, 12, 0, 0, 500000, dt.timezone.utc
    )
    assert documents.document_time(None) is None and documents.document_time("not a time") == "not a time"
    assert documents.record_time(dt.datetime(2026, 1, 1)) == "2026-01-01T00:00:00"


def test_md5_is_read_from_content_addressed_names():
    assert (
        documents.md5_of_stored_name("_sources/m_x_0123456789abcdef0123456789abcdef.py")
        == "0123456789abcdef0123456789abcdef"
    )
    assert (
        documents.md5_of_stored_name("_resources/data_0123456789abcdef0123456789abcdef")
        == "0123456789abcdef0123456789abcdef"
    )
    assert documents.md5_of_stored_name("weird.py") is None


def test_scrub_replaces_secrets_in_nested_strings():
    doc = {"a": ["x hunter2 y", {"b": "hunter2"}], "c": 3}
    assert documents.scrub(doc, ("hunter2",)) == {"a": ["x *** y", {"b": "***"}], "c": 3}


# strings built of pieces URLs and secrets are made of, so that they meet often
_text = st.lists(st.sampled_from(list('ab:/@%"\\\n é') + ["://", "mongodb://u:", "pw"]), max_size=12).map("".join)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


@given(_json, st.lists(_text, max_size=2))
def test_scrub_redacts_exactly_what_redact_uri_does_to_every_string(value, secrets):
    from sem_core.mongo.connection import redact_uri
    from sem_core.nested import map_strings

    secrets = tuple(secrets)
    assert documents.scrub(value, secrets) == map_strings(value, lambda text: redact_uri(text, secrets))
