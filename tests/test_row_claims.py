"""Two sweeps of one experiment started at the same time against one database, with
``sem.skip_completed=true``: each row runs once (rows are claimed in MongoDB before their
job starts). Real SecantusDB server, real processes."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import load_store

pytestmark = pytest.mark.mongo

RACE_MODEL = """
import os, time
from sem_core import Experiment

# both processes wait here for the barrier file, so that they start their sweeps together
while not os.path.exists(os.environ["RACE_BARRIER"]):
    time.sleep(0.002)

ex = Experiment(__file__)

@ex.configs
def get_config():
    return [{"i": i} for i in range(10)]

@ex.automain
def main(config):
    with open(os.environ["RACE_OUT"], "a") as fh:
        fh.write(f"{config['i']}\\n")
    if os.environ.get("RACE_FAIL") == str(config["i"]):
        raise ValueError("this row fails")
"""


def start(model: Path, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(model), "sem.skip_completed=true", *args],
        cwd=str(model.parent),
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.parametrize("round_", range(10))
def test_two_sweeps_started_together_run_each_row_exactly_once(write_model, mongo_server, tmp_path, round_):
    model = write_model(RACE_MODEL, "m_race.py")
    out, barrier = tmp_path / "lines.txt", tmp_path / "go"
    env = {
        "SEM_MONGO_URL": mongo_server.url(f"race_{os.getpid()}_{round_}_{time.time_ns()}"),
        "RACE_OUT": str(out),
        "RACE_BARRIER": str(barrier),
    }
    # the second "user" keeps a store of their own (another machine): only the database is shared
    procs = [start(model, env), start(model, env, f"sem.storage={tmp_path / 'other-store'}")]
    barrier.touch()
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sorted(int(x) for x in out.read_text().split()) == list(range(10))
    stores = [model.parent / "runs", tmp_path / "other-store"]
    ran = sorted(r["config"]["i"] for s in stores if s.exists() for r in load_store(s))
    assert ran == list(range(10))
    # a row one sweep left to the other is reported with where and by whom it ran: still running
    # there, completed there, or (planned after the other had finished it) completed as its run
    for output, store in zip(outputs, stores):
        if not store.exists() or len(load_store(store)) < 10:
            assert "elsewhere (" in output or "elsewhere as" in output or "COMPLETED as" in output, output


def test_a_live_claim_elsewhere_is_skipped_a_stale_one_taken_over_and_claims_are_marked_at_the_end(
    write_model, mongo_url, mongo_db, tmp_path
):
    model = write_model(RACE_MODEL, "m_race.py")
    barrier = tmp_path / "go"
    barrier.touch()
    env = {
        "SEM_MONGO_URL": mongo_url,
        "RACE_OUT": str(tmp_path / "lines.txt"),
        "RACE_BARRIER": str(barrier),
        "RACE_FAIL": "2",
    }
    plan = subprocess.run(
        [sys.executable, "-m", "sem_core.cli", "plan", "--json", str(model)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
    ).stdout
    import json

    eids = {json.loads(line)["order_id"]: json.loads(line)["experiment_id"] for line in plan.splitlines()}
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    claims = mongo_db["sem_claims"]
    # row 0: a live run on another machine; row 1: a run whose machine died an hour ago
    claims.insert_one(
        {
            "_id": f"m_race.py/{eids[0]}",
            "global_id": "20260101T000000-aaaaaaaaaaaa",
            "host": "gpu7",
            "user": "alice",
            "status": "RUNNING",
            "heartbeat": now,
        }
    )
    claims.insert_one(
        {
            "_id": f"m_race.py/{eids[1]}",
            "global_id": "20260101T000000-bbbbbbbbbbbb",
            "host": "gpu8",
            "user": "bob",
            "status": "RUNNING",
            "heartbeat": now - dt.timedelta(hours=1),
        }
    )
    proc = start(model, env, "+order_id=0,1,2,3", "sem.claim_stale_after=600")
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 1, output  # row 2 fails
    assert "running elsewhere (gpu7, alice)" in output
    ran = {r["config"]["order_id"]: r["run"]["status"] for r in load_store(model.parent / "runs")}
    assert ran == {1: "COMPLETED", 2: "FAILED", 3: "COMPLETED"}
    docs = {d["_id"].split("/")[1]: d for d in claims.find()}
    assert docs[eids[0]]["host"] == "gpu7"  # a live claim is left alone
    assert docs[eids[1]]["status"] == "COMPLETED" and docs[eids[1]]["took_over"]["host"] == "gpu8"
    assert docs[eids[2]]["status"] == "FAILED" and docs[eids[3]]["status"] == "COMPLETED"
    assert {docs[eids[i]]["global_id"] for i in (1, 2, 3)} == {r["dir"].name for r in load_store(model.parent / "runs")}

    # a failed row's claim does not hold the row: the next sweep runs it again; a completed one does
    env.pop("RACE_FAIL")
    proc = start(model, env, "+order_id=2,3")
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, output
    assert "order_id 3" in output and "COMPLETED as" in output
    assert claims.find_one({"_id": f"m_race.py/{eids[2]}"})["status"] == "COMPLETED"
