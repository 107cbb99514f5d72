"""Sweep planning rules (sem_core.plan): selection, overrides, crossing, errors."""

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sem_core import ids
from sem_core.errors import ConfigError
from sem_core.grid import grid
from sem_core.plan import RowOverride, find_duplicates, plan_jobs

ROWS = grid(name=["a", "b"], lr=[0.1, 1], fold=range(3))  # 12 rows


def sel(key, *values):
    return RowOverride("select", key, values, f"{key}={','.join(map(str, values))}")


def test_no_override_runs_every_row_with_its_index():
    jobs = plan_jobs(ROWS)
    assert [j.order_id for j in jobs] == list(range(12))
    assert all(j.experiment_id == ids.experiment_id(r) for j, r in zip(jobs, ROWS))


def test_order_id_selection_and_range_error():
    assert [j.order_id for j in plan_jobs(ROWS, [sel("order_id", 0, 3)])] == [0, 3]
    with pytest.raises(ConfigError, match=r"order_id 12 is out of range: m\.py has 12 rows \(order_id 0-11\)"):
        plan_jobs(ROWS, [sel("order_id", 12)], source="m.py")
    with pytest.raises(ConfigError, match=r"order_id 'abc' is not an integer: m\.py has 12 rows \(order_id 0-11\)"):
        plan_jobs(ROWS, [sel("order_id", "abc")], source="m.py")


def test_value_selection_is_canonical_and_ands():
    jobs = plan_jobs(ROWS, [sel("lr", 1.0), sel("fold", 0, 2)])
    assert {(j.row["lr"], j.row["fold"]) for j in jobs} == {(1, 0), (1, 2)}
    assert len(jobs) == 4


def test_selection_matching_nothing_says_which_values_exist():
    with pytest.raises(ConfigError, match=r"matched none of the 12 rows of m\.py \(fold takes 0, 1, 2\)"):
        plan_jobs(ROWS, [sel("fold", 7)], source="m.py")


def test_unknown_selection_key_lists_row_keys():
    with pytest.raises(ConfigError, match=r"'epochs' is not a key of any row .*row keys: name, lr, fold.*\+epochs="):
        plan_jobs(ROWS, [sel("epochs", 3)])


def test_force_override_recomputes_ids_and_keeps_order_id():
    jobs = plan_jobs(ROWS, [sel("order_id", 4), RowOverride("set", "lr", (0.5,), "++lr=0.5")])
    (job,) = jobs
    assert job.order_id == 4 and job.row["lr"] == 0.5
    assert job.experiment_id == ids.experiment_id(dict(ROWS[4], lr=0.5))
    assert ROWS[4]["lr"] != 0.5  # the user's list is not mutated


def test_add_crosses_new_key_and_refuses_existing():
    jobs = plan_jobs(ROWS[:2], [RowOverride("add", "seed", (1, 2, 3), "+seed=1,2,3")])
    assert [(j.order_id, j.row["seed"]) for j in jobs] == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3)]
    assert len({j.experiment_id for j in jobs}) == 6
    with pytest.raises(ConfigError, match=r"'lr' already exists .*\+\+lr="):
        plan_jobs(ROWS, [RowOverride("add", "lr", (1,), "+lr=1")])


def test_nested_keys_and_delete():
    rows = [{"opt": {"lr": 1, "name": "sgd"}, "fold": 0}]
    (job,) = plan_jobs(rows, [sel("opt.name", "sgd"), RowOverride("set", "opt.lr", (2,), "++opt.lr=2")])
    assert job.row == {"opt": {"lr": 2, "name": "sgd"}, "fold": 0}
    (job,) = plan_jobs(rows, [RowOverride("delete", "fold", (None,), "~fold")])
    assert job.row == {"opt": {"lr": 1, "name": "sgd"}}


def test_delete_of_unknown_key_is_an_error():
    # a typo like ~nosie must not run every row unchanged
    with pytest.raises(ConfigError, match=r"~nosie: 'nosie' is not a key .*row keys: "):
        plan_jobs([{"noise": 0.1, "fold": 0}], [RowOverride("delete", "nosie", (None,), "~nosie")])


def test_ids_cannot_be_set():
    with pytest.raises(ConfigError, match="computed by sem"):
        plan_jobs(ROWS, [RowOverride("set", "experiment_id", ("x",), "++experiment_id=x")])


def test_duplicates_are_found_with_both_order_ids():
    rows = [{"a": 1}, {"a": 2}, {"a": 1.0}]
    assert find_duplicates(plan_jobs(rows)) == [(0, 2, ids.experiment_id({"a": 1}))]


