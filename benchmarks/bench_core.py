"""Core benchmark: sem's sweeper and launchers side by side with bare Hydra and plain sacred.

    python benchmarks/bench_core.py [--repeat 3] [--rows 50]

Everything runs in one invocation on one machine; each figure is the median of --repeat
runs of the whole command (interpreter start-up included, as a user experiences it).
Prints a Markdown table (pasted into the README's Performance section) and writes
benchmarks/results/core.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

SEM_MODEL = """
from sem_core import Experiment
ex = Experiment(__file__)

@ex.configs
def get_config():
    return [{{"x": i}} for i in range({rows})]

@ex.automain
def main(config):
    return config["x"] * 2
"""

BARE_HYDRA = """
import hydra

@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg):
    return cfg.x * 2

if __name__ == "__main__":
    main()
"""

SACRED_LOOP = """
import sys
from sacred import Experiment
from sacred.observers import FileStorageObserver

ex = Experiment("bench", save_git_info=False)
ex.observers.append(FileStorageObserver(sys.argv[1]))

@ex.config
def cfg():
    x = 0

@ex.main
def main(x):
    return x * 2

for i in range({rows}):
    ex.run(config_updates={{"x": i}})
"""

LOGGING_MODEL = """
import time
from sem_core import Experiment
ex = Experiment(__file__)

@ex.configs
def get_config():
    return [{{"n": {n}}}]

@ex.automain
def main(config):
    t = time.perf_counter()
    for i in range(config["n"]):
        ex.log_scalar("loss", i * 0.5)
    return time.perf_counter() - t
"""

SACRED_LOGGING = """
import sys, time
from sacred import Experiment
from sacred.observers import FileStorageObserver

ex = Experiment("bench", save_git_info=False)
ex.observers.append(FileStorageObserver(sys.argv[1]))

@ex.main
def main(_run):
    t = time.perf_counter()
    for i in range({n}):
        _run.log_scalar("loss", i * 0.5)
    return time.perf_counter() - t

t = time.perf_counter()
ex.run()
print(time.perf_counter() - t)
"""


def timed(cmd: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return elapsed


def median_of(repeat: int, fn) -> float:
    return statistics.median(fn() for _ in range(repeat))


def bench_sweeps(work: Path, rows: int, repeat: int) -> dict:
    exp = work / "exp" / "models"
    exp.mkdir(parents=True)
    (exp / "m_bench.py").write_text(SEM_MODEL.format(rows=rows))
    (work / "bare.py").write_text(BARE_HYDRA)
    (work / "sacred_loop.py").write_text(SACRED_LOOP.format(rows=rows))
    py = sys.executable
    out = {}
    out["sem_sequential"] = median_of(repeat, lambda: timed([py, str(exp / "m_bench.py"), "-m"], work))
    out["bare_hydra_basic"] = median_of(
        repeat, lambda: timed([py, "bare.py", "-m", f"+x=range(0,{rows})"], work)
    )
    out["sacred_file_loop"] = median_of(
        repeat, lambda: timed([py, "sacred_loop.py", str(work / f"sacred_{time.time_ns()}")], work)
    )
    out["sem_local_n_jobs_2"] = median_of(
        repeat, lambda: timed([py, str(exp / "m_bench.py"), "hydra/launcher=local", "hydra.launcher.n_jobs=2"], work)
    )
    out["bare_hydra_joblib_n_jobs_2"] = None  # hydra-joblib-launcher is not a dependency; not measured
    return out


def bench_planning(rows: int = 10_000) -> dict:
    """Rows -> job overrides, no job run: sem's planner + ConfigStore registration, and
    Hydra's BasicSweeper (argument expansion + composing every job to validate it)."""
    from hydra.core.config_store import ConfigStore  # noqa: F401

    from sem_core import ids
    from sem_core.plan import job_record, plan_jobs
    from sem_core.sweep import register_rows

    data = [{"model": "gp", "lr": 10 ** -(i % 5), "layers": [i % 3, 4], "fold": i % 5, "i": i} for i in range(rows)]
    t = time.perf_counter()
    jobs = plan_jobs(data)
    planned = [job_record(j, ids.new_global_id()) for j in jobs]
    register_rows(planned)
    sem_s = time.perf_counter() - t

    hydra_per_job = _hydra_validate_per_job(200)
    return {"rows": rows, "sem_plan_s": sem_s, "hydra_basic_sweeper_per_job_s": hydra_per_job,
            "hydra_basic_sweeper_extrapolated_s": hydra_per_job * rows}


