"""results_table and the renderers over runs DataFrames (pure: no files)."""

from __future__ import annotations

import datetime as dt
import io
import math
import re
import statistics

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sem_core import ids
from sem_core.results import render
from sem_core.results.load import summaries_to_frame, summarise
from sem_core.results.table import UnknownName, counted_runs, default_direction, filter_runs, results_table


def summary(row: dict, metrics: dict, *, status="COMPLETED", start="2026-01-01T00:00:00+00:00", model="m_a.py", n=0):
    """What load_runs reads from one run folder."""
    gid = f"{start[:19].replace('-', '').replace(':', '')}-{ids.experiment_id(row)[:8]}{n:04d}"
    config = dict(row, experiment_id=ids.experiment_id(row), config_id=ids.config_id(row), order_id=n, global_id=gid)
    run = {
        "status": status,
        "start_time": start,
        "stop_time": start,
        "host": {"hostname": "h"},
        "experiment": {"mainfile": model},
    }
    return summarise(f"/store/{gid}", run, config, {k: {"steps": [0], "values": [v]} for k, v in metrics.items()})


def frame_of(summaries):
    return summaries_to_frame(summaries)


def sweep(values: dict[float, list[float]], metric="rmse"):
    """One COMPLETED run per (lr, fold) with metric value ``values[lr][fold]``."""
    out = []
    n = 0
    for lr, folds in values.items():
        for fold, v in enumerate(folds):
            out.append(summary({"lr": lr, "fold": fold}, {metric: v}, n=n))
            n += 1
    return out


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.sampled_from([0.1, 0.01, 0.001]), st.lists(finite, min_size=1, max_size=6), min_size=1))
def test_mean_std_count_per_config_equal_the_statistics_of_its_folds(values):
    table = results_table(frame_of(sweep(values)), metrics=["rmse"])
    assert len(table.frame) == len(values)
    by_label = {label: i for i, (label,) in enumerate(table.row_labels())}
    for lr, folds in values.items():
        label = f"lr={lr:g}" if len(values) > 1 else "m_a.py"
        mean, std, count = table.cell(by_label[label], (), "rmse")
        assert count == len(folds)
        assert mean == pytest.approx(statistics.fmean(folds), rel=1e-9, abs=1e-6)
        if len(folds) > 1:
            assert std == pytest.approx(statistics.stdev(folds), rel=1e-6, abs=1e-6)
        else:
            assert math.isnan(std)


def test_failed_interrupted_and_older_duplicates_are_excluded_and_reported():
    rows = sweep({0.1: [1.0, 3.0]})
    rows.append(summary({"lr": 0.1, "fold": 2}, {"rmse": 100.0}, status="FAILED", n=7))
    rows.append(summary({"lr": 0.1, "fold": 3}, {"rmse": 200.0}, status="INTERRUPTED", n=8))
    rows.append(summary({"lr": 0.1, "fold": 4}, {"rmse": 300.0}, status="RUNNING", n=9))
    # an older COMPLETED run of fold 0 (same experiment_id): the newer one wins
    rows.append(summary({"lr": 0.1, "fold": 0}, {"rmse": 50.0}, start="2025-01-01T00:00:00+00:00", n=10))
    table = results_table(frame_of(rows), metrics=["rmse"])
    mean, std, count = table.cell(0, (), "rmse")
    assert (mean, count) == (2.0, 2)
    reasons = dict(zip(table.excluded["global_id"].str[-4:], table.excluded["reason"]))
    assert reasons["0007"] == "FAILED" and reasons["0008"] == "INTERRUPTED" and reasons["0009"] == "RUNNING"
    assert reasons["0010"].startswith("older duplicate of ")
    assert "1 failed run" in table.footnote and "1 interrupted run" in table.footnote
    assert "1 older duplicate run" in table.footnote and "1 running run" in table.footnote
    for text in (render.to_markdown(table), render.to_latex(table), render.to_terminal(table, color=False)):
        assert "1 older duplicate run" in " ".join(text.split())


def test_all_statuses_counts_failed_runs_and_says_so():
    rows = sweep({0.1: [1.0, 3.0]}) + [summary({"lr": 0.1, "fold": 2}, {"rmse": 5.0}, status="FAILED", n=7)]
    table = results_table(frame_of(rows), metrics=["rmse"], statuses=None)
    assert table.cell(0, (), "rmse")[:1] == (3.0,)
    assert "did not complete: 1 failed" in table.footnote


