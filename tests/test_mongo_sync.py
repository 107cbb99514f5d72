"""``sem sync`` against a real MongoDB wire-protocol server (SecantusDB): sacred's schema,
idempotence, GridFS bytes, the 16 MB limit, reading back, concurrency."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gridfs
import pytest
from bson import ObjectId

from sem_core import records
from sem_core.mongo import reader, upload
from tests.mongo_fixtures import write_synthetic_run

pytestmark = pytest.mark.mongo

REPO = Path(__file__).resolve().parent.parent


def gid(i: int) -> str:
    return f"20260101T120000-{i:012x}"


@pytest.fixture
def store(tmp_path) -> Path:
    return tmp_path / "exp" / "models" / "runs"


def make_runs(store: Path, n: int, **kwargs) -> list[Path]:
    return [write_synthetic_run(store, gid(i), i, artifact=f"weights of run {i}".encode(), **kwargs) for i in range(n)]


def sem(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    """The ``sem`` command as a user runs it."""
    full = dict(os.environ, **env)
    return subprocess.run(
        [sys.executable, "-m", "sem_core.cli", *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=300
    )


def sacred_run(mongo_url: str, db_name: str, artifact: Path) -> int:
    """One run written by sacred's own MongoObserver (the schema sem must match)."""
    from sacred import Experiment
    from sacred.observers import MongoObserver

    ex = Experiment("peer", interactive=True, save_git_info=False)
    ex.observers.append(MongoObserver(url=mongo_url, db_name=db_name))

    @ex.main
    def main(_run):
        for i in range(3):
            _run.log_scalar("loss", 1.0 / (i + 1), i)
        _run.add_artifact(str(artifact), name="model.bin")
        return 0.5

    return ex.run()._id


def test_documents_have_the_shape_sacreds_mongo_observer_writes(mongo_db, mongo_url, store, tmp_path):
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"abc")
    sacred_id = sacred_run(mongo_url, mongo_db.name, artifact)
    theirs = mongo_db.runs.find_one({"_id": sacred_id})
    [run_dir] = make_runs(store, 1)

    summary = upload.sync_runs(mongo_db, [run_dir])

    assert summary.counts() == {"uploaded": 1, "updated": 0, "unchanged": 0, "failed": 0}
    ours = mongo_db.runs.find_one({"config.global_id": gid(0)})
    assert isinstance(ours["_id"], int) and ours["_id"] == sacred_id + 1  # sacred's rule: next integer
    assert set(theirs) - {"_id"} <= set(ours), "every field sacred writes is there"
    assert set(ours) - set(theirs) <= {"sem", "fail_trace", "stop_time"}
    assert ours["format"] == theirs["format"] == "MongoObserver-0.7.0"
    for key in ("start_time", "stop_time", "heartbeat"):
        assert type(ours[key]) is type(theirs[key])
    assert ours["config"]["global_id"] == gid(0) and ours["config"]["order_id"] == 0
    for key in ("experiment_id", "config_id"):
        assert ours["config"][key]
    # info.metrics links point at one metrics document per (run, name), as sacred's do
    for doc in (theirs, ours):
        [link] = doc["info"]["metrics"]
        metric = mongo_db.metrics.find_one({"_id": ObjectId(link["id"])})
        assert metric["run_id"] == doc["_id"] and metric["name"] == link["name"] == "loss"
        assert set(metric) == {"_id", "run_id", "name", "steps", "values", "timestamps"}
        assert type(metric["timestamps"][0]).__name__ == "datetime"
        [art] = doc["artifacts"]
        assert set(art) == {"name", "file_id"} and isinstance(art["file_id"], ObjectId)
        assert (
            mongo_db["fs.files"].find_one({"_id": art["file_id"]})["filename"]
            == f"artifact://runs/{doc['_id']}/model.bin"
        )
        name, source_id = doc["experiment"]["sources"][0]
        assert isinstance(name, str) and isinstance(source_id, ObjectId)
    assert ours["status"] == "COMPLETED" and ours["result"] == 0.5


