"""Planning benchmark: a list of rows to job overrides, no job run.

    python benchmarks/bench_plan.py [--quick] [--repeat 3] [--rows 100000]

In one process, round-robin:

- sem: ``plan_jobs`` (row overrides, ids, duplicate check input) + the planned records with a
  new global_id per job (``PlannedRecords``) + ``register_rows`` (the lazy ConfigStore entries a
  job composes from and the ``+sem_row=j<k>`` override it runs with), then each job's record and
  override read once, as the sweep's manifest and its launcher read them, over --rows rows;
- the same rows stored eagerly with ``ConfigStore.store`` (what sem did before its rows became
  lazy), over --eager-rows rows;
- Hydra's BasicSweeper on its own sweep syntax: expanding ``+i=range(0,N)`` and composing every
  job once to validate it (what ``python app.py -m`` does before the first job), over
  --hydra-rows jobs, reported per job.
"""

from __future__ import annotations

import sys
import time

import benchlib as bl

HYDRA_PER_JOB = """
import sys, time
from hydra import initialize
from hydra.core.global_hydra import GlobalHydra
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode

n = int(sys.argv[1])
with initialize(version_base="1.3", config_path=None):
    loader = GlobalHydra.instance().hydra.config_loader
    t, c = time.perf_counter(), time.process_time()
    batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides([f"+i=range(0,{n})"]), None)
    for overrides in batches[0]:
        loader.load_configuration(config_name=None, overrides=list(overrides), run_mode=RunMode.RUN)
    print(time.perf_counter() - t, time.process_time() - c)
"""


def rows_of(n: int) -> list[dict]:
    return [
        {
            "model": "gp",
            "lr": 10 ** -(i % 5),
            "layers": [i % 3, 4],
            "opt": {"kind": "adam", "wd": i % 7},
            "fold": i % 5,
            "i": i,
        }
        for i in range(n)
    ]


def sem_plan(rows: list[dict]) -> tuple[float, float]:
    from hydra.core.config_store import ConfigStore

    from sem_core import ids
    from sem_core.plan import PlannedRecords, plan_jobs
    from sem_core.row_store import register_rows

    ConfigStore.instance().repo.pop("sem_row", None)  # a fresh sweep
    t, c = time.perf_counter(), time.process_time()
    jobs = plan_jobs(rows)
    planned = PlannedRecords.new(jobs, ids.new_global_id)
    overrides = register_rows(planned)
    # made when read: read each once, as the manifest and the launcher do
    read = sum(len(planned[k]) + len(overrides[k]) for k in range(len(planned)))
    elapsed = time.perf_counter() - t, time.process_time() - c
    assert len(overrides) == len(rows) and read
    return elapsed


def eager_store(rows: list[dict]) -> tuple[float, float]:
    from hydra.core.config_store import ConfigStore

    from sem_core import ids
    from sem_core.plan import job_record, plan_jobs

    cs = ConfigStore.instance()
    cs.repo.pop("bench_eager", None)
    t, c = time.perf_counter(), time.process_time()
    for k, job in enumerate(plan_jobs(rows)):
        cs.store(group="bench_eager", name=f"j{k}", node=job_record(job, ids.new_global_id()))
    return time.perf_counter() - t, time.process_time() - c


def hydra_validate(n: int) -> tuple[float, float]:
    sample = bl.run([sys.executable, "-c", HYDRA_PER_JOB, str(n)], bl.REPO)
    wall, cpu = sample.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main() -> int:
    parser = bl.arg_parser(__doc__)
    parser.add_argument("--rows", type=int, default=None, help="default 100000, --quick 2000")
    parser.add_argument("--eager-rows", type=int, default=None, help="default 10000, --quick 200")
    parser.add_argument("--hydra-rows", type=int, default=None, help="default 200, --quick 50")
    args = parser.parse_args()
    n = args.rows or (2000 if args.quick else 100_000)
    n_eager = args.eager_rows or (200 if args.quick else 10_000)
    n_hydra = args.hydra_rows or (50 if args.quick else 200)
    env = bl.environment()
    rows, eager_rows = rows_of(n), rows_of(n_eager)
    samples = bl.round_robin(
        {
            "sem": lambda: sem_plan(rows),
            "sem_eager_size": lambda: sem_plan(eager_rows),
            "eager": lambda: eager_store(eager_rows),
            "hydra": lambda: hydra_validate(n_hydra),
        },
        bl.repeats(args),
    )
    cpu = {k: [c for _, c in v] for k, v in samples.items()}
    wall = {k: [w for w, _ in v] for k, v in samples.items()}
    m = {
        "sem_plan": bl.measurement(
            f"sem: plan + ids + register {n:,} rows",
            wall["sem"],
            "plan_jobs, planned records with a new global_id each, register_rows (lazy ConfigStore entries), "
            "each record and override read once",
        ),
        "sem_plan_eager_size": bl.measurement(
            f"sem: plan + ids + register {n_eager:,} rows",
            wall["sem_eager_size"],
            "as above, at the eager contender's size",
        ),
        "eager_configstore": bl.measurement(
            f"the same {n_eager:,} rows stored eagerly with ConfigStore.store",
            wall["eager"],
            "plan_jobs, job_record, ConfigStore.store per row (a DictConfig each)",
        ),
        "hydra_basic_sweeper": bl.measurement(
            f"Hydra BasicSweeper: expand + compose {n_hydra:,} jobs",
            wall["hydra"],
            "argument expansion and one load_configuration per job (its validation pass)",
        ),
    }
    for key, label in (
        ("sem", f"sem, {n:,} rows"),
        ("sem_eager_size", f"sem, {n_eager:,} rows"),
        ("eager", f"eager ConfigStore, {n_eager:,} rows"),
        ("hydra", f"Hydra BasicSweeper, {n_hydra:,} jobs"),
    ):
        m[f"cpu_{key}"] = bl.measurement(f"{label}: CPU time", cpu[key], "CPU time of the process (time.process_time)")
    d = {
        "sem_plan_cpu_per_row": bl.derived(
            "sem, CPU per row", bl.median(m["cpu_sem"]) / n * 1e6, "us", f"median CPU / {n}"
        ),
        "hydra_cpu_per_job": bl.derived(
            "Hydra BasicSweeper, CPU per job",
            bl.median(m["cpu_hydra"]) / n_hydra * 1000,
            "ms",
            f"median CPU / {n_hydra}",
        ),
        "sem_per_row": bl.derived("sem, per row", bl.median(m["sem_plan"]) / n * 1e6, "us", f"median / {n}"),
        "hydra_per_job": bl.derived(
            "Hydra BasicSweeper, per job",
            bl.median(m["hydra_basic_sweeper"]) / n_hydra * 1000,
            "ms",
            f"median / {n_hydra}",
        ),
        "eager_vs_lazy": bl.derived(
            f"eager / lazy ConfigStore rows, {n_eager:,} rows",
            bl.median(m["eager_configstore"]) / bl.median(m["sem_plan_eager_size"]),
            "x",
            "ratio of the medians",
        ),
    }
    bl.write_result(
        args,
        "plan",
        "bench_plan.py",
        title="Planning: rows to job overrides",
        description="In one process, no job run. The rows are dicts with nested values and a fold key.",
        params={"rows": n, "eager_rows": n_eager, "hydra_rows": n_hydra},
        measurements=m,
        derived_=d,
        env=env,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
