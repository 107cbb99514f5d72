"""The MongoDB clients of a process are owned by the experiment's RunLifecycle (no module
global): every job a worker runs syncs through one client, and a pickled lifecycle (the
experiment on its way to a worker) carries none."""

from __future__ import annotations

import pickle

from sem_core.callback import build_observers
from sem_core.lifecycle import RunLifecycle
from sem_core.mongo.connection import settings_from_url
from sem_core.observers.mongo import MongoLiveObserver
from sem_core.run import Run


def run_job(store, observers, gid):
    run = Run(
        global_id=gid,
        config={"order_id": 0, "global_id": gid},
        ex_info={"name": "m", "sources": []},
        host_info={"hostname": "h"},
        command="main",
        meta_info={},
        observers=observers,
        heartbeat_interval=60,
    )
    run.start()
    run.log_scalar("loss", 1.0)
    run.complete(0.5)


def test_jobs_of_one_process_sync_through_one_client(tmp_path, mongo_url, mongo_db):
    settings = settings_from_url(mongo_url, "test")
    store = tmp_path / "runs"
    lifecycle = RunLifecycle()
    live = []
    for i in range(3):
        observers = build_observers(store, settings, lifecycle)
        live.append(next(o for o in observers if isinstance(o, MongoLiveObserver)))
        run_job(store, observers, f"20260101T000000-{i:012x}")
    assert live[0].clients is live[1].clients is live[2].clients is lifecycle.mongo_clients
    assert list(lifecycle.mongo_clients.databases) == [settings.url]  # one client, connected once
    assert sorted(d["status"] for d in mongo_db.runs.find()) == ["COMPLETED"] * 3
    # the experiment travels to workers by pickle: each worker makes its own clients
    assert pickle.loads(pickle.dumps(lifecycle)).mongo_clients is None
    lifecycle.mongo_clients.close()
