"""Slurm benchmark on the project's running test cluster (``bash tests/slurm/start.sh``; ``sinfo``).

    python benchmarks/bench_slurm.py [--quick] [--repeat 1] [--rows N] [--submit-rows 10000]
                                     [--packed-rows 1000] [--configs-per-task 100]

The cluster is used as it runs (its MaxArraySize is read from ``scontrol show config``, never
changed: other users of the cluster keep it). Measured from each command's start:

- sem ``hydra/launcher=slurm`` vs hydra-submitit-launcher's ``submitit_slurm``, --rows trivial
  jobs (default: the cluster's MaxArraySize, the most submitit_slurm can submit: it does not split
  arrays): submission = until the last ``sbatch`` returned (a shim on PATH logs each call), total
  = until the command exited (every job ended; for sem every run record final);
- sem alone, ``wait=false`` over --submit-rows rows: the whole command (plan, one sbatch per array
  split by MaxArraySize, a QUEUED record per row, exit). The arrays are submitted to begin in an
  hour (``--begin=now+1hour``) so that the benchmark does not occupy the cluster; ``sem cancel``
  ends them;
- sem alone, --packed-rows rows with ``configs_per_task=K`` (K jobs one after another in each array
  task), waiting for the end: total wall time and per job.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib as bl

SHIM = """#!/bin/bash
"{real}" "$@"
rc=$?
echo "$(date +%s.%N)" >> "$SEM_BENCH_SBATCH_LOG"
exit $rc
"""

MODEL = """
import os
from sem_core import Experiment

ex = Experiment(__file__)


@ex.configs
def get_config():
    return [{"i": i} for i in range(int(os.environ["SEM_BENCH_ROWS"]))]


@ex.automain
def main(config):
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


def cluster_limits() -> dict[str, int]:
    """MaxArraySize (sem splits arrays at it) and MaxJobCount (every array task counts against it)."""
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True).stdout
    limits = {"MaxArraySize": 1001, "MaxJobCount": 10000}  # Slurm's defaults
    for key in limits:
        match = re.search(rf"^{key}\s*=\s*(\d+)", out, re.M)
        if match:
            limits[key] = int(match.group(1))
    return limits


def main() -> int:
    parser = bl.arg_parser(__doc__)
    parser.add_argument("--rows", type=int, default=None, help="default: MaxArraySize; --quick 4")
    parser.add_argument("--submit-rows", type=int, default=None, help="default 10000, --quick 100")
    parser.add_argument("--packed-rows", type=int, default=None, help="default 1000, --quick 10")
    parser.add_argument("--configs-per-task", type=int, default=None, help="default 100, --quick 5")
    args = parser.parse_args()
    real = shutil.which("sbatch")
    if real is None or subprocess.run(["sinfo"], capture_output=True).returncode != 0:
        raise SystemExit("no Slurm cluster answers: start the test cluster with bash tests/slurm/start.sh")
    limits = cluster_limits()
    array_max = limits["MaxArraySize"]
    rows = args.rows or (4 if args.quick else array_max)
    submit_rows = args.submit_rows or (100 if args.quick else 10_000)
    packed_rows = args.packed_rows or (10 if args.quick else 1000)
    per_task = args.configs_per_task or (5 if args.quick else 100)
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

    def timed(cmd: list[str], cwd: Path, extra_env: dict) -> dict:
        log.write_text("")
        t0 = time.time()
        sample = bl.run(cmd, cwd, {**run_env, **extra_env})
        ends = [float(x) for x in log.read_text().split()]
        return {"submission_s": max(ends) - t0 if ends else None, "total_s": sample.wall_s, "sbatch_calls": len(ends)}

    def sem_sweep(n: int, *extra: str) -> tuple[dict, Path]:
        count[0] += 1
        models = work / f"sem{count[0]}" / "exp" / "models"
        models.mkdir(parents=True)
        (models / "m_bench.py").write_text(MODEL)
        return timed(
            [sys.executable, "m_bench.py", "hydra/launcher=slurm", *COMMON, *extra], models, {"SEM_BENCH_ROWS": str(n)}
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

    try:
        side = bl.round_robin({"sem": lambda: sem_sweep(rows)[0], "submitit": lambda: submitit_sweep(rows)}, repeat)
        submit, exp = sem_sweep(
            submit_rows, "hydra.launcher.wait=false", "+hydra.launcher.additional_parameters.begin=now+1hour"
        )
        cancel = bl.run([sys.executable, "-m", "sem_core.cli", "cancel", str(exp)], exp, check=False)
        if cancel.returncode != 0:
            raise SystemExit(f"sem cancel failed: {cancel.stdout}{cancel.stderr}")
        queued = sum(1 for d in (exp / "models" / "runs").iterdir() if (d / "run.json").exists())
        packed = sem_sweep(packed_rows, f"hydra.launcher.configs_per_task={per_task}")[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def series(samples: list[dict], key: str) -> list[float]:
        return [s[key] for s in samples if s[key] is not None]

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
            [submit["total_s"]],
            f"planning, {submit['sbatch_calls']} sbatch calls "
            f"(arrays split at MaxArraySize={array_max}), a QUEUED record per row, exit",
        ),
        "sem_submit_only_sbatch": bl.measurement(
            "of which until the last sbatch returned",
            series([submit], "submission_s"),
            "as above, up to the last sbatch",
        ),
        "sem_packed_total": bl.measurement(
            f"sem `slurm`, {packed_rows:,} rows, configs_per_task={per_task}: total",
            [packed["total_s"]],
            f"{packed['sbatch_calls']} sbatch call(s), "
            f"{-(-packed_rows // per_task)} array tasks each running {per_task} jobs "
            "one after another, every record final",
        ),
    }
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
        "submit_only_records": bl.derived(f"QUEUED records written, {submit_rows:,} rows", queued, "", "run folders"),
        "packed_per_job": bl.derived(
            f"configs_per_task={per_task}: wall time per job",
            packed["total_s"] / packed_rows * 1000,
            "ms",
            f"total / {packed_rows}",
        ),
    }
    bl.write_result(
        args,
        "slurm",
        "bench_slurm.py",
        title="Slurm launcher",
        description=(
            f"The single-node test cluster ({env['cpu_count']} real cores; MaxArraySize={array_max}, "
            f"MaxJobCount={limits['MaxJobCount']}: every array task counts, so a submission near that size fails "
            "while other jobs are queued), shared with the other users of the machine, "
            "trivial jobs (`main` returns its row index). Measured from each command's start."
        ),
        params={
            "rows": rows,
            "submit_rows": submit_rows,
            "packed_rows": packed_rows,
            "configs_per_task": per_task,
            "max_array_size": array_max,
            "max_job_count": limits["MaxJobCount"],
        },
        measurements=m,
        derived_=d,
        env=env,
        repeat=repeat,
        extra={"raw": {"side_by_side": side, "submit_only": submit, "packed": packed}},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
