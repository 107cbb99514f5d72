"""Live sync during sweeps (real model files, real SecantusDB server): RUNNING at start, the full
record at the end, a database that dies mid-sweep, and passwords kept out of every record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import quote_plus

import gridfs
import pytest

from sem_core import records
from tests.conftest import run_model

pytestmark = pytest.mark.mongo


def sem(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sem_core.cli", *args],
        cwd=cwd,
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def runs_by_gid(db) -> dict:
    out: dict = {}
    for doc in db.runs.find():
        out.setdefault(doc["config"]["global_id"], []).append(doc)
    return out


@pytest.mark.slow
def test_live_sync_of_the_example_sweep(example_dir, mongo_url, mongo_db, isolated_home):
    res = run_model(
        example_dir / "models" / "m_linear.py", env={"SEM_MONGO_URL": mongo_url, "HOME": str(isolated_home)}
    )
    assert res.returncode == 0, res.stderr[-3000:]

    local = list(records.iter_runs(example_dir / "models" / "runs"))
    remote = runs_by_gid(mongo_db)
    assert len(local) == 10 and set(remote) == {r.global_id for r in local}
    fs = gridfs.GridFS(mongo_db)
    for rec in local:
        [doc] = remote[rec.global_id]
        assert doc["status"] == "COMPLETED" and doc["config"] == rec.config
        metrics = {m["name"]: m["values"] for m in mongo_db.metrics.find({"run_id": doc["_id"]})}
        assert metrics == {name: series["values"] for name, series in rec.metrics.items()}
        assert doc["result"] == rec.run["result"]
        [artifact] = doc["artifacts"]
        assert fs.get(artifact["file_id"]).read() == (Path(rec.location) / "model.pickle").read_bytes()
        assert not (Path(rec.location) / ".sem-unsynced").exists()
    assert "unreachable" not in res.stderr + res.stdout


RUNNING_CHECK = textwrap.dedent(
    """
    import os
    import pymongo
    from sem_core import Experiment

    ex = Experiment(__file__)

    @ex.configs
    def get_config():
        return [{"name": "probe", "fold": f} for f in range(2)]

    @ex.automain
    def main(config):
        import time

        db = pymongo.MongoClient(os.environ["SEM_MONGO_URL"]).get_default_database()
        # the start is sent while the job runs (sem's writer thread): it arrives, the job going on
        deadline = time.monotonic() + 60
        while (mine := db.runs.find_one({"config.global_id": config["global_id"]})) is None:
            assert time.monotonic() < deadline, "the run's start never reached the database"
            time.sleep(0.01)
        return mine["status"]  # what a dashboard shows while the job runs
    """
)


def test_a_running_job_is_in_the_database_as_running(write_model, mongo_url, mongo_db, isolated_home):
    model = write_model(RUNNING_CHECK)
    res = run_model(model, env={"SEM_MONGO_URL": mongo_url, "HOME": str(isolated_home)})
    assert res.returncode == 0, res.stderr[-3000:]
    local = list(records.iter_runs(model.parent / "runs"))
    assert [r.run["result"] for r in local] == ["RUNNING", "RUNNING"]
    assert sorted(d["status"] for d in mongo_db.runs.find()) == ["COMPLETED", "COMPLETED"]


STOPS_THE_DATABASE = textwrap.dedent(
    """
    import os, signal, socket, time
    from pathlib import Path
    from sem_core import Experiment

    ex = Experiment(__file__)

    @ex.configs
    def get_config():
        return [{"name": "outage", "fold": f} for f in range(6)]

    @ex.automain
    def main(config):
        if config["order_id"] == 2:  # the database dies while this job runs, its start sent
            import pymongo
            db = pymongo.MongoClient(os.environ["SEM_MONGO_URL"]).get_default_database()
            deadline = time.monotonic() + 60
            while db.runs.find_one({"config.global_id": config["global_id"]}) is None:
                assert time.monotonic() < deadline, "the run's start never reached the database"
                time.sleep(0.01)
            # to the server's main thread: secantusd stops in its SIGTERM handler, which CPython
            # runs only once the main thread wakes; a signal the kernel hands another thread waits
            import ctypes
            pid = int(os.environ["TEST_DB_PID"])
            ctypes.CDLL(None).tgkill(pid, pid, signal.SIGTERM)
            deadline = time.monotonic() + 180  # a loaded machine may take long to shut it down
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", int(os.environ["TEST_DB_PORT"])), 0.2).close()
                    time.sleep(0.05)
                except OSError:
                    break
            # the writer thread's try to send it ahead fails: the run's end reports it unsynced
            path = Path(config["global_id"] + ".txt")
            path.write_text("written while the database was down")
            ex.add_artifact(path, name="outage.txt")
            path.unlink()
        ex.log_scalar("fold_value", config["fold"])
        return config["fold"]
    """
)


@pytest.mark.slow
def test_database_down_mid_sweep_then_sem_sync_uploads_each_run_once(
    write_model, private_mongo_server, isolated_home, connect
):
    server = private_mongo_server
    url = server.url("outage")
    model = write_model(STOPS_THE_DATABASE)
    env = {
        "SEM_MONGO_URL": url,
        "HOME": str(isolated_home),
        "TEST_DB_PID": str(server.proc.pid),
        "TEST_DB_PORT": str(server.port),
    }

    res = run_model(model, env=env)

    # the sweep is complete locally, with one clear warning
    assert res.returncode == 0, res.stderr[-3000:]
    output = res.stdout + res.stderr
    assert output.count("is unreachable") == 1, output[-3000:]
    assert "sem sync" in output
    store = model.parent / "runs"
    local = {r.order_id: r for r in records.iter_runs(store)}
    assert sorted(local) == list(range(6)) and {r.status for r in local.values()} == {"COMPLETED"}
    unsynced = {o for o, r in local.items() if (Path(r.location) / ".sem-unsynced").exists()}
    assert unsynced == {2, 3, 4, 5}

    server.stop()
    server.start()
    db = connect(url, serverSelectionTimeoutMS=5000).get_default_database()
    before = runs_by_gid(db)
    assert {local[o].global_id for o in (0, 1)} <= set(before)
    assert before[local[2].global_id][0]["status"] == "RUNNING"  # sent at its start, before the outage

    first = sem("sync", env=env, cwd=model.parent.parent)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "uploaded 3, updated 1, unchanged 2, failed 0" in first.stdout
    second = sem("sync", env=env, cwd=model.parent.parent)
    assert "uploaded 0, updated 0, unchanged 6, failed 0" in second.stdout

    after = runs_by_gid(db)
    assert set(after) == {r.global_id for r in local.values()}
    assert all(len(docs) == 1 and docs[0]["status"] == "COMPLETED" for docs in after.values())
    assert db.metrics.count_documents({}) == 6
    assert not any((Path(r.location) / ".sem-unsynced").exists() for r in local.values())
    [artifact] = after[local[2].global_id][0]["artifacts"]
    assert gridfs.GridFS(db).get(artifact["file_id"]).read() == b"written while the database was down"


CHECKS_THE_JOB_BEFORE = textwrap.dedent(
    """
    import os
    from pathlib import Path
    import gridfs, pymongo
    from sem_core import Experiment
    from sem_core.mongo.upload import local_fingerprint

    ex = Experiment(__file__)

    @ex.configs
    def get_config():
        return [{"name": "chain", "fold": f} for f in range(4)]

    def problems_of_the_job_before(order_id):
        # that job has returned: its final record must be in the database, whole
        db = pymongo.MongoClient(os.environ["SEM_MONGO_URL"]).get_default_database()
        doc = db.runs.find_one({"config.order_id": order_id})
        if doc is None:
            return ["no document"]
        run_dir = Path(__file__).parent / "runs" / doc["config"]["global_id"]
        problems = []
        if doc["status"] != "COMPLETED" or doc["result"] != order_id:
            problems.append(f"status {doc['status']}, result {doc.get('result')}")
        if doc["sem"]["fingerprint"] != local_fingerprint(run_dir):
            problems.append("the document is not of the folder's final state")
        if not doc.get("meta", {}).get("sem") or doc.get("config", {}).get("fold") != order_id:
            problems.append("fields written at the start are missing")
        if [a["name"] for a in doc["artifacts"]] != ["model.bin"]:
            problems.append(f"artifacts {doc['artifacts']}")
        elif gridfs.GridFS(db).get(doc["artifacts"][0]["file_id"]).read() != (run_dir / "model.bin").read_bytes():
            problems.append("the artifact's content differs")
        metrics = {m["name"]: m["values"] for m in db.metrics.find({"run_id": doc["_id"]})}
        if metrics != {"loss": [float(order_id + step) for step in range(50)]}:
            problems.append(f"metrics {sorted(metrics)}")
        return problems

    @ex.automain
    def main(config):
        problems = problems_of_the_job_before(config["order_id"] - 1) if config["order_id"] else []
        for step in range(50):
            ex.log_scalar("loss", float(config["order_id"] + step), step)
        path = Path(config["global_id"] + ".bin")
        path.write_bytes(os.urandom(300_000))  # more than one GridFS chunk
        ex.add_artifact(path, name="model.bin")
        path.unlink()
        return problems or config["order_id"]
    """
)


def test_each_job_returns_with_its_final_record_in_the_database(write_model, mongo_url, isolated_home):
    """The start and the artifact go to the database while the job runs; the job returns only
    once its final document, metrics and artifact are there: each job checks the one before."""
    model = write_model(CHECKS_THE_JOB_BEFORE)
    res = run_model(model, env={"SEM_MONGO_URL": mongo_url, "HOME": str(isolated_home)})
    assert res.returncode == 0, res.stderr[-3000:]
    local = sorted(records.iter_runs(model.parent / "runs"), key=lambda r: r.order_id)
    assert [r.run["result"] for r in local] == [0, 1, 2, 3]  # else: what a job found wrong in the one before


KILLED_WHILE_SENDING = textwrap.dedent(
    """
    import os, signal
    from pathlib import Path
    from sem_core import Experiment

    ex = Experiment(__file__)

    @ex.configs
    def get_config():
        return [{"name": "killed", "fold": f} for f in range(3)]

    @ex.automain
    def main(config):
        ex.log_scalar("fold_value", config["fold"])
        path = Path(config["global_id"] + ".bin")
        path.write_bytes(os.urandom(4 * 2**20))
        ex.add_artifact(path, name="big.bin")
        path.unlink()
        if config["order_id"] == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # while the writer thread sends the artifact
        return config["fold"]
    """
)


def test_a_job_killed_while_its_artifact_is_sent_leaves_what_sem_sync_repairs(
    write_model, mongo_url, mongo_db, isolated_home
):
    model = write_model(KILLED_WHILE_SENDING)
    env = {"SEM_MONGO_URL": mongo_url, "HOME": str(isolated_home)}
    res = run_model(model, env=env)
    assert res.returncode == -signal.SIGKILL
    store = model.parent / "runs"
    local = {r.order_id: r for r in records.iter_runs(store)}
    assert sorted(local) == [0, 1]  # the sweep died with its job 1

    first = sem("sync", env=env, cwd=model.parent.parent)
    assert first.returncode == 0, first.stdout + first.stderr
    again = sem("sync", "--verify", env=env, cwd=model.parent.parent)
    assert "uploaded 0, updated 0, unchanged 2, failed 0" in again.stdout, again.stdout + again.stderr

    remote = runs_by_gid(mongo_db)
    fs = gridfs.GridFS(mongo_db)
    for rec in local.values():
        [doc] = remote[rec.global_id]
        assert doc["status"] == rec.status and doc["config"] == rec.config
        [artifact] = doc["artifacts"]
        assert fs.get(artifact["file_id"]).read() == (Path(rec.location) / "big.bin").read_bytes()
        metrics = {m["name"]: m["values"] for m in mongo_db.metrics.find({"run_id": doc["_id"]})}
        assert metrics == {name: series["values"] for name, series in rec.metrics.items()}
    # as the kill left the record (no heartbeat wrote its metric), and so in the database
    assert local[0].metrics and not local[1].metrics and local[1].status == "RUNNING"


PASSWORD = "s3cr#t:p@ss w0rd"


@pytest.mark.slow
def test_passwords_stay_out_of_records_logs_and_the_database(example_dir, mongo_server, isolated_home, connect):
    import uuid

    name = "auth_" + uuid.uuid4().hex[:8]
    admin = connect(mongo_server.url(name))
    admin[name].command("createUser", "semuser", pwd=PASSWORD, roles=[{"role": "readWrite", "db": name}])
    url = f"mongodb://semuser:{quote_plus(PASSWORD)}@{mongo_server.address}/{name}?authSource={name}"
    (example_dir / "models" / "m_gd.py").unlink()  # one model is enough here

    res = run_model(example_dir / "models" / "m_linear.py", env={"SEM_MONGO_URL": url, "HOME": str(isolated_home)})
    assert res.returncode == 0, res.stderr[-3000:]
    db = admin[name]
    assert db.runs.count_documents({"status": "COMPLETED"}) == 10  # authenticated and synced

    spellings = (PASSWORD, quote_plus(PASSWORD))
    assert not any(s in res.stdout + res.stderr for s in spellings)
    for path in example_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(s.encode() in data for s in spellings), f"password written to {path}"
    dumped = json.dumps(
        [list(db[c].find({}, {"values": 0, "steps": 0, "timestamps": 0})) for c in ("runs", "metrics")], default=str
    )
    assert not any(s in dumped for s in spellings)

    # a wrong password: the job still runs, the warning names the database without the password
    wrong = url.replace(quote_plus(PASSWORD), quote_plus("not-" + PASSWORD))
    res = run_model(
        example_dir / "models" / "m_linear.py", "+order_id=0", env={"SEM_MONGO_URL": wrong, "HOME": str(isolated_home)}
    )
    assert res.returncode == 0, res.stderr[-3000:]
    output = res.stdout + res.stderr
    assert "is unreachable" in output and f"semuser:***@{mongo_server.address}/{name}" in output
    assert "not-" not in output and quote_plus("not-" + PASSWORD) not in output


@pytest.mark.slow
def test_a_password_typed_in_the_override_stays_out_of_every_file_sem_and_hydra_write(
    example_dir, mongo_server, isolated_home, connect
):
    """The discouraged way (a warning says so): the runs still sync, and the .hydra/ files and
    multirun.yaml Hydra saves hold the URL with *** for the password."""
    import uuid

    name = "cli_" + uuid.uuid4().hex[:8]
    admin = connect(mongo_server.url(name))
    admin[name].command("createUser", "semuser", pwd=PASSWORD, roles=[{"role": "readWrite", "db": name}])
    url = f"mongodb://semuser:{quote_plus(PASSWORD)}@{mongo_server.address}/{name}?authSource={name}"
    (example_dir / "models" / "m_gd.py").unlink()

    res = run_model(
        example_dir / "models" / "m_linear.py",
        "+order_id=0,1",
        f"sem.mongo.url='{url}'",
        env={"HOME": str(isolated_home)},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "carries a password on the command line" in res.stderr
    assert admin[name].runs.count_documents({"status": "COMPLETED"}) == 2

    spellings = (PASSWORD, quote_plus(PASSWORD))
    hydra_files = sorted(example_dir.rglob(".hydra/overrides.yaml")) + sorted(example_dir.rglob("multirun.yaml"))
    assert len(hydra_files) == 3
    assert all(f"semuser:***@{mongo_server.address}" in f.read_text() for f in hydra_files)
    for path in example_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(s.encode() in data for s in spellings), f"password written to {path}"


def test_a_job_end_sync_with_stale_metric_knowledge_still_leaves_one_full_document_per_metric(mongo_db, tmp_path):
    """The job's end trusts what its start uploaded (no query first); another sync that replaced
    the run's metric documents in between is caught and nothing is duplicated or lost."""
    from sem_core.mongo import upload
    from tests.mongo_fixtures import write_synthetic_run

    store = tmp_path / "runs"
    run_dir = write_synthetic_run(store, "20260101-120000-aaaaaaaa", metrics={"loss": 5, "acc": 3})
    target = upload.SyncTarget(mongo_db)
    first = upload.sync_runs(target, [run_dir])
    run_id = first.run_ids[str(run_dir)]
    # a concurrent `sem sync` of the same run gave its metric documents other _ids
    mongo_db.metrics.delete_many({"run_id": run_id})
    mongo_db.metrics.insert_many(
        [{"run_id": run_id, "name": name, "steps": [], "values": [], "timestamps": []} for name in ("loss", "acc")]
    )
    os.utime(run_dir / "run.json", ns=(0, 10**18))  # the run changed since: its fingerprint differs
    second = upload.sync_runs(
        target,
        [run_dir],
        known={run_dir.name: (run_id, None)},
        known_metrics={run_dir.name: first.metric_ids[str(run_dir)]},
    )
    assert second.run_ids[str(run_dir)] == run_id and not second.failed
    docs = list(mongo_db.metrics.find({"run_id": run_id}))
    assert sorted(d["name"] for d in docs) == ["acc", "loss"]
    assert {d["name"]: len(d["values"]) for d in docs} == {"loss": 5, "acc": 3}
    doc = mongo_db.runs.find_one({"_id": run_id})
    linked = sorted((m["name"], m["id"]) for m in doc["info"]["metrics"])
    assert linked == sorted((d["name"], str(d["_id"])) for d in docs)
    assert mongo_db.runs.count_documents({}) == 1


