"""Results read from MongoDB (SecantusDB, a real wire-protocol server): runs synced by sem give the
same table as the file store they came from; show and get_runs reach GridFS."""

from __future__ import annotations

import datetime as dt
import pickle

import pandas as pd
import pytest

from sem_core import cli
from sem_core.records import iter_run_dirs
from sem_core.results import get_runs, load_runs, results_table
from tests.results_store import T0, write_run

pytestmark = pytest.mark.mongo


@pytest.fixture
def synced(tmp_path, mongo_db, mongo_url, monkeypatch):
    """A file store (3 configs x 3 folds, one failed run, one older duplicate) synced to MongoDB."""
    monkeypatch.setenv("SEM_CACHE_DIR", str(tmp_path / "cache"))
    from sem_core.mongo.upload import sync_runs

    store = tmp_path / "exp" / "models" / "runs"
    n = 0
    for lr in (0.1, 0.01, 0.001):
        for fold in range(3):
            art = tmp_path / f"w{n}.pkl"
            art.write_bytes(pickle.dumps({"lr": lr, "fold": fold}))
            write_run(
                store,
                {"lr": lr, "fold": fold},
                n,
                {"loss": [1.0, lr + fold / 10], "test_r2": [1 - lr]},
                start=T0 + dt.timedelta(minutes=n),
                artifacts={"w.pkl": art},
            )
            n += 1
    write_run(store, {"lr": 0.1, "fold": 0}, 0, {"loss": [9.0]}, start=T0 - dt.timedelta(days=1))
    write_run(
        store,
        {"lr": 0.5, "fold": 0},
        20,
        {"loss": [9.0]},
        status="FAILED",
        start=T0 + dt.timedelta(hours=1),
        output="epoch 1\nepoch 2\nloss exploded\n",
        fail_trace=["Traceback (most recent call last):\n", "FloatingPointError: loss is nan\n"],
    )
    summary = sync_runs(mongo_db, list(iter_run_dirs(store)))
    assert len(summary.uploaded) == 11
    return store, mongo_url


def test_mongo_runs_give_the_same_runs_and_table_as_the_file_store(synced):
    store, url = synced
    from_files = load_runs(store)
    from_db = load_runs(url)
    columns = [
        "global_id",
        "experiment_id",
        "config_id",
        "order_id",
        "model",
        "status",
        "lr",
        "fold",
        "loss",
        "test_r2",
    ]
    left = from_files[columns].sort_values("global_id").reset_index(drop=True)
    right = from_db[columns].sort_values("global_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(left, right)
    assert from_db["path"].str.startswith("mongodb://").all()
    a, b = results_table(from_files), results_table(from_db)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert (
        a.footnote == b.footnote == "Excluded: 1 failed run, 1 older duplicate run (not averaged; `sem ls` lists them)."
    )


def test_show_a_failed_mongo_run_prints_its_traceback_and_captured_output(synced, capsys):
    _, url = synced
    failed = load_runs(url).query("status == 'FAILED'").iloc[0]
    assert cli.main(["show", failed["global_id"], url]) == 0
    out = capsys.readouterr().out
    assert "FloatingPointError: loss is nan" in out and "loss exploded" in out


def test_get_runs_loads_pickled_artifacts_from_gridfs(synced):
    _, url = synced
    (hit,) = get_runs(url, match={"lr": 0.01, "fold": 2}, load_artifacts=True)
    assert hit.loaded["w.pkl"] == {"lr": 0.01, "fold": 2}
    assert hit.metrics["loss"] == pytest.approx(0.21)
