"""Results benchmark: ``load_runs`` + ``results_table`` over a store of realistic runs vs the plain
pandas-over-json loop a user writes.

    python benchmarks/bench_results.py [--quick] [--repeat 3] [--runs 50000] [--store DIR]

The store holds records as large as real ones: a real sem sweep (10 runs of a model logging a
100-step training curve and four test metrics, with sem's full capture: packages, host, argv)
is run once, and its run folders are copied and varied (row values, ids from sem's own id
functions, global_id, times, metric values; 2% FAILED) up to --runs.

Contenders, round-robin in one process on that store:

- plain loop: ``json.load`` run.json, config.json and metrics.json of every run folder, one dict
  per run, ``pd.DataFrame``, ``groupby(config_id).agg(mean, std, count)`` over COMPLETED runs;
- sem, cold: ``load_runs`` + ``results_table`` with an empty summary cache (it reads every record
  and writes the cache; the files themselves are in the OS page cache, as for the plain loop);
- sem, cached: the same again (a stat per run folder, no record read);
- sem, cached, 100 runs changed: as after a new sweep, only those are read again;
- of which ``load_runs`` / ``results_table`` alone (cached), and of ``load_runs`` the store scan
  (``read_store_columns``) and the DataFrame (``columns_to_frame``).

sacred itself has no reader for its file layout; incense 0.0.15's ``FileSystemExperimentLoader``
finds one run at a time by an integer folder name (not sem's global_id folders): no contender.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import benchlib as bl
import pandas as pd

TEST_METRICS = list(bl.TEST_METRICS)


def plain_loop(store: Path) -> pd.DataFrame:
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
    return done.groupby("config_id")[TEST_METRICS].agg(["mean", "std", "count"])


def sem_table(store: Path):
    from sem_core.results import load_runs, results_table

    return results_table(load_runs(store), metrics=TEST_METRICS)


def timed(fn, before=None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, which includes reading files from the page cache)."""
    if before:
        before()
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    parser = bl.arg_parser(__doc__)
    parser.add_argument("--runs", type=int, default=None, help="default 50000, --quick 500")
    parser.add_argument("--store", type=Path, help="reuse (or create) the store here")
    args = parser.parse_args()
    n = args.runs or (500 if args.quick else 50_000)
    env = bl.environment()
    work = Path(tempfile.mkdtemp(prefix="sem-bench-results-"))
    try:
        os.environ["SEM_CACHE_DIR"] = str(work / "cache")
        store = args.store or work / "runs"
        t = time.perf_counter()
        _, templates = bl.real_runs(work)
        template_bytes = [bl.folder_bytes(d) for d in templates]
        if not (store.exists() and sum(1 for d in store.iterdir() if (d / "run.json").exists()) >= n):
            bl.clone_runs(templates, store, n)
        build_s = time.perf_counter() - t
        run_dirs = sorted(d for d in store.iterdir() if (d / "run.json").exists())
        sizes = [bl.folder_bytes(d) for d in run_dirs[:: max(1, len(run_dirs) // 200)]]
        print(f"store: {len(run_dirs)} runs, built in {build_s:.1f} s", flush=True)

        from sem_core.results import load_runs, results_table
        from sem_core.results.load import columns_to_frame, read_store_columns

        plain = plain_loop(store)
        table = sem_table(store)
        first = table.keys["config_id"].iloc[0]
        same = abs(plain.loc[first, ("test_rmse", "mean")] - table.cell(0, (), "test_rmse")[0]) < 1e-12
        if not same:
            raise RuntimeError("sem's table and the plain loop disagree on the first configuration")

        def clear_cache() -> None:
            shutil.rmtree(work / "cache", ignore_errors=True)

        touched = [0]

        def touch_100() -> None:
            """100 runs' run.json written again whole, as sem writes a record (a new file renamed over it)."""
            from sem_core import records

            touched[0] += 1
            for d in run_dirs[touched[0] * 7 % 50 :: max(1, len(run_dirs) // 100)][:100]:
                records.atomic_write_bytes(d / "run.json", (d / "run.json").read_bytes())

        runs = load_runs(store)
        columns = read_store_columns(store)
        contenders = {
            "plain": (lambda: plain_loop(store), None),
            "sem_cold": (lambda: sem_table(store), clear_cache),
            "sem_cached": (lambda: sem_table(store), None),
            "sem_changed": (lambda: sem_table(store), touch_100),
            "load_runs": (lambda: load_runs(store), None),
            "scan": (lambda: read_store_columns(store), None),
            "frame": (lambda: columns_to_frame(columns), None),
            "results_table": (lambda: results_table(runs, metrics=TEST_METRICS), None),
        }
        samples = bl.round_robin(
            {k: (lambda fn=fn, setup=setup: timed(fn, setup)) for k, (fn, setup) in contenders.items()},
            bl.repeats(args),
        )

        labels = {
            "plain": (
                "plain loop: json.load x3 per run, pandas, groupby",
                "run.json, config.json and metrics.json parsed in full per run; no de-duplication",
            ),
            "sem_cold": (
                "sem, cold: load_runs + results_table, empty summary cache",
                "reads run.json and config.json per run, writes the summary cache; newest run per "
                "experiment_id, exclusion footnote, labels, best mark",
            ),
            "sem_cached": ("sem, cached: the same, no run changed", "a stat per run folder, no record read"),
            "sem_changed": ("sem, cached, 100 runs changed since the last load", "re-reads only those 100 runs"),
            "load_runs": ("of which load_runs (cached)", "the runs DataFrame"),
            "scan": (
                "of which the store scan (cached)",
                "the summary cache read, a stat per run folder, the summaries as columns",
            ),
            "frame": ("of which the DataFrame", "built from the summaries' columns"),
            "results_table": ("of which results_table", "the aggregation alone"),
        }
        m = {}
        for key, (label, includes) in labels.items():
            m[key] = bl.measurement(label + " (wall)", [w for w, _ in samples[key]], includes)
            m[key + "_cpu"] = bl.measurement(label + " (CPU of the process)", [c for _, c in samples[key]], includes)
        d = {
            "cold_vs_plain": bl.derived(
                "plain loop / sem cold",
                bl.median(m["plain"]) / bl.median(m["sem_cold"]),
                "x",
                "ratio of the wall medians",
            ),
            "cached_vs_plain": bl.derived(
                "plain loop / sem cached",
                bl.median(m["plain"]) / bl.median(m["sem_cached"]),
                "x",
                "ratio of the wall medians",
            ),
            "cold_vs_plain_cpu": bl.derived(
                "plain loop / sem cold, CPU time",
                bl.median(m["plain_cpu"]) / bl.median(m["sem_cold_cpu"]),
                "x",
                "ratio of the CPU medians",
            ),
            "cached_vs_plain_cpu": bl.derived(
                "plain loop / sem cached, CPU time",
                bl.median(m["plain_cpu"]) / bl.median(m["sem_cached_cpu"]),
                "x",
                "ratio of the CPU medians",
            ),
            "record_bytes": bl.derived(
                "median size of a run folder in the store",
                sorted(sizes)[len(sizes) // 2],
                "bytes",
                "config.json + run.json + metrics.json + cout.txt + info.json",
            ),
            "template_bytes": bl.derived(
                "median size of a real run folder it was cloned from",
                sorted(template_bytes)[len(template_bytes) // 2],
                "bytes",
                "the same files, written by a real sem sweep",
            ),
        }
        bl.write_result(
            args,
            "results",
            "bench_results.py",
            title="Results: load_runs + results_table",
            description=(
                f"{n:,} runs in sacred's file layout ({n // 5:,} configurations x 5 folds, a 100-step training "
                "curve and 4 test metrics each, 2% FAILED), cloned from a real sem sweep so that every "
                "record is as large as a real one. In one process, round-robin."
            ),
            params={"runs": n},
            measurements=m,
            derived_=d,
            env=env,
            notes=[
                "No sacred-side contender: sacred writes this layout but has no reader for it, and incense "
                "0.0.15's FileSystemExperimentLoader only finds one run by id (`find_by_id`) and takes the "
                "folder name as an integer (sacred's numbering), so it cannot open sem's global_id folders."
            ],
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
