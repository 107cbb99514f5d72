"""Slurm benchmark on the project's test cluster (``bash tests/slurm/start.sh``; ``sinfo``).

    python benchmarks/bench_slurm.py [--quick] [--repeat 1] [--rows N] [--submit-rows 10000]
                                     [--submit-repeat 3] [--packed-rows 1000] [--configs-per-task 100]
                                     [--memory-rows 50,10000]

Measured from each command's start:

- sem ``hydra/launcher=slurm`` vs hydra-submitit-launcher's ``submitit_slurm``, --rows trivial
  jobs (default: the cluster's MaxArraySize, the most submitit_slurm can submit: it does not split
  arrays): submission = until the last ``sbatch`` returned (a shim on PATH logs each call), total
  = until the command exited (every job ended; for sem every run record final);
- sem alone, ``wait=false`` over --submit-rows rows: the whole command (plan, one sbatch per array
  split by MaxArraySize, a QUEUED record per row, exit), wall and CPU time. The test cluster's
  MaxArraySize=30 is smaller than any real cluster's, so for this measurement it is restarted
  configured like a real one (``tests/slurm/start.sh`` with MaxArraySize=1001, Slurm's default,
  a MaxJobCount room for the arrays, and ended jobs purged after 2 s), then restarted with the
  values it had; a cluster that is not the project's test cluster is measured as it runs. The
  arrays are submitted to begin in an hour (``--begin=now+1hour``) so that the benchmark does not
  occupy the cluster; ``sem cancel`` ends them. Right after each, the file-system floor: the same
  number of records' folders, files and links made with bare ``os`` calls on the same file system
  (creating a file costs the kernel many times more while other processes create files);
- sem alone, --packed-rows rows with ``configs_per_task=K`` (K jobs one after another in each array
  task), waiting for the end: total wall time and per job;
- peak memory of one array task running N packed configs one after another, for each N of
  --memory-rows (``configs_per_task=N``): the task's own ``getrusage`` peak RSS, which each job
  returns as its result (the last job's value is the task's peak; ``SEM_BENCH_RETURN=peak_rss``
  makes the one model return it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import benchlib as bl

SHIM = """#!/bin/bash
"{real}" "$@"
rc=$?
echo "$(date +%s.%N)" >> "$SEM_BENCH_SBATCH_LOG"
exit $rc
"""

MODEL = """
import os
import resource
from sem_core import Experiment

ex = Experiment(__file__)


@ex.configs
def get_config():
    return [{"i": i} for i in range(int(os.environ["SEM_BENCH_ROWS"]))]


@ex.automain
def main(config):
    if os.environ.get("SEM_BENCH_RETURN") == "peak_rss":  # the task's peak RSS so far (memory measurement)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return config["i"]
"""

HYDRA_APP = """
import hydra


@hydra.main(version_base=None, config_path=None, config_name=None)
def main(cfg):
    return cfg.x


if __name__ == "__main__":
    main()
