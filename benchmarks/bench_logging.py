"""Metric logging benchmark: the time 100,000 ``log_scalar`` calls add to a run, sem vs sacred.

    python benchmarks/bench_logging.py [--quick] [--repeat 3] [--calls 100000]

Each side runs the same one-run command twice, round-robin: once logging --calls points, once
logging none. The added time is the difference of the medians, so start-up and everything else a
run does cancel out alike on both sides:

- sem: a one-row model file ``python m.py`` (its defaults: file observer, output capture);
- sacred: ``ex.run()`` of an Experiment with a FileStorageObserver.

Both figures are whole commands (the metrics file written in full included); the script checks
that every point is in the run's metrics.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import benchlib as bl

SEM_MODEL = """
import os
from sem_core import Experiment

ex = Experiment(__file__)


@ex.configs
def get_config():
    return [{"n": int(os.environ["SEM_BENCH_CALLS"])}]


@ex.automain
def main(config):
    for i in range(config["n"]):
        ex.log_scalar("loss", i * 0.5)
    return config["n"]
"""

SACRED = """
import sys
from sacred import Experiment
from sacred.observers import FileStorageObserver

ex = Experiment("bench", save_git_info=False)
ex.observers.append(FileStorageObserver(sys.argv[1]))
N = int(sys.argv[2])


@ex.main
def main(_run):
    for i in range(N):
        _run.log_scalar("loss", i * 0.5)
    return N


ex.run()
"""


def points_logged(store: Path, n: int) -> None:
    """Every point is in the newest run's metrics.json (sem: config n; sacred: the only run)."""
    for run_dir in sorted(store.iterdir(), key=lambda d: d.stat().st_mtime, reverse=True):
        if (run_dir / "run.json").exists():
            metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").exists() else {}
            got = len(metrics.get("loss", {}).get("values", []))
            if got != n:
                raise RuntimeError(f"{run_dir}: {got} points in metrics.json, expected {n}")
            return
    raise RuntimeError(f"no run in {store}")


def main() -> int:
    parser = bl.arg_parser(__doc__)
    parser.add_argument("--calls", type=int, default=None, help="default 100000, --quick 10000")
    args = parser.parse_args()
    n = args.calls or (10_000 if args.quick else 100_000)
    env = bl.environment()
    with tempfile.TemporaryDirectory(prefix="sem-bench-logging-") as tmp:
        root = Path(tmp)
        models = root / "exp" / "models"
        models.mkdir(parents=True)
        (models / "m_bench.py").write_text(SEM_MODEL)
        (root / "sacred_log.py").write_text(SACRED)
        count = [0]

        def sem(calls: int) -> bl.Sample:
            sample = bl.run([sys.executable, "m_bench.py"], models, {"SEM_BENCH_CALLS": str(calls)})
            if calls:
                points_logged(models / "runs", calls)
            return sample

        def sacred(calls: int) -> bl.Sample:
            count[0] += 1
            store = root / f"sacred{count[0]}"
            sample = bl.run([sys.executable, "sacred_log.py", str(store), str(calls)], root)
            if calls:
                points_logged(store, calls)
            return sample

        samples = bl.round_robin(
            {
                "sem_n": lambda: sem(n),
                "sem_0": lambda: sem(0),
                "sacred_n": lambda: sacred(n),
                "sacred_0": lambda: sacred(0),
            },
            bl.repeats(args),
        )
    cpu = {k: [s.user_s + s.sys_s for s in v] for k, v in samples.items()}
    wall = {k: [s.wall_s for s in v] for k, v in samples.items()}
    m = {
        "sem_with": bl.measurement(
            f"sem, one run logging {n:,} points",
            wall["sem_n"],
            "`python m.py`: start-up, the run, its record with metrics.json",
        ),
        "sem_without": bl.measurement("sem, the same run logging none", wall["sem_0"], "as above"),
        "sacred_with": bl.measurement(
            f"sacred, one run logging {n:,} points",
            wall["sacred_n"],
            "`python script.py`: start-up, `ex.run()`, FileStorageObserver's record",
        ),
        "sacred_without": bl.measurement("sacred, the same run logging none", wall["sacred_0"], "as above"),
    }
    for key, label in (
        ("sem_n", f"sem, {n:,} points"),
        ("sem_0", "sem, none"),
        ("sacred_n", f"sacred, {n:,} points"),
        ("sacred_0", "sacred, none"),
    ):
        m[f"cpu_{key}"] = bl.measurement(f"{label}: CPU time", cpu[key], "user + system CPU of the command")
    d = {
        "sem_added_cpu": bl.derived(
            f"sem: CPU time added by {n:,} log_scalar calls",
            bl.median(m["cpu_sem_n"]) - bl.median(m["cpu_sem_0"]),
            "s",
            "median CPU with - median CPU without",
        ),
        "sacred_added_cpu": bl.derived(
            f"sacred: CPU time added by {n:,} log_scalar calls",
            bl.median(m["cpu_sacred_n"]) - bl.median(m["cpu_sacred_0"]),
            "s",
            "median CPU with - median CPU without",
        ),
        "sem_added": bl.derived(
            f"sem: time added by {n:,} log_scalar calls",
            bl.median(m["sem_with"]) - bl.median(m["sem_without"]),
            "s",
            "median with - median without",
        ),
        "sacred_added": bl.derived(
            f"sacred: time added by {n:,} log_scalar calls",
            bl.median(m["sacred_with"]) - bl.median(m["sacred_without"]),
            "s",
            "median with - median without",
        ),
    }
    bl.write_result(
        args,
        "logging",
        "bench_logging.py",
        title="Metric logging",
        description=f"{n:,} `log_scalar` calls in one run, each side measured with and without them.",
        params={"calls": n},
        measurements=m,
        derived_=d,
        env=env,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