def test_newest_run_per_experiment_id_wins_even_when_it_is_worse():
    old = summary({"lr": 0.1, "fold": 0}, {"rmse": 0.5}, start="2026-01-01T00:00:00+00:00", n=1)
    new = summary({"lr": 0.1, "fold": 0}, {"rmse": 0.9}, start="2026-02-01T00:00:00+00:00", n=2)
    included, excluded = counted_runs(frame_of([new, old]))
    assert list(included["rmse"]) == [0.9]
    assert list(excluded["reason"]) == [f"older duplicate of {new['ids']['global_id']}"]


def test_same_row_in_two_model_files_is_not_a_duplicate():
    a = summary({"fold": 0}, {"rmse": 1.0}, model="m_a.py", n=1)
    b = summary({"fold": 0}, {"rmse": 2.0}, model="m_b.py", n=2)
    table = results_table(frame_of([a, b]), metrics=["rmse"])
    assert [r[0] for r in table.row_labels()] == ["m_a.py", "m_b.py"]
    assert table.excluded.empty


def test_group_labels_name_only_the_keys_that_vary_and_sort_numerically():
    rows = []
    n = 0
    for lr in (0.1, 0.01, 1.0):
        for fold in range(2):
            rows.append(summary({"name": "gd", "lr": lr, "opt": {"kind": "adam"}, "fold": fold}, {"rmse": lr}, n=n))
            n += 1
    table = results_table(frame_of(rows))
    assert [r[0] for r in table.row_labels()] == ["lr=0.01", "lr=0.1", "lr=1"]
    assert table.runs_per_row == [2, 2, 2]


def test_a_row_without_any_varying_key_is_labelled_by_its_model_not_blank():
    # `python m.py ++extra=1` next to the plain sweep: the plain rows lack the only key that varies
    rows = [
        summary({"lr": 0.1, "fold": 0}, {"rmse": 1.0}, n=0),
        summary({"lr": 0.1, "fold": 0, "extra": 1}, {"rmse": 2.0}, n=1),
    ]
    table = results_table(frame_of(rows), metrics=["rmse"])
    assert sorted(r[0] for r in table.row_labels()) == ["extra=1", "m_a.py"]


def test_results_by_fold_and_best_per_fold():
    table = results_table(frame_of(sweep({0.1: [1.0, 5.0], 0.2: [2.0, 4.0]})), metrics=["rmse"], results_by=["fold"])
    labels = table.row_labels()
    assert labels == [("lr=0.1", 0), ("lr=0.1", 1), ("lr=0.2", 0), ("lr=0.2", 1)]
    assert {(i, m) for i, _, m in table.best} == {(0, "rmse"), (3, "rmse")}


@pytest.mark.parametrize(
    ("metric", "direction", "best_label"), [("rmse", "min", "lr=0.1"), ("test_r2", "max", "lr=0.2")]
)
def test_best_marks_min_or_max_by_metric_direction(metric, direction, best_label):
    table = results_table(frame_of(sweep({0.1: [1.0], 0.2: [2.0]}, metric=metric)))
    assert table.directions[metric] == direction
    ((row, _, _),) = table.best
    assert table.row_labels()[row][0] == best_label
    flipped = results_table(
        frame_of(sweep({0.1: [1.0], 0.2: [2.0]}, metric=metric)),
        **({"maximize": [metric]} if direction == "min" else {"minimize": [metric]}),
    )
    assert flipped.best != table.best


def test_default_direction_reads_common_metric_names():
    assert [default_direction(m) for m in ("test_rmse", "nll", "loss", "test_r2", "val/accuracy", "f1", "score")] == [
        "min",
        "min",
        "min",
        "max",
        "max",
        "max",
        "max",
    ]