"""

COMMON = ["hydra.launcher.timeout_min=10"]
TEST_CLUSTER = "semtest"  # tests/slurm/start.sh's ClusterName
# a cluster configured like a real one, for the large submission (tests/slurm/start.sh's knobs)
REAL_LIKE = {"MaxArraySize": 1001, "MaxJobCount": 100_000, "MinJobAge": 2}
KNOBS = {
    "MaxArraySize": "SEM_SLURM_MAX_ARRAY_SIZE",
    "MaxJobCount": "SEM_SLURM_MAX_JOB_COUNT",
    "MinJobAge": "SEM_SLURM_MIN_JOB_AGE",
}


def cluster_config() -> dict[str, Any]:
    """ClusterName, MaxArraySize (sem splits arrays at it), MaxJobCount (every array task counts
    against it) and MinJobAge (ended jobs count for that long) from ``scontrol show config``."""
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True).stdout
    config: dict[str, Any] = {"ClusterName": "", "MaxArraySize": 1001, "MaxJobCount": 10000, "MinJobAge": 300}
    for key in config:
        match = re.search(rf"^{key}\s*=\s*(\S+)", out, re.M)
        if match:
            config[key] = match.group(1) if key == "ClusterName" else int(match.group(1))
    return config


def restart_test_cluster(values: dict[str, int]) -> None:
    """tests/slurm/start.sh with these MaxArraySize/MaxJobCount/MinJobAge (a changed slurm.conf
    restarts slurmctld and slurmd; queued and running jobs survive it)."""
    env = {**os.environ, **{KNOBS[key]: str(value) for key, value in values.items()}}
    out = subprocess.run(
        ["bash", str(bl.REPO / "tests" / "slurm" / "start.sh")], env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"tests/slurm/start.sh failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")


@contextlib.contextmanager
def real_like_cluster(config: dict[str, Any], submitted_ids: list[str]) -> Iterator[dict[str, Any]]:
    """The test cluster restarted configured like a real one, and restarted with the values it had
    at the end, once the jobs ``submitted_ids`` (array job ids) are purged: ended jobs count
    against MaxJobCount, and the test value would be full for MinJobAge."""
    if config["ClusterName"] != TEST_CLUSTER:
        yield config  # someone's real cluster: measured as it runs
        return
    restart_test_cluster(REAL_LIKE)
    try:
        yield cluster_config()
    finally:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and any(j.split("_")[0] in submitted_ids for j in squeue_all()):
            time.sleep(2)
        restart_test_cluster({key: config[key] for key in REAL_LIKE})


# Seconds without deleting files before each large submission. This VM's ext4 has no journal,
# and ext4 without one never reuses an inode freed in the last 5 s (35 s while the inode table
# is not yet written back): each new file's inode search reads past every such inode, so creating
# files right after many were deleted or replaced (sem cancel rewrites every record) costs the
# kernel up to tens of times more (perf: ext4's recently_deleted). A journaled file system has
# no such rule; the benchmark deletes nothing until its end and lets its own rewrites age.
SETTLE_S = 40


def file_system_floor(run_dir: Path, rows: int, where: Path) -> dict:
    """The file-system work of ``rows`` QUEUED records like the one in ``run_dir`` and nothing
    else: one thread, bare ``os`` calls, per run a staged folder with its two files (each created
    once), its rename into place and a link in an index folder. What the records cost at the least
    on this file system at this moment: creating a file costs the kernel from about 20 us on a
    quiet machine to several hundred when other processes create and delete files."""
    files = [(name, (run_dir / name).read_bytes()) for name in ("config.json", "run.json")]
    base = Path(tempfile.mkdtemp(prefix="sem-bench-floor-", dir=where))
    index = base / "_sacred"
    index.mkdir()
    t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    for i in range(rows):
        staging = f"{base}/.new-{i}"
        os.mkdir(staging)
        for name, data in files:
            fd = os.open(f"{staging}/{name}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            os.write(fd, data)
            os.close(fd)
        os.rename(staging, f"{base}/{i}")
        os.symlink(f"../{i}", f"{index}/{i + 1}")
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall_s": time.perf_counter() - t0, "cpu_s": r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime}


def squeue_all() -> list[str]:
    """Every job slurmctld holds, ended ones included."""
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True, check=False)
    return out.stdout.split()


def main() -> int:
    parser = bl.arg_parser(__doc__)
    parser.add_argument("--rows", type=int, default=None, help="default: MaxArraySize; --quick 4")
    parser.add_argument("--submit-rows", type=int, default=None, help="default 10000, --quick 100")
    parser.add_argument("--submit-repeat", type=int, default=None, help="default 3, --quick 1")
    parser.add_argument("--packed-rows", type=int, default=None, help="default 1000, --quick 10")
    parser.add_argument("--configs-per-task", type=int, default=None, help="default 100, --quick 5")
    parser.add_argument("--memory-rows", default=None, help="default 50,10000; --quick 5,20")
    args = parser.parse_args()
    real = shutil.which("sbatch")
    if real is None or subprocess.run(["sinfo"], capture_output=True).returncode != 0:
        raise SystemExit("no Slurm cluster answers: start the test cluster with bash tests/slurm/start.sh")
    cluster = cluster_config()
    array_max = cluster["MaxArraySize"]
    rows = args.rows or (4 if args.quick else array_max)
    submit_rows = args.submit_rows or (100 if args.quick else 10_000)
    submit_repeat = args.submit_repeat or (1 if args.quick else 3)
    packed_rows = args.packed_rows or (10 if args.quick else 1000)
    per_task = args.configs_per_task or (5 if args.quick else 100)
    memory_rows = [int(n) for n in (args.memory_rows or ("5,20" if args.quick else "50,10000")).split(",")]
    repeat = bl.repeats(args) if args.repeat is not None else 1  # a sweep on the cluster takes minutes
    env = bl.environment()

    work = Path(tempfile.mkdtemp(prefix="sem-bench-slurm-"))
    shim_dir = work / "bin"
    shim_dir.mkdir()
    (shim_dir / "sbatch").write_text(SHIM.format(real=real))
    (shim_dir / "sbatch").chmod(0o755)
    log = work / "sbatch.log"
    run_env = {"PATH": f"{shim_dir}:{os.environ['PATH']}", "SEM_BENCH_SBATCH_LOG": str(log)}
    count = [0]
    submitted_ids: list[str] = []  # array job ids of the wait=false submissions

    def timed(cmd: list[str], cwd: Path, extra_env: dict) -> dict:
        log.write_text("")
        t0 = time.time()
        sample = bl.run(cmd, cwd, {**run_env, **extra_env})
        ends = [float(x) for x in log.read_text().split()]
        return {
            "submission_s": max(ends) - t0 if ends else None,
            "total_s": sample.wall_s,
            "cpu_s": sample.user_s + sample.sys_s,
            "sbatch_calls": len(ends),
            "stdout": sample.stdout,
        }

    def sem_sweep(n: int, *extra: str, returns: str = "row") -> tuple[dict, Path]:
        count[0] += 1
        models = work / f"sem{count[0]}" / "exp" / "models"
        models.mkdir(parents=True)
        (models / "m_bench.py").write_text(MODEL)
        return timed(
            [sys.executable, "m_bench.py", "hydra/launcher=slurm", *COMMON, *extra],
            models,
            {"SEM_BENCH_ROWS": str(n), "SEM_BENCH_RETURN": returns},
        ), models.parent

    def submitit_sweep(n: int) -> dict:
        count[0] += 1
        app = work / f"submitit{count[0]}"
        app.mkdir(parents=True)
        (app / "app.py").write_text(HYDRA_APP)
        return timed(
            [
                sys.executable,
                "app.py",
                "-m",
                f"+x=range(0,{n})",
                "hydra/launcher=submitit_slurm",
                "hydra.launcher.timeout_min=10",
            ],
            app,
            {},
        )

    def submit_only() -> dict:
        """One wait=false submission of submit_rows rows, then the file-system floor beside it,
        then its runs cancelled; nothing is deleted before the end (see SETTLE_S)."""
        time.sleep(0 if args.quick else SETTLE_S)
        sample, exp = sem_sweep(
            submit_rows, "hydra.launcher.wait=false", "+hydra.launcher.additional_parameters.begin=now+1hour"
        )
        ids = re.search(r"job ids ([\d, ]+)", sample["stdout"])
        submitted_ids.extend(re.findall(r"\d+", ids.group(1)) if ids else [])
        runs = [d for d in (exp / "models" / "runs").iterdir() if (d / "run.json").exists()]
        sample["records"] = len(runs)
        # right after, on the same file system: the least the records could have cost meanwhile
        sample["floor"] = file_system_floor(runs[0], submit_rows, work)
        cancel = bl.run([sys.executable, "-m", "sem_core.cli", "cancel", str(exp)], exp, check=False)
        if cancel.returncode != 0:
            raise SystemExit(f"sem cancel failed: {cancel.stdout}{cancel.stderr}")
        return sample

    def peak_rss_mb(n: int) -> dict:
        """One array task running n packed configs; each job returns the task's peak RSS so far."""
        sample, exp = sem_sweep(
            n, f"hydra.launcher.configs_per_task={n}", "hydra.launcher.timeout_min=120", returns="peak_rss"
        )
        peaks = [
            json.loads((d / "run.json").read_text()).get("result") or 0
            for d in (exp / "models" / "runs").iterdir()
            if (d / "run.json").exists()
        ]
        if len(peaks) != n:
            raise SystemExit(f"memory run of {n} configs: {len(peaks)} records")
        return {"rows": n, "peak_rss_mb": max(peaks) / 1024, "total_s": sample["total_s"]}

    try:
        memory = [peak_rss_mb(n) for n in memory_rows]
        with real_like_cluster(cluster, submitted_ids) as submit_cluster:
            submits = [submit_only() for _ in range(submit_repeat)]
        side = bl.round_robin({"sem": lambda: sem_sweep(rows)[0], "submitit": lambda: submitit_sweep(rows)}, repeat)
        packed = sem_sweep(packed_rows, f"hydra.launcher.configs_per_task={per_task}")[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for sample in [*side["sem"], *side["submitit"], packed, *submits]:
        sample.pop("stdout", None)
    submit = submits[0]

    def series(samples: list[dict], key: str) -> list[float]:
        return [s[key] for s in samples if s[key] is not None]

    submit_array_max = submit_cluster["MaxArraySize"]
    m = {
        "sem_submission": bl.measurement(
            f"sem `slurm`, {rows} rows: submission",
            series(side["sem"], "submission_s"),
            "from the command's start to the last sbatch's return: planning, payload, one sbatch per array",
        ),
        "sem_total": bl.measurement(
            f"sem `slurm`, {rows} rows: total",
            series(side["sem"], "total_s"),
            "the whole command: every job ran on the cluster and its record is final",
        ),
        "submitit_submission": bl.measurement(
            f"hydra-submitit-launcher `submitit_slurm`, {rows} rows: submission",
            series(side["submitit"], "submission_s"),
            "from the command's start to the last sbatch's return: "
            "BasicSweeper composing every job, a pickle per job, sbatch",
        ),
        "submitit_total": bl.measurement(
            f"hydra-submitit-launcher `submitit_slurm`, {rows} rows: total",
            series(side["submitit"], "total_s"),
            "the whole command: every job ran",
        ),
        "sem_submit_only": bl.measurement(
            f"sem `slurm`, `wait=false`, {submit_rows:,} rows: the whole command",
            series(submits, "total_s"),
            f"planning, {submit['sbatch_calls']} sbatch calls "
            f"(arrays split at MaxArraySize={submit_array_max}), a QUEUED record per row, exit",
        ),
        "sem_submit_only_cpu": bl.measurement(
            f"sem `slurm`, `wait=false`, {submit_rows:,} rows: CPU time",
            series(submits, "cpu_s"),
            "user + system CPU of the command and the sbatch calls it waited for",
        ),
        "sem_submit_only_sbatch": bl.measurement(
            "of which until the last sbatch returned",
            series(submits, "submission_s"),
            "as above, up to the last sbatch",
        ),
        "submit_floor": bl.measurement(
            f"file-system floor: {submit_rows:,} such records with bare os calls",
            [s["floor"]["wall_s"] for s in submits],
            "right after each submission, same file system, one thread: per run a staged folder, its "
            "config.json and run.json created once, the rename into place, its `_sacred` link",
        ),
        "submit_floor_cpu": bl.measurement(
            "of which CPU time",
            [s["floor"]["cpu_s"] for s in submits],
            "nearly all of it the kernel's (system time)",
        ),
        "sem_packed_total": bl.measurement(
            f"sem `slurm`, {packed_rows:,} rows, configs_per_task={per_task}: total",
            [packed["total_s"]],
            f"{packed['sbatch_calls']} sbatch call(s), "
            f"{-(-packed_rows // per_task)} array tasks each running {per_task} jobs "
            "one after another, every record final",
        ),
    }
    for mem in memory:
        m[f"packed_peak_rss_{mem['rows']}"] = bl.measurement(
            f"peak RSS of one array task running {mem['rows']:,} packed configs",
            [mem["peak_rss_mb"]],
            f"configs_per_task={mem['rows']}: the task process's getrusage peak after its last job",
            unit="MB",
        )
    d = {
        "sbatch_calls_sem": bl.derived(
            f"sbatch calls, sem, {rows} rows", side["sem"][0]["sbatch_calls"], "", "shim count"
        ),
        "sbatch_calls_submitit": bl.derived(
            f"sbatch calls, submitit_slurm, {rows} rows", side["submitit"][0]["sbatch_calls"], "", "shim count"
        ),
        "submit_only_sbatch_calls": bl.derived(
            f"sbatch calls, sem wait=false, {submit_rows:,} rows", submit["sbatch_calls"], "", "shim count"
        ),
        "submit_only_records": bl.derived(
            f"QUEUED records written, {submit_rows:,} rows",
            min(s["records"] for s in submits),
            "",
            "run folders (fewest of the repeats)",
        ),
        "submit_over_floor": bl.derived(
            f"sem wait=false, {submit_rows:,} rows / the file-system floor",
            statistics.median(s["total_s"] / s["floor"]["wall_s"] for s in submits),
            "x",
            "each submission's wall time over the floor measured right after it (median of the repeats; a "
            "floor measured while recent deletions slow ext4 down can fall below the submission before it)",
        ),
        "packed_per_job": bl.derived(
            f"configs_per_task={per_task}: wall time per job",
            packed["total_s"] / packed_rows * 1000,
            "ms",
            f"total / {packed_rows}",
        ),
    }
    if len(memory) >= 2:
        small, large = memory[0], memory[-1]
        d["packed_peak_rss_ratio"] = bl.derived(
            f"peak RSS of a packed array task, {large['rows']:,} configs / {small['rows']:,} configs",
            large["peak_rss_mb"] / small["peak_rss_mb"],
            "x",
            "ratio of the two peaks above (target: at most 1.2)",
        )
    bl.write_result(
        args,
        "slurm",
        "bench_slurm.py",
        title="Slurm launcher",
        description=(
            f"The single-node test cluster ({env['cpu_count']} real cores; MaxArraySize={array_max}, "
            f"MaxJobCount={cluster['MaxJobCount']}; for the {submit_rows:,}-row submission restarted with "
            f"MaxArraySize={submit_array_max}, MaxJobCount={submit_cluster['MaxJobCount']}, as a real cluster), "
            "shared with the other users of the machine, "
            "trivial jobs (`main` returns its row index). Measured from each command's start. "
            "A QUEUED record is four new inodes (its folder, config.json, run.json, its `_sacred` link): "
            "this VM's ext4 has no journal, and without one each new inode costs the kernel from about "
            "20 us to several hundred, the more files anyone on the machine deleted or replaced in the "
            "last 5-35 s (perf: ext4's `recently_deleted`); the file-system floor is measured beside it."
        ),
        params={
            "rows": rows,
            "submit_rows": submit_rows,
            "submit_repeat": submit_repeat,
            "packed_rows": packed_rows,
            "configs_per_task": per_task,
            "memory_rows": memory_rows,
            "max_array_size": array_max,
            "max_job_count": cluster["MaxJobCount"],
            "submit_max_array_size": submit_array_max,
            "submit_max_job_count": submit_cluster["MaxJobCount"],
        },
        measurements=m,
        derived_=d,
        env=env,
        repeat=repeat,
        extra={"raw": {"side_by_side": side, "submit_only": submits, "packed": packed, "memory": memory}},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