def test_a_job_end_sync_finding_metrics_a_concurrent_sync_inserted_replaces_them_in_place(mongo_db, tmp_path):
    """The job's start uploaded no metric, so its end inserts them; a `sem sync` that uploaded
    them in between (a duplicate key) makes it replace those documents instead: one per name."""
    from sem_core.mongo import upload
    from tests.mongo_fixtures import write_synthetic_run

    store = tmp_path / "runs"
    run_dir = write_synthetic_run(store, "20260101-120000-bbbbbbbb", metrics={"loss": 4})
    target = upload.SyncTarget(mongo_db)
    run_id = upload.sync_runs(target, [run_dir]).run_ids[str(run_dir)]
    theirs = mongo_db.metrics.find_one({"run_id": run_id, "name": "loss"})["_id"]
    os.utime(run_dir / "run.json", ns=(0, 10**18))  # the run changed since: its fingerprint differs
    summary = upload.sync_runs(
        target, [run_dir], known={run_dir.name: (run_id, None)}, known_metrics={run_dir.name: {}}
    )
    assert not summary.failed and summary.metric_ids[str(run_dir)] == {"loss": theirs}
    [doc] = mongo_db.metrics.find({"run_id": run_id})
    assert doc["_id"] == theirs and len(doc["values"]) == 4
    assert mongo_db.runs.find_one({"_id": run_id})["info"]["metrics"] == [{"id": str(theirs), "name": "loss"}]
