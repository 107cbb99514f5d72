"""Core benchmark: per-job overhead, start-up and peak memory of sem side by side with a bare Hydra
app and a plain sacred loop, in one run.

    python benchmarks/bench_core.py [--quick] [--repeat 3] [--rows 50] [--memory-rows 10000]

Every figure is a whole command as a user runs it (interpreter start-up included), the contenders
run round-robin so that load on the machine hits all alike:

- sweep: ``python m.py -m`` over --rows trivial rows (sem with its defaults: sequential launcher,
  file observer, output capture) vs ``python app.py -m +x=range(0,ROWS)`` (a bare Hydra app,
  BasicSweeper + BasicLauncher) vs a plain sacred loop (``ex.run`` per row, FileStorageObserver),
  and sem's local launcher with 2 workers. Each side is also run with one row; the per-job cost
  is (ROWS rows - 1 row) / (ROWS - 1), which takes start-up out;
- start-up: a one-row run ``python m.py +order_id=0`` vs the bare Hydra app running one job
  ``python app.py +x=0``, plus the top entries of ``python -X importtime m.py +order_id=0``;
- memory: peak RSS (``wait4``) of a sequential sweep of 50 and --memory-rows trivial rows, sem and
  bare Hydra;
- where the time goes: a cProfile of the sem sweep, the functions called at least once per job.
"""

from __future__ import annotations

import json
import re
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
    return [{"x": i} for i in range(int(os.environ["SEM_BENCH_ROWS"]))]


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


for i in range(int(sys.argv[2])):
    ex.run(config_updates={"x": i})
"""

LOCAL_2 = ("hydra/launcher=local", "hydra.launcher.n_jobs=2")

INCLUDES = {
    "sem": "interpreter start-up, imports, planning the rows, the config composed once per sweep; per job: "
    "its config derived from it, its output folder and .hydra/ files, job logging, the run record "
    "(config.json, run.json, metrics.json, cout.txt through the output copier), the sweep summary",
    "hydra": "interpreter start-up, imports, BasicSweeper composing every job to validate it, per job: "
    "composing again, output folder, .hydra/ files, job logging",
    "sacred": "interpreter start-up, imports, per run: sacred's config scope, host info, sources, "
    "FileStorageObserver's run folder (config.json, run.json, cout.txt); no config composition, "
    "no git (save_git_info=False)",
}


class Work:
    def __init__(self, root: Path):
        self.root = root
        self.models = root / "exp" / "models"
        self.models.mkdir(parents=True)
        (self.models / "m_bench.py").write_text(SEM_MODEL)
        (root / "app.py").write_text(BARE_HYDRA)
        (root / "sacred_loop.py").write_text(SACRED_LOOP)
        self.count = 0

    def sem(self, rows: int, *extra: str) -> bl.Sample:
        return bl.run([sys.executable, "m_bench.py", "-m", *extra], self.models, {"SEM_BENCH_ROWS": str(rows)})

    def sem_one(self) -> bl.Sample:
        return bl.run([sys.executable, "m_bench.py", "+order_id=0"], self.models, {"SEM_BENCH_ROWS": "1"})

    def hydra(self, rows: int) -> bl.Sample:
        return bl.run([sys.executable, "app.py", "-m", f"+x=range(0,{rows})"], self.root)

    def hydra_one(self) -> bl.Sample:
        return bl.run([sys.executable, "app.py", "+x=0"], self.root)

    def sacred(self, rows: int) -> bl.Sample:
        self.count += 1
        return bl.run([sys.executable, "sacred_loop.py", str(self.root / f"sacred{self.count}"), str(rows)], self.root)


def importtime_top(work: Work, top: int = 15) -> list[dict]:
    """The slowest imports (cumulative) of a one-row run, from ``python -X importtime``."""
    sample = bl.run(
        [sys.executable, "-X", "importtime", "m_bench.py", "+order_id=0"], work.models, {"SEM_BENCH_ROWS": "1"}
    )
    entries = []
    for line in sample.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)", line)
        if m:
            entries.append(
                {
                    "module": m.group(4),
                    "self_us": int(m.group(1)),
                    "cumulative_us": int(m.group(2)),
                    "depth": len(m.group(3)) // 2,
                }
            )
    top_level = [e for e in entries if e["depth"] == 0]
    return sorted(top_level, key=lambda e: -e["cumulative_us"])[:top]


PROFILE_READER = """
import json, os, pstats, sys
stats = pstats.Stats(sys.argv[1])
total = stats.total_tt
rows = []
for (filename, line, name), (cc, nc, tt, ct, callers) in stats.stats.items():
    rows.append({"function": f"{name} ({os.path.basename(filename)}:{line})", "path": filename,
                 "calls": nc, "self_s": tt, "cumulative_s": ct})