@given(st.lists(st.integers(0, 4), min_size=1, max_size=5), st.sets(st.integers(0, 11), min_size=1))
def test_selection_is_a_subset_in_list_order(folds, order_ids):
    rows = [{"x": i, "fold": f} for i, f in enumerate(folds)]
    valid = sorted(o for o in order_ids if o < len(rows))
    if not valid:
        return
    jobs = plan_jobs(rows, [sel("order_id", *valid)])
    assert [j.order_id for j in jobs] == valid
    assert all(j.row == rows[j.order_id] for j in jobs)


def test_grid_concatenates_and_crosses():
    g = grid(grid(model=["gp"], fold=range(2)), {"model": ["lin"], "fold": [0]}, lr=[1, 2])
    assert g == [
        {"model": "gp", "fold": 0},
        {"model": "gp", "fold": 1},
        {"model": "lin", "fold": 0},
        {"lr": 1},
        {"lr": 2},
    ]


# Every key normalise_row accepts can be typed on the command line and selects its row.
from sem_core.argv import split_argv  # noqa: E402
from sem_core.plan import format_key, split_key  # noqa: E402

spellable_keys = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8).filter(
    lambda k: (
        ids.unspellable_key(k) is None and k not in (*ids.ID_KEYS, "hydra", "sem")
    )  # reserved: rows() refuses them
)


@given(st.lists(spellable_keys, min_size=1, max_size=3))
def test_every_accepted_key_path_is_typed_and_read_back(parts):
    assert split_key(format_key(parts)) == tuple(parts)


@given(spellable_keys, st.sampled_from(["", "++", "+", "~"]), st.integers(0, 3))
@example("a.b", "", 1)
@example("learning rate", "++", 2)
@example("a/b@c", "~", 0)
@example("é", "", 3)
@example("it's", "", 0)
@example('say "hi"', "++", 1)
@example("a=b,c", "", 2)
@example("", "", 1)
@example("1", "++", 0)
def test_every_accepted_row_key_can_be_selected_set_and_removed_on_the_command_line(key, prefix, value):
    rows = [ids.normalise_row({key: i, "fold": i}) for i in range(4)]
    text = f"{prefix}{format_key([key])}" + ("" if prefix == "~" else f"={value}")
    rest, overrides = split_argv([text])
    assert rest == [] and len(overrides) == 1 and split_key(overrides[0].key) == (key,)
    if prefix == "+":
        if key == "fold":
            return
        with pytest.raises(ConfigError, match="already exists"):
            plan_jobs(rows, overrides)
        return
    jobs = plan_jobs(rows, overrides)
    if prefix == "":
        assert [j.order_id for j in jobs] == ([value] if key != "fold" else [value])
    elif prefix == "++":
        assert all(j.row[key] == value for j in jobs)
    else:
        assert all(key not in j.row for j in jobs)


def test_a_dotted_key_typed_without_quotes_says_how_to_quote_it():
    rows = [{"a.b": 1, "learning rate": 2}]
    with pytest.raises(
        ConfigError,
        match=r"""row keys: "a\.b", "learning rate"\); the row key 'a\.b' is typed in quotes: "a\.b"=\.\.\.""",
    ):
        plan_jobs(rows, [sel("a.b", 1)])


@given(
    n=st.integers(0, 30),
    cuts=st.lists(
        st.tuples(st.integers(-35, 35), st.integers(-35, 35), st.sampled_from([None, 1, 2, 3, -1])), max_size=3
    ),
)
def test_planned_records_read_as_the_list_of_job_records_they_stand_for(n, cuts):
    """A sweep holds its records lazily (PlannedRecords): every way the sweep reads them (an
    index, a slice, a slice of a slice, iteration, a run id alone) gives what a plain list of
    ``job_record`` dicts gives."""
    from sem_core.plan import PlannedRecords, job_record

    jobs = plan_jobs(grid(x=range(n))) if n else []
    run_ids = [ids.new_global_id() for _ in jobs]
    records, expected = PlannedRecords(jobs, run_ids), [job_record(j, g) for j, g in zip(jobs, run_ids)]
    for start, stop, step in cuts:
        records, expected = records[start:stop:step], expected[start:stop:step]
        run_ids = run_ids[start:stop:step]
    assert len(records) == len(expected)
    assert list(records) == expected
    assert [records[i] for i in range(-len(expected), len(expected))] == expected * 2
    assert [records.global_id(i) for i in range(len(expected))] == run_ids
    with pytest.raises(IndexError):
        records[len(expected)]
    # each read is a new dict: a job changing its record changes no other reader's
    if expected:
        records[0]["x"] = "changed"
        assert records[0] == expected[0]


def test_planned_records_keep_ids_of_any_width_and_need_one_per_job():
    from sem_core.plan import PlannedRecords

    records = PlannedRecords(plan_jobs(grid(x=range(2))), ["a", "bb"])
    assert [r["global_id"] for r in records] == ["a", "bb"]
    with pytest.raises(ValueError, match="one run id per job"):
        PlannedRecords(plan_jobs(grid(x=range(2))), ["a"])