def test_pivot_moves_a_key_into_columns():
    rows = []
    n = 0
    for data in ("boston", "yacht"):
        for lr in (0.1, 0.2):
            for fold in range(2):
                rows.append(
                    summary({"data": data, "lr": lr, "fold": fold}, {"rmse": lr + (data == "yacht") + fold}, n=n)
                )
                n += 1
    rows.append(summary({"lr": 0.1, "fold": 0}, {"rmse": 99.0}, n=n))  # no "data" key: not pivoted, reported
    table = results_table(frame_of(rows), metrics=["rmse"], pivot="data")
    assert [r[0] for r in table.row_labels()] == ["lr=0.1", "lr=0.2"]
    assert table.footnote == "1 run without 'data' not shown (nothing to pivot on)."
    assert table.column_prefixes == [("boston",), ("yacht",)]
    assert table.cell(1, ("yacht",), "rmse")[:1] == (pytest.approx(1.7),)
    tex = render.to_latex(table)
    assert r"\multicolumn{1}{c}{data=boston}" in tex and r"\cmidrule(lr){2-2}" in tex


def test_where_matches_numbers_spelled_as_text_and_unknown_keys_list_the_known_ones():
    runs = frame_of(sweep({0.1: [1.0, 2.0], 0.2: [3.0, 4.0]}))
    assert list(filter_runs(runs, {"lr": "0.2", "fold": "1"})["rmse"]) == [4.0]
    with pytest.raises(UnknownName, match=r"unknown key 'lrate'; available keys: .*fold.*lr"):
        filter_runs(runs, {"lrate": "1"})
    with pytest.raises(UnknownName, match=r"unknown metric 'mse'; available metrics: rmse"):
        results_table(runs, metrics=["mse"])
    with pytest.raises(UnknownName, match=r"unknown key 'seed'"):
        results_table(runs, group_by=["seed"])


def test_a_metric_missing_in_some_runs_shows_its_count():
    rows = sweep({0.1: [1.0, 2.0, 3.0]})
    rows[2]["metrics"] = {}
    rows.append(summary({"lr": 0.1, "fold": 9}, {"other": 1.0}, n=20))
    table = results_table(frame_of(rows), metrics=["rmse"])
    assert table.cell(0, (), "rmse") == (1.5, pytest.approx(0.70710678), 2)
    assert "1.5000 ± 0.7071 (n=2)" in render.to_markdown(table)


def test_csv_round_trips_the_numbers_at_full_precision():
    values = {0.1: [1 / 3, 2 / 7, 0.1 + 0.2], 0.2: [math.pi, math.e]}
    table = results_table(frame_of(sweep(values)), metrics=["rmse"])
    back = pd.read_csv(io.StringIO(render.to_csv(table)))
    assert list(back["configuration"]) == ["lr=0.1", "lr=0.2"]
    assert list(back["lr"]) == [0.1, 0.2]
    for i in range(2):
        mean, std, count = table.cell(i, (), "rmse")
        assert back["rmse_mean"][i] == mean and back["rmse_std"][i] == std and back["rmse_count"][i] == count


def test_latex_escapes_labels_and_bolds_the_best():
    rows = [
        summary({"model_name": "a_b&c", "fold": 0}, {"rmse": 1.0}, n=1),
        summary({"model_name": "50%", "fold": 0}, {"rmse": 2.0}, n=2),
    ]
    tex = render.to_latex(results_table(frame_of(rows)), decimals=2)
    assert r"model\_name=a\_b\&c & $\mathbf{1.00}$ \\" in tex
    assert r"model\_name=50\% & $2.00$ \\" in tex


def test_runs_missing_the_results_by_key_form_their_own_row():
    rows = sweep({0.1: [1.0, 2.0]})
    rows.append(summary({"lr": 0.1}, {"rmse": 7.0}, n=30))  # a row without a fold
    table = results_table(frame_of(rows), metrics=["rmse"], results_by=["fold"])
    by_fold = {idx[1]: table.cell(i, (), "rmse")[0] for i, idx in enumerate(table.row_labels())}
    assert by_fold[0] == 1.0 and by_fold[1] == 2.0
    assert [v for k, v in by_fold.items() if k not in (0, 1)] == [7.0]


