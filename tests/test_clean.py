"""`sem clean`: dry run by default, --yes moves to a bin, --restore is byte-identical, runs
that exist nowhere else are kept unless --force. Real model runs, real git and DVC."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sem_core import records
from sem_core.clean import BIN_DIR, ORPHAN_MIN_AGE_S, StoreEntry, plan_clean
from sem_core.records import iter_runs
from sem_core.run_status import ACTIVE_STATUSES
from tests.conftest import run_model

MODEL = """
from sem_core import Experiment
ex = Experiment(__file__)

@ex.configs
def get_config():
    return [{"name": "m", "fold": f} for f in range(3)]

@ex.automain
def main(config):
    if config["fold"] == 1 and config.get("crash", True):
        raise RuntimeError("fold 1 is broken")
    ex.log_scalar("score", config["fold"] * 1.5)
    return config["fold"]
"""


# ------------------------------------------------------------------------------ pure planning
entries_st = st.lists(
    st.builds(
        StoreEntry,
        name=st.from_regex(r"2026010[1-3]T00000[0-9]-[a-f]{4}", fullmatch=True),
        status=st.sampled_from(
            [None, "COMPLETED", "COMPLETED", "FAILED", "INTERRUPTED", "TIMEOUT", "RUNNING", "QUEUED"]
        ),
        experiment_id=st.sampled_from(["e1", "e2", "e3"]),
        model=st.sampled_from(["m_a.py", "m_b.py"]),
        age_s=st.sampled_from([0.0, ORPHAN_MIN_AGE_S + 1.0]),
    ),
    max_size=15,
    unique_by=lambda e: e.name,
)


@settings(deadline=None)  # no timing asserts: CI machines are shared
@given(entries_st, st.sets(st.from_regex(r"2026010[1-3]T00000[0-9]-[a-f]{4}", fullmatch=True)), st.booleans())
def test_plan_never_bins_live_runs_the_latest_result_or_the_only_copy(entries, shared, force):
    plan = plan_clean(entries, shared, force=force)
    moved = {i.name for i in plan.move}
    by_name = {e.name: e for e in entries}
    for name in moved:
        e = by_name[name]
        assert e.status not in ACTIVE_STATUSES
        assert force or name in shared
        if e.status is None:
            assert e.age_s >= ORPHAN_MIN_AGE_S
    for e in entries:
        if e.status == "COMPLETED":
            newest = max(
                x.name
                for x in entries
                if x.status == "COMPLETED" and (x.experiment_id, x.model) == (e.experiment_id, e.model)
            )
            assert (e.name in moved or e.name in {i.name for i in plan.protected}) == (e.name != newest)
    assert not moved & {i.name for i in plan.protected}


# ------------------------------------------------------------------------------ real store
def sem(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "sem_core.cli", *args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result


def load_store(store: Path) -> list[dict]:
    """The runs of a store (folders with run.json; the orphan has none)."""
    return [{"dir": Path(r.location), "run": r.run, "config": r.config} for r in iter_runs(store)]


def snapshot(store: Path) -> dict[str, bytes]:
    return {
        p.relative_to(store).as_posix(): p.read_bytes()
        for p in store.rglob("*")
        if p.is_file() and BIN_DIR not in p.relative_to(store).parts
    }


@pytest.fixture
def messy_store(write_model, tmp_path):
    """3 rows run twice (fold 1 fails both times: 2 FAILED; folds 0 and 2 completed twice) and
    an orphan folder a killed job left without run.json."""
    model = write_model(MODEL)
    for _ in range(2):
        result = run_model(model, "-m")
        assert result.returncode != 0 and "fold 1 is broken" in result.stdout + result.stderr
    store = model.parent / "runs"
    orphan = store / "20260101T000000-000000000000"
    orphan.mkdir()
    (orphan / "cout.txt").write_text("killed before run.json\n")
    old = time.time() - 2 * ORPHAN_MIN_AGE_S
    for p in (orphan / "cout.txt", orphan):
        os.utime(p, (old, old))
    return model.parent.parent, store


def test_clean_dry_run_yes_and_restore(messy_store):
    exp, store = messy_store
    runs = load_store(store)
    failed = {r["dir"].name for r in runs if r["run"]["status"] == "FAILED"}
    # oldest first, by the rule every command uses (two sweeps of 3 rows can start in the same second)
    completed = sorted(
        (r for r in runs if r["run"]["status"] == "COMPLETED"),
        key=lambda r: records.recency(r["run"].get("start_time"), r["dir"].name),
    )
    latest = {r["config"]["experiment_id"]: r["dir"].name for r in completed}
    stale = {r["dir"].name for r in completed} - set(latest.values())
    assert len(failed) == 2 and len(stale) == 2
    before = snapshot(store)

    # nothing here is pushed to DVC or synced to MongoDB: without --force nothing may move
    out = sem("clean", cwd=exp).stdout
    assert out.count("keep  ") == 5 and "5 run(s) kept: they exist only here" in out
    assert "nothing to clean" not in out  # there is, with --force
    assert snapshot(store) == before and not (store / BIN_DIR).exists()

    out = sem("clean", "--force", cwd=exp).stdout
    assert "dry run: 5 folder(s) would move" in out
    assert snapshot(store) == before and not (store / BIN_DIR).exists()

    sem("clean", "--force", "--yes", cwd=exp)
    remaining = {p.name for p in store.iterdir() if not p.name.startswith("_")}
    assert remaining == set(latest.values())
    (batch,) = (store / BIN_DIR).iterdir()
    assert {p.name for p in batch.iterdir() if p.is_dir()} == failed | stale | {"20260101T000000-000000000000"}
    assert "fold 1 is broken" not in (batch / "manifest.json").read_text()  # reasons, not logs
    assert "stale duplicate of" in (batch / "manifest.json").read_text()

    out = sem("clean", "--restore", cwd=exp).stdout
    assert "restored 5 folder(s)" in out
    assert snapshot(store) == before
    assert not (store / BIN_DIR).exists()


def test_clean_moves_what_dvc_holds_and_keeps_what_it_does_not(messy_store):
    exp, store = messy_store
    root = exp.parent
    for args in (
        ("init", "-q", "-b", "main"),
        ("config", "user.name", "Dee"),
        ("config", "user.email", "dee@example.org"),
    ):
        subprocess.run(["git", *args], cwd=root, check=True)
    subprocess.run(["git", "add", "exp/models/m_test.py"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "model"], cwd=root, check=True)
    sem("dvc", "init", "--remote", str(root.parent / "dvc-remote"), cwd=root)
    sem("dvc", "push", cwd=exp)
    # a failure after the push exists only here
    model = exp / "models" / "m_test.py"
    assert run_model(model, "-m", "fold=1").returncode != 0
    newest_failure = max(r["dir"].name for r in load_store(store) if r["run"]["status"] == "FAILED")

    out = sem("clean", "--yes", cwd=exp).stdout
    assert f"keep  {newest_failure}" in out
    (batch,) = (store / BIN_DIR).iterdir()
    assert len([p for p in batch.iterdir() if p.is_dir()]) == 5
    assert (store / newest_failure).is_dir()


@pytest.mark.mongo
def test_runs_synced_to_mongodb_may_be_binned_without_force(write_model, mongo_url):
    model = write_model(MODEL)
    env = {"SEM_MONGO_URL": mongo_url}
    for _ in range(2):  # the live observer syncs every run at its end
        assert run_model(model, "-m", env=env).returncode != 0
    store = model.parent / "runs"
    exp = model.parent.parent
    (store / "20260101T000000-000000000000").mkdir()  # an orphan is in no database: kept
    old = time.time() - 2 * ORPHAN_MIN_AGE_S
    os.utime(store / "20260101T000000-000000000000", (old, old))

    result = subprocess.run(
        [sys.executable, "-m", "sem_core.cli", "clean", "--yes"],
        cwd=exp,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    assert "keep  20260101T000000-000000000000" in result.stdout
    (batch,) = (store / BIN_DIR).iterdir()
    assert len([p for p in batch.iterdir() if p.is_dir()]) == 4  # 2 FAILED + 2 stale duplicates


# ------------------------------------------------------------------------------ the database side
def _omniboard_view(db) -> dict:
    """What Omniboard lists: the runs collection, with each run's metric documents (by run_id)."""
    runs = {d["config"]["global_id"]: d for d in db.runs.find()}
    return {
        gid: {
            "_id": d["_id"],
            "status": d["status"],
            "metrics": sorted((m["name"], tuple(m["values"])) for m in db.metrics.find({"run_id": d["_id"]})),
        }
        for gid, d in runs.items()
    }


