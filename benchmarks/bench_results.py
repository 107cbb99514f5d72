"""Benchmark: load 5,000 runs and build the fold-aggregated results table.

Contenders, side by side in one process on the same store (written by sem's FileStorageObserver
in sacred's file layout):

- ``plain loop``: what a user writes - ``json.load`` run.json, config.json and metrics.json of
  every run folder, one dict per run, ``pd.DataFrame``, ``groupby(config_id).agg(mean, std,
  count)`` over COMPLETED runs (no de-duplication);
- ``sem, first load``: ``load_runs`` + ``results_table`` with an empty summary cache (it reads
  every record and writes the cache);
- ``sem, cached``: the same again (two stat calls per run folder, no record read);
- ``sem, cached, 100 runs changed``: as after a new sweep - only those 100 runs are read again;
- sacred's own reader: sacred 0.8 has none for FileStorageObserver stores (it only writes them)
  and incense reads only MongoDB, so there is no sacred contender for files.

Usage: python benchmarks/bench_results.py [--runs 5000] [--points 100] [--repeat 5] [--store DIR]
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from sem_core.results import load_runs, results_table  # noqa: E402
from tests.results_store import T0, write_run  # noqa: E402

FOLDS = 5
TEST_METRICS = ("test_rmse", "test_mae", "test_r2", "test_nlpd")


def build_store(store: Path, n_runs: int, points: int) -> None:
    """n_runs runs: n_runs/5 configurations x 5 folds, a training curve of ``points`` steps and
    four final test metrics each; 2% FAILED."""
    store.mkdir(parents=True, exist_ok=True)
    for i in range(n_runs):
        config, fold = divmod(i, FOLDS)
        row = {"name": "mlp", "lr": 10 ** -(1 + config % 4), "width": 32 * (1 + config // 4 % 8),
               "opt": {"kind": "adam", "wd": config / 1000}, "seed": config, "fold": fold}
        loss = [1.0 / (1 + s) + (i % 7) / 100 for s in range(points)]
        metrics = {"train_loss": loss, **{m: [((i * 31 + k * 17) % 997) / 997] for k, m in enumerate(TEST_METRICS)}}
        write_run(store, row, i, metrics, status="FAILED" if i % 50 == 49 else "COMPLETED",
                  start=T0 + dt.timedelta(seconds=i), global_id=f"20260101T000000-{i:012x}")


def plain_loop(store: Path):
    rows = []
    for d in sorted(store.iterdir()):
        if not (d / "run.json").exists():
            continue
        with open(d / "run.json") as fh:
            run = json.load(fh)
        with open(d / "config.json") as fh:
            config = json.load(fh)
        metrics = {}
        if (d / "metrics.json").exists():
            with open(d / "metrics.json") as fh:
                metrics = json.load(fh)
        rows.append({**config, "status": run["status"], **{k: v["values"][-1] for k, v in metrics.items()}})
    df = pd.DataFrame(rows)
    done = df[df["status"] == "COMPLETED"]
    return done.groupby("config_id")[list(TEST_METRICS)].agg(["mean", "std", "count"])


def sem_table(store: Path):
    runs = load_runs(store)
    return results_table(runs, metrics=list(TEST_METRICS))


def timed(fn, repeat: int, before=None) -> list[tuple[float, float]]:
    """(wall seconds, CPU seconds of this process) per call. CPU time (user + system, which
    includes the file reads from the page cache) is what to compare on a busy machine."""
    out = []
    for _ in range(repeat):
        if before:
            before()
        w, c = time.perf_counter(), time.process_time()
        fn()
        out.append((time.perf_counter() - w, time.process_time() - c))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--points", type=int, default=100, help="steps of the training curve of every run")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--store", type=Path, help="reuse (or create) the synthetic store here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-results-"))
    os.environ["SEM_CACHE_DIR"] = str(work / "cache")
    store = args.store or work / "runs"
    if not (store.exists() and sum(1 for _ in store.iterdir()) >= args.runs):
        t = time.perf_counter()
        build_store(store, args.runs, args.points)
        print(f"wrote {args.runs} runs to {store} in {time.perf_counter() - t:.1f} s")
    size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    print(f"store: {args.runs} runs, {size / 1e6:.1f} MB; median of {args.repeat}, seconds")

    # sanity: both compute the same numbers for the COMPLETED runs
    plain = plain_loop(store)
    table = sem_table(store)
    first = table.keys["config_id"].iloc[0]
    assert abs(plain.loc[first, ("test_rmse", "mean")] - table.cell(0, (), "test_rmse")[0]) < 1e-12

    def clear_cache():
        shutil.rmtree(work / "cache", ignore_errors=True)

    run_dirs = sorted(d for d in store.iterdir() if (d / "run.json").exists())
    touched = [0]

    def touch_100():
        """100 runs changed since the last load (a new sweep's worth): new run.json stamps."""
        touched[0] += 1
        for d in run_dirs[touched[0] * 7 % 50::50][:100]:
            st = os.stat(d / "run.json")
            os.utime(d / "run.json", ns=(st.st_atime_ns, st.st_mtime_ns + 1000))

    runs = load_runs(store)
    contenders = [  # (name, function, setup); run round-robin so that load on the machine hits all alike
        ("plain loop (json.load x3 per run + pandas)", lambda: plain_loop(store), None),
        ("sem, first load (no summary cache)", lambda: sem_table(store), clear_cache),
        ("sem, cached (unchanged runs)", lambda: sem_table(store), None),  # the first load filled it
        ("sem, cached, 100 runs changed", lambda: sem_table(store), touch_100),
        ("  of which load_runs", lambda: load_runs(store), None),
        ("  of which results_table", lambda: results_table(runs, metrics=list(TEST_METRICS)), None),
    ]
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in contenders}
    for _ in range(args.repeat):
        for name, fn, setup in contenders:
            results[name] += timed(fn, 1, before=setup)
    base_wall = statistics.median(w for w, _ in results[contenders[0][0]])
    base_cpu = statistics.median(c for _, c in results[contenders[0][0]])
    width = max(len(k) for k in results)
    print(f"{'':<{width}}  {'wall':>7}  {'vs plain':>8}  {'CPU':>7}  {'vs plain':>8}")
    for name, times in results.items():
        wall = statistics.median(w for w, _ in times)
        cpu = statistics.median(c for _, c in times)
        print(f"{name:<{width}}  {wall:6.3f}s  {base_wall / wall:7.1f}x  {cpu:6.3f}s  {base_cpu / cpu:7.1f}x")
    print("sacred's own reader: none for file stores (sacred 0.8 only writes them; incense reads MongoDB)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