def test_sync_twice_adds_nothing_and_a_changed_run_is_updated_in_place(mongo_db, store):
    dirs = make_runs(store, 5)
    assert upload.sync_runs(mongo_db, dirs).counts()["uploaded"] == 5
    assert upload.sync_runs(mongo_db, dirs).counts() == {"uploaded": 0, "updated": 0, "unchanged": 5, "failed": 0}
    assert mongo_db.runs.count_documents({}) == 5 and mongo_db.metrics.count_documents({}) == 5

    # Omniboard's tags live in the run document: an update must keep them
    target = mongo_db.runs.find_one({"config.global_id": gid(2)})
    mongo_db.runs.update_one({"_id": target["_id"]}, {"$set": {"omniboard.tags": ["keep me"]}})
    metrics = records.read_json(dirs[2] / records.METRICS_FILE)
    metrics["loss"]["values"][-1] = 123.0
    metrics["acc"] = {"steps": [0], "values": [0.9], "timestamps": ["2026-01-01T12:00:00"]}
    records.atomic_write_json(dirs[2] / records.METRICS_FILE, metrics)

    summary = upload.sync_runs(mongo_db, dirs)

    assert summary.counts() == {"uploaded": 0, "updated": 1, "unchanged": 4, "failed": 0}
    after = mongo_db.runs.find_one({"config.global_id": gid(2)})
    assert after["_id"] == target["_id"] and after["omniboard"]["tags"] == ["keep me"]
    assert mongo_db.runs.count_documents({}) == 5
    docs = list(mongo_db.metrics.find({"run_id": after["_id"]}))
    assert sorted(d["name"] for d in docs) == ["acc", "loss"]  # replaced, not duplicated
    assert {link["id"] for link in after["info"]["metrics"]} == {str(d["_id"]) for d in docs}
    assert next(d for d in docs if d["name"] == "loss")["values"][-1] == 123.0


def test_artifact_bytes_are_identical_through_gridfs_and_sources_are_stored_once(mongo_db, store):
    payload = os.urandom(700_000)  # several GridFS chunks
    dirs = [write_synthetic_run(store, gid(i), i, artifact=payload if i < 2 else b"other") for i in range(4)]

    upload.sync_runs(mongo_db, dirs)

    fs = gridfs.GridFS(mongo_db)
    for i, expected in enumerate([payload, payload, b"other", b"other"]):
        doc = mongo_db.runs.find_one({"config.global_id": gid(i)})
        assert fs.get(doc["artifacts"][0]["file_id"]).read() == expected
    source_ids = {
        str(mongo_db.runs.find_one({"config.global_id": gid(i)})["experiment"]["sources"][0][1]) for i in range(4)
    }
    assert len(source_ids) == 1, "one GridFS file per source content"
    source = fs.get(ObjectId(source_ids.pop())).read()
    assert source == (store.parent / "m_synth.py").read_bytes()
    assert mongo_db["fs.files"].count_documents({}) == 3  # source, payload, b"other": by content hash