run_specs = st.lists(
    st.tuples(
        st.sampled_from(["m_a.py", "m_b.py"]),
        st.integers(0, 3),
        st.integers(0, 2),
        st.sampled_from(["COMPLETED", "COMPLETED", "FAILED", "INTERRUPTED", "RUNNING"]),
        st.integers(0, 10_000),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(run_specs)
def test_selection_keeps_exactly_the_newest_completed_run_of_each_experiment(specs):
    rows = [
        summary(
            {"lr": lr, "fold": fold},
            {"rmse": float(i)},
            status=status,
            model=model,
            n=i,
            start=(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=t)).isoformat(),
        )
        for i, (model, lr, fold, status, t) in enumerate(specs)
    ]
    runs = frame_of(rows)
    included, excluded = counted_runs(runs)
    assert sorted([*included.index, *excluded.index]) == list(runs.index)  # nothing lost, nothing twice
    completed = runs[runs["status"] == "COMPLETED"]
    newest = completed.sort_values(["start_time", "global_id"]).groupby(["model", "experiment_id"]).tail(1)
    assert set(included["global_id"]) == set(newest["global_id"])
    for _, row in excluded.iterrows():
        assert row["reason"] == row["status"] if row["status"] != "COMPLETED" else row["reason"].startswith("older")


def test_no_completed_run_gives_an_empty_table_that_says_why():
    rows = [summary({"lr": 0.1, "fold": 0}, {"rmse": 1.0}, status="FAILED")]
    table = results_table(frame_of(rows))
    assert len(table.frame) == 0 and table.footnote.startswith("Excluded: 1 failed run")
    assert "Excluded: 1 failed run" in render.to_markdown(table)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=12),
        min_size=2,
        max_size=4,
        unique=True,
    )
)
def test_latex_rows_keep_their_columns_whatever_the_labels_contain(names):
    rows = [summary({"tag": name, "fold": 0}, {"rmse": float(i), "acc": 0.5}, n=i) for i, name in enumerate(names)]
    tex = render.to_latex(results_table(frame_of(rows)))
    body = tex.split("\\midrule\n")[1].split("\\bottomrule")[0].splitlines()
    assert len(body) == len(names)
    for line in body:
        assert line.endswith(r" \\")
        assert line.count(" & ") == 2  # label & rmse & acc: a label's own & is escaped
        label = line.split(" & ")[0]
        assert not re.search(
            r"(?<!\\)[&%$#_{}]",
            label.replace(r"\textbackslash{}", "").replace(r"\textasciitilde{}", "").replace(r"\textasciicircum{}", ""),
        )


def test_terminal_table_prints_brackets_in_labels_as_they_are():
    rows = [
        summary({"layers": [64, 32], "act": "relu[bold]", "fold": 0}, {"rmse": 1.0}, n=1),
        summary({"layers": [8], "act": "tanh", "fold": 0}, {"rmse": 2.0}, n=2),
    ]
    text = render.to_terminal(results_table(frame_of(rows)), color=False)
    assert "layers=[64, 32], act=relu[bold]" in text and "layers=[8], act=tanh" in text


_START_TIMES = st.one_of(
    st.none(),
    st.just("not a time"),
    st.datetimes(
        min_value=dt.datetime(2025, 1, 1),
        max_value=dt.datetime(2025, 1, 2),
        timezones=st.none() | st.just(dt.timezone.utc),
    ).map(dt.datetime.isoformat),
    st.sampled_from(["2025-01-01T12:00:00+02:00", "2025-01-01T10:00:00", "2025-01-01T10:00:00.000001Z"]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_START_TIMES, st.sampled_from(["a", "b", "c", "10", "9"])), min_size=1, max_size=12))
def test_by_recency_orders_whole_columns_as_records_recency_orders_one_run(runs):
    """The newest run of a row is decided by one rule (records.recency); by_recency applies it to
    a DataFrame's columns at once."""
    from sem_core import records
    from sem_core.results.load import by_recency

    frame = pd.DataFrame(
        {
            "start_time": pd.to_datetime([t for t, _ in runs], utc=True, format="ISO8601", errors="coerce"),
            "global_id": [g for _, g in runs],
        }
    )
    expected = sorted(range(len(runs)), key=lambda i: records.recency(frame["start_time"][i], runs[i][1]))
    assert list(by_recency(frame).index) == expected


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.just(math.nan),
            st.booleans(),
            st.integers(-3, 3),
            st.floats(-3, 3),
            st.sampled_from(["a", "B", "1"]),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_rows_are_ordered_by_the_sort_key_of_their_label_values(values):
    from sem_core.results.table import _sort_key, _sort_ranks

    ranks = _sort_ranks(values)
    for i, a in enumerate(values):
        for j, b in enumerate(values):
            assert (ranks[i] < ranks[j]) == (_sort_key(a) < _sort_key(b))