def _hydra_validate_per_job(n: int) -> float:
    code = textwrap.dedent(
        f"""
        import time
        from hydra import initialize, compose
        from hydra.core.global_hydra import GlobalHydra
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from hydra.types import RunMode
        with initialize(version_base="1.3", config_path=None):
            gh = GlobalHydra.instance().hydra
            loader = gh.config_loader
            parser = OverridesParser.create()
            t = time.perf_counter()
            batches = BasicSweeper.split_arguments(parser.parse_overrides(["+i=range(0,{n})"]), None)
            for overrides in batches[0]:
                loader.load_configuration(config_name=None, overrides=list(overrides), run_mode=RunMode.RUN)
            print((time.perf_counter() - t) / {n})
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(proc.stdout.strip().splitlines()[-1])


def bench_logging(work: Path, n: int = 100_000) -> dict:
    models = work / "log" / "models"
    models.mkdir(parents=True)
    out = {}
    for label, count in (("with_logging", n), ("no_logging", 0)):
        path = models / f"m_{label}.py"
        path.write_text(LOGGING_MODEL.format(n=count))
        timed([sys.executable, str(path)], work)
        (run_dir,) = [d for d in (models / "runs").iterdir() if d.name[0].isdigit() and (d / "config.json").exists()
                      and json.loads((d / "config.json").read_text())["n"] == count]
        run = json.loads((run_dir / "run.json").read_text())
        import datetime as dt

        out[label + "_run_s"] = (
            dt.datetime.fromisoformat(run["stop_time"]) - dt.datetime.fromisoformat(run["start_time"])
        ).total_seconds()
        out[label + "_loop_s"] = run["result"]
    (work / "sacred_log.py").write_text(SACRED_LOGGING.format(n=n))
    proc = subprocess.run([sys.executable, "sacred_log.py", str(work / "sacred_log_runs")], cwd=work,
                          capture_output=True, text=True, check=True)
    out["sacred_file_observer_run_s"] = float(proc.stdout.strip().splitlines()[-1])
    out["added_by_logging_s"] = out["with_logging_run_s"] - out["no_logging_run_s"]
    return out


def _git_commit() -> str:
    proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=HERE, capture_output=True, text=True)
    return proc.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=50)
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]  # a busy machine makes every figure of the run slower
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sweeps = bench_sweeps(work, args.rows, args.repeat)
        planning = bench_planning()
        logging_ = bench_logging(work)
    result = {"machine": os.uname().nodename, "cpus": os.cpu_count(), "python": sys.version.split()[0],
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "git_commit": _git_commit(),
              "load_average_at_start": load_at_start,
              "rows": args.rows, "repeat": args.repeat, "sweeps_s": sweeps, "planning": planning, "logging": logging_}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "core.json").write_text(json.dumps(result, indent=2))

    base = sweeps["bare_hydra_basic"]
    print(f"| {args.rows} trivial rows (median of {args.repeat}) | wall time | vs bare Hydra |")
    print("|---|---|---|")
    for key, label in (
        ("sem_sequential", "sem, `python m.py -m` (default, in-process)"),
        ("bare_hydra_basic", "bare Hydra app, BasicSweeper + BasicLauncher"),
        ("sacred_file_loop", "plain sacred loop, FileStorageObserver"),
        ("sem_local_n_jobs_2", "sem, `hydra/launcher=local n_jobs=2`"),
    ):
        print(f"| {label} | {sweeps[key]:.2f} s | {sweeps[key] / base:.2f}x |")
    print()
    print(f"| planning {planning['rows']:,} rows | time |")
    print("|---|---|")
    print(f"| sem: plan + ids + register rows | {planning['sem_plan_s']:.2f} s |")
    print(f"| Hydra BasicSweeper: expand + compose each job (measured on 200, x{planning['rows']:,}) | "
          f"{planning['hydra_basic_sweeper_extrapolated_s']:.0f} s |")
    print()
    print("| 100,000 `log_scalar` calls in one run | run duration |")
    print("|---|---|")
    print(f"| sem, no logging | {logging_['no_logging_run_s']:.3f} s |")
    print(f"| sem, 100k log_scalar | {logging_['with_logging_run_s']:.3f} s (adds {logging_['added_by_logging_s']:.3f} s) |")
    print(f"| sacred, 100k log_scalar, FileStorageObserver | {logging_['sacred_file_observer_run_s']:.3f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