def ms(iso: str) -> str:
    import datetime as dt

    t = dt.datetime.fromisoformat(iso)
    return t.replace(microsecond=t.microsecond // 1000 * 1000).isoformat()


@pytest.mark.slow
def test_million_point_metric_and_50mb_stdout_round_trip_in_full(mongo_db, store):
    n = 1_000_000
    big_out = "".join(f"line {i:08d} " + "x" * 40 + "\n" for i in range(1_000_000))  # ~55 MB
    run_dir = write_synthetic_run(store, gid(0), 0, metrics={"loss": n, "small": 5}, captured_out=big_out)

    summary = upload.sync_runs(mongo_db, [run_dir])

    assert summary.counts()["uploaded"] == 1, summary.failed
    doc = mongo_db.runs.find_one({"config.global_id": gid(0)})
    # the documents stay under 16 MB and say where the full data is
    metric = mongo_db.metrics.find_one({"run_id": doc["_id"], "name": "loss"})
    full = metric["sem_full_data"]
    assert full["points"] == n and len(metric["values"]) == full["points_in_document"] < n
    assert metric["steps"][0] == 0 and metric["steps"][-1] == n - 1
    assert isinstance(doc["sem"]["captured_out_file_id"], ObjectId)
    assert str(doc["sem"]["captured_out_file_id"]) in doc["captured_out"]
    assert len(doc["captured_out"]) < 2_000_000 and doc["captured_out"].startswith("line 00000000")

    record = reader.read_run(mongo_db, global_id=gid(0))
    local = records.read_metrics(run_dir)
    assert record.metrics["loss"] == local["loss"]  # every step, value and timestamp
    # points kept in the metric document have MongoDB's datetime precision: milliseconds
    assert record.metrics["small"]["values"] == local["small"]["values"]
    assert record.metrics["small"]["timestamps"] == [ms(t) for t in local["small"]["timestamps"]]
    assert record.captured_out == big_out


def test_runs_read_back_as_the_same_records_as_the_file_store(mongo_db, store):
    dirs = make_runs(store, 3) + [write_synthetic_run(store, gid(9), 9, status="FAILED")]
    upload.sync_runs(mongo_db, dirs)

    from_db = {r.global_id: r for r in reader.iter_runs(mongo_db)}
    from_files = {r.global_id: r for r in records.iter_runs(store)}

    assert set(from_db) == set(from_files)
    for g, f in from_files.items():
        m = from_db[g]
        assert (m.config, m.status, m.model, m.experiment_id, m.config_id, m.order_id) == (
            f.config,
            f.status,
            f.model,
            f.experiment_id,
            f.config_id,
            f.order_id,
        )
        for name, series in f.metrics.items():
            assert m.metrics[name]["values"] == series["values"] and m.metrics[name]["steps"] == series["steps"]
            assert m.metrics[name]["timestamps"] == [ms(t) for t in series["timestamps"]]
        assert m.run["start_time"] == f.run["start_time"] and m.run["stop_time"] == f.run["stop_time"]
        assert m.run.get("fail_trace") == f.run.get("fail_trace")
        assert m.location.endswith(f"#runs/{m.mongo_id}")
        assert reader.read_run(mongo_db, global_id=g).mongo_id == m.mongo_id
    assert from_db[gid(9)].status == "FAILED"
    assert from_db[gid(0)].artifact_bytes("model.bin") == b"weights of run 0"


def test_concurrent_syncs_of_the_same_runs_store_each_run_once(mongo_db, mongo_url, store):
    make_runs(store, 30)
    script = (
        "import sys, pymongo; from pathlib import Path; from sem_core import records; "
        "from sem_core.mongo import upload; "
        "db = pymongo.MongoClient(sys.argv[1]).get_default_database(); "
        "s = upload.sync_runs(db, list(records.iter_run_dirs(Path(sys.argv[2])))); "
        "print(s.counts()); sys.exit(1 if s.failed else 0)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, mongo_url, str(store)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs

    assert mongo_db.runs.count_documents({}) == 30
    ids = [d["_id"] for d in mongo_db.runs.find({}, {"_id": 1})]
    assert len(set(ids)) == 30 and all(isinstance(i, int) for i in ids)
    assert mongo_db.metrics.count_documents({}) == 30  # no orphaned duplicates either
    assert upload.sync_runs(mongo_db, list(records.iter_run_dirs(store))).counts()["unchanged"] == 30


def test_sem_sync_command_dry_run_summary_and_failures(mongo_url, mongo_db, store, isolated_home):
    make_runs(store, 4)
    exp = store.parent.parent
    (store / gid(3) / records.RUN_FILE).write_text("{not json")
    env = {"SEM_MONGO_URL": mongo_url, "HOME": str(isolated_home)}

    dry = sem("sync", "--dry-run", env=env, cwd=exp)
    assert dry.returncode == 1, dry.stderr  # the dry run reads every run as the sync would
    assert "dry run: 3 to upload, 0 to update, 0 unchanged, 1 would fail" in dry.stdout
    assert f"would fail  {store / gid(3)}: {store / gid(3) / records.RUN_FILE}: not valid JSON" in dry.stdout
    assert mongo_db.runs.count_documents({}) == 0

    first = sem("sync", str(exp), env=env, cwd=REPO)
    assert first.returncode == 1  # one run could not be uploaded
    assert "uploaded 3, updated 0, unchanged 0, failed 1" in first.stdout
    assert f"{store / gid(3) / records.RUN_FILE}: not valid JSON" in first.stdout

    again = sem("sync", str(store), env=env, cwd=REPO)
    assert "uploaded 0, updated 0, unchanged 3, failed 1" in again.stdout
    assert mongo_db.runs.count_documents({}) == 3


def test_sem_sync_without_database_says_how_to_configure_one(store, isolated_home):
    make_runs(store, 1)
    res = sem("sync", env={"HOME": str(isolated_home)}, cwd=store.parent.parent)
    assert res.returncode == 2 and "no MongoDB configured" in res.stderr and "SEM_MONGO_URL" in res.stderr


def test_synced_global_ids_are_the_runs_whose_current_state_is_in_the_database(
    mongo_url, mongo_db, store, monkeypatch, isolated_home
):
    dirs = make_runs(store, 4)
    upload.sync_runs(mongo_db, dirs[:3])
    (dirs[0] / "info.json").write_text('{"changed": true}')  # changed since its sync
    monkeypatch.setenv("SEM_MONGO_URL", mongo_url)

    assert reader.synced_global_ids(store) == {gid(1), gid(2)}  # what sem clean may count as copied


def test_a_record_location_reads_the_run_again_without_showing_the_password(mongo_server, store, connect):
    import uuid
    from urllib.parse import quote_plus

    name = "loc_" + uuid.uuid4().hex[:8]
    connect(mongo_server.url(name))[name].command(
        "createUser", "reader", pwd="pw/secret", roles=[{"role": "readWrite", "db": name}]
    )
    url = f"mongodb://reader:{quote_plus('pw/secret')}@{mongo_server.address}/{name}?authSource={name}"
    upload.sync_runs(connect(url)[name], make_runs(store, 2))

    [first, second] = list(reader.iter_runs(url))
    assert "secret" not in first.location and first.location.startswith(f"mongodb://reader:***@{mongo_server.address}/")
    again = reader.read_run(second.location)
    assert again.global_id == second.global_id and again.config == second.config


@pytest.mark.parametrize("one_command", [True, False], ids=["one bulkWrite", "per collection"])
def test_ordered_writes_run_in_order_and_stop_at_the_first_failure(mongo_db, one_command):
    """The run end's writes (files, metrics, run document) go in one round trip on MongoDB 8
    (else one per collection): a write runs only after every write before it succeeded, and a
    failure names its place in the queue (the metric a concurrent sync created first)."""
    import pymongo.errors
    from pymongo import InsertOne, UpdateOne

    if one_command and not callable(getattr(type(mongo_db.client), "bulk_write", None)):
        pytest.skip("pymongo before 4.9 has no client-level bulkWrite (sem writes per collection there)")
    mongo_db.metrics.create_index([("run_id", 1), ("name", 1)], unique=True)
    mongo_db.metrics.insert_one({"run_id": 1, "name": "taken"})
    writes = upload.OrderedWrites(mongo_db, one_command=one_command)
    writes.add("runs", InsertOne, document={"_id": 1, "status": "RUNNING"})
    writes.add("metrics", InsertOne, document={"run_id": 1, "name": "loss"})
    writes.add("runs", UpdateOne, filter={"_id": 1}, update={"$set": {"status": "COMPLETED"}})
    writes.add("metrics", InsertOne, document={"run_id": 1, "name": "taken"})
    writes.add("runs", UpdateOne, filter={"_id": 1}, update={"$set": {"result": 0.5}})

    with pytest.raises(pymongo.errors.BulkWriteError) as failed:
        writes.execute()

    assert [(e["index"], e["code"]) for e in failed.value.details["writeErrors"]] == [(3, 11000)]
    assert mongo_db.runs.find_one({"_id": 1}) == {"_id": 1, "status": "COMPLETED"}  # the last write never ran
    assert sorted(m["name"] for m in mongo_db.metrics.find()) == ["loss", "taken"]
    assert len(writes) == 0, "the queue is emptied by execute"


def test_a_resync_trusts_what_the_store_remembers_yet_sees_every_edit_and_deleted_run(mongo_db, store):
    from sem_core.mongo import sync_state

    dirs = make_runs(store, 5)
    name = "mongodb://127.0.0.1:1/db"  # the database as the state files name it
    assert upload.sync_runs(mongo_db, dirs, state_key=name).counts()["uploaded"] == 5
    assert sync_state.read_state(store, name).fingerprints.keys() == {gid(i) for i in range(5)}

    # another copy of the store synced run 1 meanwhile: the remembered state is trusted, --verify asks
    mongo_db.runs.update_one({"config.global_id": gid(1)}, {"$set": {"sem.fingerprint": "other copy"}})
    assert upload.sync_runs(mongo_db, dirs, state_key=name).counts()["unchanged"] == 5
    assert upload.sync_runs(mongo_db, dirs, state_key=name, verify=True).counts()["updated"] == 1

    # a record edited in place (its folder's own mtime unchanged) is synced again
    folder_mtime = os.stat(dirs[2]).st_mtime_ns
    with open(dirs[2] / "info.json", "a", encoding="utf-8") as fh:
        fh.write(" ")
    assert os.stat(dirs[2]).st_mtime_ns == folder_mtime
    summary = upload.sync_runs(mongo_db, dirs, state_key=name)
    assert summary.counts() == {"uploaded": 0, "updated": 1, "unchanged": 4, "failed": 0}
    assert summary.updated == [str(dirs[2])]

    # a run deleted from the database (Omniboard, a script) is uploaded again
    mongo_db.runs.delete_one({"config.global_id": gid(3)})
    summary = upload.sync_runs(mongo_db, dirs, state_key=name)
    assert summary.uploaded == [str(dirs[3])] and summary.counts()["unchanged"] == 4
    assert mongo_db.runs.count_documents({}) == 5


def test_sem_sync_remembers_the_store_without_the_password_and_verify_checks_every_run(
    mongo_server, store, connect, isolated_home
):
    import uuid
    from urllib.parse import quote_plus

    name = "state_" + uuid.uuid4().hex[:8]
    connect(mongo_server.url(name))[name].command(
        "createUser", "writer", pwd="pw/secret", roles=[{"role": "readWrite", "db": name}]
    )
    url = f"mongodb://writer:{quote_plus('pw/secret')}@{mongo_server.address}/{name}?authSource={name}"
    make_runs(store, 3)
    env = {"HOME": str(isolated_home), "SEM_MONGO_URL": url}
    exp = store.parent.parent

    first = sem("sync", "-q", env=env, cwd=exp)
    assert first.returncode == 0 and "uploaded 3" in first.stdout, first.stderr
    [state_file] = (store / "_sync").glob("*.json")
    assert "secret" not in state_file.read_text() and quote_plus("pw/secret") not in state_file.read_text()

    # a run deleted while another was added: the run count is the same, only --verify sees it
    db = connect(url)[name]
    db.runs.delete_one({"config.global_id": gid(0)})
    db.runs.insert_one({"_id": 1000, "status": "COMPLETED", "config": {"global_id": "20990101T000000-other"}})
    assert "unchanged 3" in sem("sync", "-q", env=env, cwd=exp).stdout
    verified = sem("sync", "-q", "--verify", env=env, cwd=exp)
    assert verified.returncode == 0 and "uploaded 1, updated 0, unchanged 2" in verified.stdout, verified.stderr


def test_a_sync_of_several_batches_uploads_each_run_once_and_counts_the_unreadable(mongo_db, store):
    """More runs than one batch: a thread writes each batch while the next is read."""
    dirs = make_runs(store, 2 * upload.BATCH_RUNS + 50)
    broken = dirs[5::60]  # one run in each batch cannot be read
    for d in broken:
        (d / "config.json").write_text('{"global_id": "another"}')
    summary = upload.sync_runs(mongo_db, dirs)
    assert sorted(d for d, _ in summary.failed) == sorted(map(str, broken))
    assert len(summary.uploaded) == len(dirs) - len(broken)
    docs = {d["config"]["global_id"]: d for d in mongo_db.runs.find()}
    assert sorted(docs) == sorted(d.name for d in dirs if d not in broken)
    assert sorted(d["_id"] for d in docs.values()) == list(range(1, len(docs) + 1))
    assert all(docs[d.name]["sem"]["fingerprint"] == upload.local_fingerprint(d) for d in dirs if d not in broken)
    assert mongo_db.metrics.count_documents({}) == len(docs)
    again = upload.sync_runs(mongo_db, [d for d in dirs if d not in broken])
    assert again.counts() == {"uploaded": 0, "updated": 0, "unchanged": len(docs), "failed": 0}


def test_a_sync_killed_midway_leaves_what_the_next_sync_completes(mongo_db, mongo_url, store, isolated_home):
    import signal
    import time

    dirs = make_runs(store, 3 * upload.BATCH_RUNS)
    env = {"SEM_MONGO_URL": mongo_url, "HOME": str(isolated_home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sem_core.cli", "sync", "-q", str(store.parent.parent)],
        cwd=REPO,
        env=dict(os.environ, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while mongo_db.runs.estimated_document_count() < upload.BATCH_RUNS and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)  # between batches or in the middle of one
    proc.wait(timeout=60)

    done = sem("sync", str(store.parent.parent), env=env, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    docs = list(mongo_db.runs.find())
    assert sorted(d["config"]["global_id"] for d in docs) == sorted(d.name for d in dirs)  # each run once
    by_gid = {d["config"]["global_id"]: d for d in docs}
    assert all(by_gid[d.name]["sem"]["fingerprint"] == upload.local_fingerprint(d) for d in dirs)
    assert mongo_db.metrics.count_documents({}) == len(dirs)
    fs = gridfs.GridFS(mongo_db)
    assert all(fs.get(by_gid[d.name]["artifacts"][0]["file_id"]).read() == (d / "model.bin").read_bytes() for d in dirs)
    again = sem("sync", "--verify", str(store.parent.parent), env=env, cwd=REPO)
    assert f"uploaded 0, updated 0, unchanged {len(dirs)}, failed 0" in again.stdout, again.stdout + again.stderr
