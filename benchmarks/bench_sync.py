"""MongoDB sync benchmark: ``sem sync`` vs sacred's MongoObserver, side by side in one process.

    python benchmarks/bench_sync.py [--runs 1000] [--points 1000] [--live-jobs 100]

Starts a SecantusDB server (the tests' wire-protocol MongoDB) on a free port, writes --runs run
folders in sem's layout (3 metrics x --points points, one 16 KiB artifact, the model source),
then measures:

1. sem: ``sync_runs`` of all runs into an empty database (what ``sem sync`` does);
2. sacred: its MongoObserver writing the same runs live (a sacred Experiment logging the same
   metrics and artifact, run --runs times in this process), into an empty database whose metrics
   collection is given the (run_id, name) index sem creates: without it sacred's per-metric
   upserts scan the collection and grow quadratically; sacred without any observer is timed too;
3. the no-op re-sync of all runs (nothing changed; fresh client, indexes checked again);
4. per job, on a fresh server: a sem run (``sem_core.run.Run``: the same metrics and artifact)
   with the file observer only vs file + live Mongo observer (RUNNING at start, full record at
   end), and sacred's per-run MongoObserver cost (--live-jobs runs with minus without observer).

Prints a Markdown table (the README's "MongoDB sync") and writes benchmarks/results/sync.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.mongo_fixtures import SecantusServer, write_synthetic_run  # noqa: E402

METRICS = ("loss", "accuracy", "lr")
ARTIFACT_BYTES = 16 * 1024


def make_store(root: Path, runs: int, points: int) -> Path:
    store = root / "exp" / "models" / "runs"
    for i in range(runs):
        write_synthetic_run(store, f"20260101T120000-{i:012x}", i, metrics={m: points for m in METRICS},
                            artifact=os.urandom(ARTIFACT_BYTES), captured_out=f"run {i}\n")
    return store


def bench_sem_sync(url: str, store: Path) -> tuple[float, float, dict]:
    import pymongo

    from sem_core import records
    from sem_core.mongo import upload

    dirs = list(records.iter_run_dirs(store))
    db = pymongo.MongoClient(url).get_default_database()
    t = time.perf_counter()
    summary = upload.sync_runs(db, dirs)
    full = time.perf_counter() - t
    assert summary.counts()["uploaded"] == len(dirs), summary.failed[:3]
    noops = []
    for _ in range(3):
        upload._indexed.clear()
        fresh = pymongo.MongoClient(url).get_default_database()
        t = time.perf_counter()
        again = upload.sync_runs(fresh, list(records.iter_run_dirs(store)))
        noops.append(time.perf_counter() - t)
        assert again.counts()["unchanged"] == len(dirs)
        fresh.client.close()
    counts = {"runs": db.runs.count_documents({}), "metrics": db.metrics.count_documents({})}
    return full, sorted(noops)[1], counts


def sacred_experiment(url: str | None, db_name: str, artifact: Path, points: int):
    from sacred import Experiment
    from sacred.observers import MongoObserver

    ex = Experiment("bench", interactive=True, save_git_info=False)
    if url is not None:
        ex.observers.append(MongoObserver(url=url, db_name=db_name))

    @ex.config
    def cfg():
        order_id = 0  # noqa: F841

    @ex.main
    def main(_run, order_id):
        for name in METRICS:
            for step in range(points):
                _run.log_scalar(name, 1.0 / (step + 1) + order_id, step)
        _run.add_artifact(str(artifact), name="model.bin")
        return 0.5 + order_id

    return ex


def bench_sacred(url: str | None, runs: int, points: int, workdir: Path) -> tuple[float, list[float]]:
    import logging

    artifact = workdir / "model.bin"
    artifact.write_bytes(os.urandom(ARTIFACT_BYTES))
    ex = sacred_experiment(url, "sacred_bench", artifact, points)
    logging.getLogger("bench").setLevel(logging.ERROR)
    ex.logger = logging.getLogger("bench")
    devnull = open(os.devnull, "w")
    saved = sys.stdout
    per_run = []
    t = time.perf_counter()
    try:
        sys.stdout = devnull  # sacred prints the artifact's content type for every run
        for i in range(runs):
            t_run = time.perf_counter()
            ex.run(config_updates={"order_id": i}, options={"--loglevel": "ERROR"})
            per_run.append(time.perf_counter() - t_run)
    finally:
        sys.stdout = saved
    return time.perf_counter() - t, per_run


def bench_live_jobs(url: str | None, jobs: int, points: int, root: Path) -> float:
    """Seconds per job of a sem run with the file observer (+ the live Mongo observer if url)."""
    from sem_core.mongo.connection import settings_from_url
    from sem_core.observers.mongo import MongoLiveObserver
    from sem_core.observers.file import FileStorageObserver
    from sem_core.run import Run
    from sem_core.sources import file_md5

    store = root / ("live-mongo" if url else "live-file") / "models" / "runs"
    store.mkdir(parents=True)
    source = store.parent / "m_bench.py"
    source.write_text("# bench model\n")
    artifact = root / "live-artifact.bin"
    artifact.write_bytes(os.urandom(ARTIFACT_BYTES))
    settings = settings_from_url(url, "bench") if url else None
    ex_info = {"name": "m_bench", "base_dir": str(source.parent), "sources": [[source.name, file_md5(source)]],
               "dependencies": [], "repositories": [], "mainfile": source.name}
    t = time.perf_counter()
    for i in range(jobs):
        gid = f"20260101T130000-{i:012x}"
        observers = [FileStorageObserver(store)]
        if settings:
            observers.append(MongoLiveObserver(settings, store))
        run = Run(global_id=gid, config={"order_id": i, "global_id": gid}, ex_info=ex_info,
                  host_info={"hostname": "bench"}, command="main", meta_info={}, observers=observers,
                  heartbeat_interval=3600)
        run.start()
        try:
            for name in METRICS:
                for step in range(points):
                    run.log_scalar(name, 1.0 / (step + 1), step)
            run.add_artifact(artifact, name="model.bin")
        finally:
            run.complete(0.5)
    return (time.perf_counter() - t) / jobs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--points", type=int, default=1000)
    p.add_argument("--live-jobs", type=int, default=100)
    args = p.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="sem-bench-sync-"))
    server = SecantusServer(root / "db")
    server.start()
    try:
        import pymongo

        t = time.perf_counter()
        store = make_store(root, args.runs, args.points)
        print(f"wrote {args.runs} run folders in {time.perf_counter() - t:.1f} s; server {server.address}", flush=True)

        sem_full, sem_noop, counts = bench_sem_sync(server.url("sem_bench"), store)
        print(f"sem sync: {sem_full:.2f} s, no-op re-sync {sem_noop:.3f} s", flush=True)

        sacred_db = pymongo.MongoClient(server.url("sacred_bench")).sacred_bench
        sacred_db.metrics.create_index([("run_id", 1), ("name", 1)])  # see the module docstring
        sacred_mongo, sacred_per_run = bench_sacred(server.url("sacred_bench"), args.runs, args.points, root)
        print(f"sacred MongoObserver: {sacred_mongo:.2f} s", flush=True)
        sacred_bare, _ = bench_sacred(None, args.runs, args.points, root)
        print(f"sacred without observer: {sacred_bare:.2f} s", flush=True)
        assert sacred_db.runs.count_documents({}) == args.runs

    finally:
        server.stop()
    # per job, on a fresh server (the one above is slowed down by everything sacred wrote):
    # sem's file observer alone vs with live Mongo sync, and sacred with vs without its observer
    fresh = SecantusServer(root / "db-live")
    fresh.start()
    try:
        job_file = bench_live_jobs(None, args.live_jobs, args.points, root)
        job_mongo = bench_live_jobs(fresh.url("live_bench"), args.live_jobs, args.points, root)
        pymongo.MongoClient(fresh.url("sacred_live")).sacred_live.metrics.create_index([("run_id", 1), ("name", 1)])
        sacred_live, _ = bench_sacred(fresh.url("sacred_live"), args.live_jobs, args.points, root)
        sacred_live_bare, _ = bench_sacred(None, args.live_jobs, args.points, root)
    finally:
        fresh.stop()
        shutil.rmtree(root, ignore_errors=True)

    sacred_observer_per_run = (sacred_live - sacred_live_bare) / args.live_jobs
    live_cost = job_mongo - job_file
    result = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "runs": args.runs, "points_per_metric": args.points, "metrics_per_run": len(METRICS),
        "sem_sync_s": sem_full, "sem_noop_resync_s": sem_noop,
        "sacred_mongo_observer_s": sacred_mongo, "sacred_no_observer_s": sacred_bare,
        "speedup_vs_sacred_observer": sacred_mongo / sem_full,
        "speedup_vs_sacred_observer_cost": (sacred_mongo - sacred_bare) / sem_full,
        "job_file_only_s": job_file, "job_file_and_live_mongo_s": job_mongo,
        "live_sync_cost_per_job_s": live_cost, "sacred_observer_cost_per_run_s": sacred_observer_per_run,
        "live_jobs": args.live_jobs,
        "database_counts": counts,
        "sacred_mongo_first_100_median_s": statistics.median(sacred_per_run[:100]),
        "sacred_mongo_last_100_median_s": statistics.median(sacred_per_run[-100:]),
    }
    out = HERE / "results" / "sync.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))

    n = args.runs
    print()
    print(f"| {n} runs, {len(METRICS)} metrics x {args.points} points, 1 artifact each | time | per run |")
    print("|---|---:|---:|")
    print(f"| sacred MongoObserver, live (sacred runs included) | {sacred_mongo:.1f} s | {sacred_mongo / n * 1000:.1f} ms |")
    print(f"| sacred without observer (its own run cost) | {sacred_bare:.1f} s | {sacred_bare / n * 1000:.1f} ms |")
    print(f"| **sem sync** into an empty database | **{sem_full:.1f} s** | {sem_full / n * 1000:.1f} ms |")
    print(f"| sem sync, nothing changed (no-op) | {sem_noop:.2f} s | {sem_noop / n * 1000:.2f} ms |")
    print()
    print(f"sem sync is {sacred_mongo / sem_full:.1f}x faster than sacred's live MongoObserver "
          f"({(sacred_mongo - sacred_bare) / sem_full:.1f}x counting only the observer's share).")
    print(f"Per job ({args.live_jobs} jobs, fresh database): sem file observer only {job_file * 1000:.1f} ms, "
          f"with live Mongo sync {job_mongo * 1000:.1f} ms (+{live_cost * 1000:.1f} ms); sacred "
          f"{sacred_live_bare / args.live_jobs * 1000:.1f} ms without observer, "
          f"{sacred_live / args.live_jobs * 1000:.1f} ms with its MongoObserver "
          f"(+{sacred_observer_per_run * 1000:.1f} ms).")
    print(f"sacred's MongoObserver runs slow down as the database fills: median "
          f"{result['sacred_mongo_first_100_median_s'] * 1000:.0f} ms per run for the first 100 runs, "
          f"{result['sacred_mongo_last_100_median_s'] * 1000:.0f} ms for the last 100.")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