@pytest.mark.mongo
def test_clean_moves_binned_runs_out_of_mongodb_and_restore_puts_them_back(write_model, mongo_url, mongo_db):
    model = write_model(MODEL)
    env = {**os.environ, "SEM_MONGO_URL": mongo_url}
    for _ in range(2):  # the live observer syncs every run at its end
        assert run_model(model, "-m", env={"SEM_MONGO_URL": mongo_url}).returncode != 0
    store, exp = model.parent / "runs", model.parent.parent
    runs = load_store(store)
    # oldest first, by the rule every command uses (two sweeps of 3 rows can start in the same second)
    completed = sorted(
        (r for r in runs if r["run"]["status"] == "COMPLETED"),
        key=lambda r: records.recency(r["run"].get("start_time"), r["dir"].name),
    )
    latest = {r["config"]["experiment_id"]: r["dir"].name for r in completed}
    binned = {r["dir"].name for r in runs} - set(latest.values())
    assert len(binned) == 4  # 2 FAILED + 2 stale duplicates
    before_view, before_files = _omniboard_view(mongo_db), snapshot(store)
    assert set(before_view) == {r["dir"].name for r in runs}
    gridfs_files = sorted(f["_id"] for f in mongo_db["fs.files"].find())

    def clean(*args):
        result = subprocess.run(
            [sys.executable, "-m", "sem_core.cli", "clean", *args], cwd=exp, capture_output=True, text=True, env=env
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    # --dry-run lists both sides and changes neither
    out = clean("--dry-run")
    for name in binned:
        assert (
            f"would move  {name}  (" in out
            and f"+ database run {before_view[name]['_id']}" in out.split(name, 1)[1].splitlines()[0]
        )
    assert "dry run: 4 folder(s) would move" in out and "4 run(s) of MongoDB" in out and "sem_bin.runs" in out
    assert _omniboard_view(mongo_db) == before_view and snapshot(store) == before_files

    # row claims (sem.skip_completed with a database): a binned run's claim no longer holds its row
    kept_gid, binned_gid = sorted(latest.values())[0], sorted(binned)[0]
    mongo_db["sem_claims"].insert_many(
        [
            {"_id": "m_test.py/kept", "global_id": kept_gid, "status": "COMPLETED"},
            {"_id": "m_test.py/binned", "global_id": binned_gid, "status": "COMPLETED"},
        ]
    )
    out = clean("--yes")
    assert "moved 4 folder(s)" in out and "4 run(s) of MongoDB" in out
    assert [d["global_id"] for d in mongo_db["sem_claims"].find()] == [kept_gid]
    # Omniboard lists only the runs left in the store, with their metrics
    assert _omniboard_view(mongo_db) == {gid: v for gid, v in before_view.items() if gid not in binned}
    assert set(p.name for p in store.iterdir() if not p.name.startswith("_")) == set(latest.values())
    # the bin holds the binned runs whole: their documents, metric documents and reasons
    bin_docs = {d["_id"]: d for d in mongo_db["sem_bin.runs"].find()}
    assert set(bin_docs) == binned
    assert {d["reason"] for d in bin_docs.values()} >= {"FAILED"}
    assert mongo_db["sem_bin.metrics"].count_documents({}) == sum(len(before_view[g]["metrics"]) for g in binned)
    # GridFS files (sources, artifacts) are shared by content and stay
    assert sorted(f["_id"] for f in mongo_db["fs.files"].find()) == gridfs_files
    # a second clean finds nothing left to do on either side
    again = clean("--dry-run")
    assert "nothing to clean" in again

    out = clean("--restore", "--dry-run")
    assert out.count("would restore") == 4 and "4 run(s) from sem_bin.runs" in out
    assert _omniboard_view(mongo_db) != before_view

    out = clean("--restore")
    assert "restored 4 folder(s)" in out and "restored 4 run(s) into runs of MongoDB" in out
    assert _omniboard_view(mongo_db) == before_view  # same _ids, same metrics
    assert snapshot(store) == before_files
    assert mongo_db["sem_bin.runs"].count_documents({}) == 0 and mongo_db["sem_bin.metrics"].count_documents({}) == 0
    # and the restored runs count as synced again: a new sync has nothing to do
    sync = subprocess.run(
        [sys.executable, "-m", "sem_core.cli", "sync"], cwd=exp, capture_output=True, text=True, env=env
    )
    assert sync.returncode == 0, sync.stderr
    assert _omniboard_view(mongo_db) == before_view


@pytest.mark.mongo
def test_a_restored_run_whose_id_was_taken_meanwhile_gets_the_next_one(write_model, mongo_url, mongo_db):
    from sem_core.mongo import bin as mongo_bin

    model = write_model(MODEL)
    assert run_model(model, "-m", env={"SEM_MONGO_URL": mongo_url}).returncode != 0
    # the newest run in the database (the one whose _id a new run would take once it is binned)
    newest = mongo_db.runs.find_one({}, sort=[("_id", -1)])
    gid, old_id = newest["config"]["global_id"], newest["_id"]
    metric_names = sorted(m["name"] for m in mongo_db.metrics.find({"run_id": old_id}))
    assert mongo_bin.move_to_bin(mongo_db, {gid: "stale duplicate"}, "t") == {gid: old_id}
    assert mongo_bin.move_to_bin(mongo_db, {gid: "stale duplicate"}, "t") == {}  # done already: nothing twice
    # sem's own sync leaves a binned run's _id free for its restore (the folder is out of the
    # store, as sem clean leaves it: the sweep's end sync would upload it again)
    (model.parent / "runs" / gid).rename(model.parent / gid)
    assert run_model(model, "-m", "fold=0", env={"SEM_MONGO_URL": mongo_url}).returncode == 0
    assert mongo_db.runs.find_one({}, sort=[("_id", -1)])["_id"] > old_id
    assert mongo_db.runs.find_one({"_id": old_id}) is None
    # another writer takes the freed _id (sacred's MongoObserver takes the largest + 1)
    mongo_db.runs.insert_one({"_id": old_id, "config": {"global_id": "someone-else"}, "status": "COMPLETED"})
    back = mongo_bin.restore_from_bin(mongo_db, [gid])
    new_id = back.runs[gid]
    assert back.renumbered == {gid: (old_id, new_id)} and new_id != old_id
    doc = mongo_db.runs.find_one({"_id": new_id})
    assert doc["config"]["global_id"] == gid and doc["status"] == newest["status"]
    assert sorted(m["name"] for m in mongo_db.metrics.find({"run_id": new_id})) == metric_names
    # the other writer's run is untouched
    assert mongo_db.runs.find_one({"_id": old_id})["config"]["global_id"] == "someone-else"
    assert mongo_db["sem_bin.runs"].count_documents({}) == 0
