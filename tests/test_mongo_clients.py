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


def test_the_writer_thread_outlives_a_failing_task_and_its_report_hides_the_password(caplog):
    from sem_core.observers.mongo import BackgroundWriter

    writer = BackgroundWriter()
    ran: list[str] = []

    def failing() -> None:
        raise RuntimeError("mongodb://user:hunter2@db.example/x refused")

    assert writer.submit(failing).wait(30)
    assert writer.submit(lambda: ran.append("after")).wait(30)
    assert ran == ["after"]
    assert "hunter2" not in caplog.text and "mongodb://user:***@db.example/x refused" in caplog.text


def test_a_forked_child_gets_a_writer_thread_of_its_own():
    import os
    import warnings

    from sem_core.observers.mongo import BackgroundWriter

    writer = BackgroundWriter()
    assert writer.submit(lambda: None).wait(30)  # the parent's thread exists
    read, write = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns of forking a threaded process: the point here
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: the parent's thread is not here; a task handed over still runs
        os.close(read)
        ok = writer.submit(lambda: os.write(write, b"ran")).wait(30)
        os._exit(0 if ok else 1)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and os.read(read, 10) == b"ran"