print(json.dumps({"total_s": total, "functions": rows}))
"""


def profile_sweep(work: Work, rows: int, top: int = 20) -> dict:
    """Where a sem sweep's per-job time goes: cProfile of ``python m.py -m`` (the sweep process; the
    output copier runs in a child of its own); the functions called at least once per job (imports
    left out), by cumulative time."""
    prof = work.root / "sweep.prof"
    bl.run(
        [sys.executable, "-m", "cProfile", "-o", str(prof), "m_bench.py", "-m"],
        work.models,
        {"SEM_BENCH_ROWS": str(rows)},
    )
    data = json.loads(bl.run([sys.executable, "-c", PROFILE_READER, str(prof)], work.root).stdout)
    per_job = [
        f
        for f in data["functions"]
        if f["calls"] >= rows
        and "<frozen" not in f["path"]
        and "cProfile" not in f["path"]
        and f["cumulative_s"] < 0.9 * data["total_s"]
    ]
    per_job.sort(key=lambda f: -f["cumulative_s"])
    for f in per_job:
        f["path"] = _short_path(f["path"])
    return {"rows": rows, "total_s": data["total_s"], "top": per_job[:top]}


def _short_path(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    for package in ("/sem_core/", "/hydra_plugins/", "/benchmarks/"):
        if package in path:
            return package[1:] + path.split(package, 1)[1]
    return re.sub(r"^.*/lib/python3\.\d+/", "", path)  # the standard library: copy.py, json/decoder.py


def main() -> int:
    parser = bl.arg_parser(__doc__)
    parser.add_argument("--rows", type=int, default=None, help="rows of the sweep (default 50, --quick 3)")
    parser.add_argument(
        "--memory-rows", type=int, default=None, help="rows of the large memory sweep (default 10000, --quick 10)"
    )
    parser.add_argument(
        "--hydra-memory-rows",
        type=int,
        default=None,
        help="rows of bare Hydra's large memory sweep (default 1000, --quick 10): at about 0.1 s and 0.1 MB "
        "a row, 10,000 would take 20 minutes",
    )
    args = parser.parse_args()
    rows = args.rows or (3 if args.quick else 50)
    small = rows
    big = args.memory_rows or (10 if args.quick else 10_000)
    hydra_big = args.hydra_memory_rows or (10 if args.quick else 1_000)
    if big <= small:
        parser.error(f"--memory-rows ({big}) must be more than --rows ({small})")
    repeat = bl.repeats(args)
    env = bl.environment()
    with tempfile.TemporaryDirectory(prefix="sem-bench-core-") as tmp:
        work = Work(Path(tmp))
        sweep = bl.round_robin(
            {
                "sem": lambda: work.sem(rows),
                "sem_1": lambda: work.sem(1),
                "hydra": lambda: work.hydra(rows),
                "hydra_1": lambda: work.hydra(1),
                "sacred": lambda: work.sacred(rows),
                "sacred_1": lambda: work.sacred(1),
                "sem_local": lambda: work.sem(rows, *LOCAL_2),
                "sem_one": work.sem_one,
                "hydra_one": work.hydra_one,
            },
            repeat,
        )
        imports = importtime_top(work)
        profile = profile_sweep(work, rows)
        # the large sweeps take minutes and their peak memory hardly varies between runs: once each
        memory = {
            "sem_big": [work.sem(big)],
            "sem_local_big": [work.sem(big, *LOCAL_2)],
            "hydra_big": [work.hydra(hydra_big)],
        }
        # the small sweeps are the ones above
        memory["sem_small"], memory["sem_local_small"], memory["hydra_small"] = (
            sweep["sem"],
            sweep["sem_local"],
            sweep["hydra"],
        )

    wall = {k: [s.wall_s for s in v] for k, v in sweep.items()}
    m = {
        "sem_sweep": bl.measurement(f"sem, `python m.py -m`, {rows} rows", wall["sem"], INCLUDES["sem"]),
        "hydra_sweep": bl.measurement(
            f"bare Hydra app, `python app.py -m +x=range(0,{rows})`", wall["hydra"], INCLUDES["hydra"]
        ),
        "sacred_loop": bl.measurement(
            f"plain sacred loop, {rows} `ex.run` + FileStorageObserver", wall["sacred"], INCLUDES["sacred"]
        ),
        "sem_local_2": bl.measurement(
            f"sem, `hydra/launcher=local hydra.launcher.n_jobs=2`, {rows} rows",
            wall["sem_local"],
            "as sem above, jobs run in 2 long-lived worker processes",
        ),
        "sem_sweep_1": bl.measurement("sem, `python m.py -m`, 1 row", wall["sem_1"], INCLUDES["sem"]),
        "hydra_sweep_1": bl.measurement("bare Hydra app, `-m +x=range(0,1)`", wall["hydra_1"], INCLUDES["hydra"]),
        "sacred_loop_1": bl.measurement("plain sacred loop, 1 run", wall["sacred_1"], INCLUDES["sacred"]),
        "sem_startup": bl.measurement(
            "sem, one-row run `python m.py +order_id=0`",
            wall["sem_one"],
            "interpreter start-up, imports, planning, one job and its record",
        ),
        "hydra_startup": bl.measurement(
            "bare Hydra app, one job `python app.py +x=0`",
            wall["hydra_one"],
            "interpreter start-up, imports, composing and running one job",
        ),
    }
    cpu = {k: [s.user_s + s.sys_s for s in v] for k, v in sweep.items()}
    cpu_includes = "user + system CPU of the command and the children it waited for (less sensitive to a busy machine)"
    for key, label in (
        ("sem", f"sem, `python m.py -m`, {rows} rows"),
        ("sem_1", "sem, `python m.py -m`, 1 row"),
        ("hydra", f"bare Hydra app, {rows} rows"),
        ("hydra_1", "bare Hydra app, 1 row"),
        ("sacred", f"plain sacred loop, {rows} runs"),
        ("sacred_1", "plain sacred loop, 1 run"),
        ("sem_one", "sem, one-row run"),
        ("hydra_one", "bare Hydra app, one job"),
    ):
        m[f"cpu_{key}"] = bl.measurement(f"{label}: CPU time", cpu[key], cpu_includes)
    mem = {k: [s.peak_rss_mb for s in v] for k, v in memory.items()}
    m.update(
        {
            "sem_peak_small": bl.measurement(
                f"sem sequential sweep, {small} rows: peak RSS",
                mem["sem_small"],
                "the sweep process (or the largest child it waited for)",
                "MB",
            ),
            "sem_peak_big": bl.measurement(
                f"sem sequential sweep, {big} rows: peak RSS",
                mem["sem_big"],
                "the sweep process (or the largest child it waited for)",
                "MB",
            ),
            "sem_local_peak_small": bl.measurement(
                f"sem local launcher, 2 workers, {small} rows: peak RSS",
                mem["sem_local_small"],
                "the largest of the sweep process and its workers",
                "MB",
            ),
            "sem_local_peak_big": bl.measurement(
                f"sem local launcher, 2 workers, {big} rows: peak RSS",
                mem["sem_local_big"],
                "the largest of the sweep process and its workers",
                "MB",
            ),
            "hydra_peak_small": bl.measurement(
                f"bare Hydra sweep, {small} rows: peak RSS", mem["hydra_small"], "the sweep process", "MB"
            ),
            "hydra_peak_big": bl.measurement(
                f"bare Hydra sweep, {hydra_big} rows: peak RSS", mem["hydra_big"], "the sweep process", "MB"
            ),
            "sem_big_wall": bl.measurement(
                f"sem sequential sweep, {big} rows: wall time", [s.wall_s for s in memory["sem_big"]], INCLUDES["sem"]
            ),
            "sem_local_big_wall": bl.measurement(
                f"sem local launcher, 2 workers, {big} rows: wall time",
                [s.wall_s for s in memory["sem_local_big"]],
                INCLUDES["sem"],
            ),
            "hydra_big_wall": bl.measurement(
                f"bare Hydra sweep, {hydra_big} rows: wall time",
                [s.wall_s for s in memory["hydra_big"]],
                INCLUDES["hydra"],
            ),
        }
    )

    def per_job(key: str) -> float:
        return (bl.median(m[key]) - bl.median(m[key + "_1"])) / (rows - 1)

    how = f"(median of {rows} rows - median of 1 row) / {rows - 1}"

    def cpu_per_job(key: str) -> float:
        return (bl.median(m[f"cpu_{key}"]) - bl.median(m[f"cpu_{key}_1"])) / (rows - 1)

    how_cpu = f"(median CPU at {rows} rows - at 1 row) / {rows - 1}"
    d = {
        "sem_vs_sacred_cpu": bl.derived(
            f"CPU time: sem / plain sacred, {rows} rows",
            bl.median(m["cpu_sem"]) / bl.median(m["cpu_sacred"]),
            "x",
            "ratio of the medians",
        ),
        "sem_vs_hydra_cpu": bl.derived(
            f"CPU time: sem / bare Hydra, {rows} rows",
            bl.median(m["cpu_sem"]) / bl.median(m["cpu_hydra"]),
            "x",
            "ratio of the medians",
        ),
        "sem_cpu_per_job": bl.derived("sem, CPU per job", cpu_per_job("sem") * 1000, "ms", how_cpu),
        "hydra_cpu_per_job": bl.derived("bare Hydra, CPU per job", cpu_per_job("hydra") * 1000, "ms", how_cpu),
        "sacred_cpu_per_job": bl.derived("plain sacred, CPU per run", cpu_per_job("sacred") * 1000, "ms", how_cpu),
        "startup_ratio_cpu": bl.derived(
            "start-up CPU time, sem one-row run / bare Hydra one job",
            bl.median(m["cpu_sem_one"]) / bl.median(m["cpu_hydra_one"]),
            "x",
            "ratio of the medians",
        ),
        "sem_vs_sacred": bl.derived(
            f"sem / plain sacred, {rows} rows",
            bl.median(m["sem_sweep"]) / bl.median(m["sacred_loop"]),
            "x",
            "ratio of the medians",
        ),
        "sem_vs_hydra": bl.derived(
            f"sem / bare Hydra, {rows} rows",
            bl.median(m["sem_sweep"]) / bl.median(m["hydra_sweep"]),
            "x",
            "ratio of the medians",
        ),
        "sem_per_job": bl.derived("sem, per job", per_job("sem_sweep") * 1000, "ms", how),
        "hydra_per_job": bl.derived("bare Hydra, per job", per_job("hydra_sweep") * 1000, "ms", how),
        "sacred_per_job": bl.derived("plain sacred, per run", per_job("sacred_loop") * 1000, "ms", how),
        "startup_ratio": bl.derived(
            "start-up, sem one-row run / bare Hydra one job",
            bl.median(m["sem_startup"]) / bl.median(m["hydra_startup"]),
            "x",
            "ratio of the medians",
        ),
        "sem_memory_growth": bl.derived(
            f"sem peak RSS, {big} rows / {small} rows",
            bl.median(m["sem_peak_big"]) / bl.median(m["sem_peak_small"]),
            "x",
            "ratio of the medians",
        ),
        "sem_local_memory_growth": bl.derived(
            f"sem local launcher peak RSS, {big} rows / {small} rows",
            bl.median(m["sem_local_peak_big"]) / bl.median(m["sem_local_peak_small"]),
            "x",
            "ratio of the medians",
        ),
        "hydra_memory_growth": bl.derived(
            f"bare Hydra peak RSS, {hydra_big} rows / {small} rows",
            bl.median(m["hydra_peak_big"]) / bl.median(m["hydra_peak_small"]),
            "x",
            "ratio of the medians",
        ),
        "sem_memory_per_row": bl.derived(
            "sem peak RSS growth per row",
            (bl.median(m["sem_peak_big"]) - bl.median(m["sem_peak_small"])) / (big - small) * 1024,
            "KB",
            f"(peak at {big} - peak at {small}) / {big - small}",
        ),
        "hydra_memory_per_row": bl.derived(
            "bare Hydra peak RSS growth per row",
            (bl.median(m["hydra_peak_big"]) - bl.median(m["hydra_peak_small"])) / (hydra_big - small) * 1024,
            "KB",
            f"(peak at {hydra_big} - peak at {small}) / {hydra_big - small}",
        ),
    }
    bl.write_result(
        args,
        "core",
        "bench_core.py",
        title="Core: per-job overhead, start-up, peak memory",
        description=(
            f"Trivial rows (`main` returns `2 * x`). Sweep figures: {rows} rows, the whole command "
            "as a user runs it, contenders round-robin. sem runs with its defaults (sequential "
            "launcher, file observer, output captured). Memory: peak RSS from `wait4` of sem's "
            f"sweeps of {small} and {big} rows, sequential and with the local launcher's 2 workers, "
            f"and of bare Hydra's of {small} and {hydra_big} rows (it keeps every job's config and "
            "return to the end: about 0.1 MB and 0.1 s a row)."
        ),
        params={"rows": rows, "memory_rows": [small, big], "hydra_memory_rows": [small, hydra_big]},
        measurements=m,
        derived_=d,
        env=env,
        extra={"importtime_top": imports, "profile": profile},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
