"""Slurm launcher benchmark: sem's ``hydra/launcher=slurm`` vs hydra-submitit-launcher's
``submitit_slurm`` on the project's test cluster, in one run.

    bash tests/slurm/start.sh          # the bench restarts it with MaxArraySize=1001 and restores 30
    python benchmarks/bench_slurm.py [--rows 200] [--submit-rows 1000] [--repeat 1]

For each launcher, a sweep of --rows trivial jobs (sem: a model file whose main returns its row
index; submitit_slurm: a Hydra app returning ``x`` swept over ``+x=range(0,N)``), measured from
the command's start:

- submission: until the last ``sbatch`` call returned (a shim ``sbatch`` on PATH logs each call
  and its end time, then runs the real one);
- total: until the command exited, i.e. every job ended and (sem) every run record is final;
- sbatch calls: counted by the shim.

Then sem alone: a --submit-rows sweep with ``wait=false`` (submit, record QUEUED, exit), then
``sem cancel``. submitit_slurm does not split arrays (submitit #1624), so the cluster runs with
MaxArraySize=1001 (Slurm's default) during the bench; sem's split at 30 is shown as a third row.
Prints a Markdown table (README, Performance, "Slurm launcher") and writes
benchmarks/results/slurm.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

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


def restart_cluster(max_array_size: int) -> None:
    env = dict(os.environ, SEM_SLURM_MAX_ARRAY_SIZE=str(max_array_size))
    subprocess.run(["bash", str(REPO / "tests" / "slurm" / "start.sh")], env=env, check=True,
                   stdout=subprocess.DEVNULL)


def timed(cmd: list[str], cwd: Path, env: dict, log: Path) -> dict:
    log.write_text("")
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=str(cwd), env=env, capture_output=True, text=True)
    total = time.time() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    ends = [float(x) for x in log.read_text().split()]
    return {"submission_s": max(ends) - t0 if ends else float("nan"), "total_s": total, "sbatch_calls": len(ends)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--submit-rows", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    real = shutil.which("sbatch")
    if real is None:
        raise SystemExit("sbatch not on PATH: start the test cluster with bash tests/slurm/start.sh")
    work = Path(tempfile.mkdtemp(prefix="sem-bench-slurm-"))
    shim_dir = work / "bin"
    shim_dir.mkdir()
    (shim_dir / "sbatch").write_text(SHIM.format(real=real))
    (shim_dir / "sbatch").chmod(0o755)
    log = work / "sbatch.log"
    env = dict(os.environ, PATH=f"{shim_dir}:{os.environ['PATH']}", SEM_BENCH_SBATCH_LOG=str(log),
               SEM_BENCH_ROWS=str(args.rows))
    env.pop("HYDRA_FULL_ERROR", None)

    def sem_sweep(tag: str, rows: int, *extra: str) -> dict:
        models = work / tag / "exp" / "models"
        models.mkdir(parents=True)
        (models / "m_bench.py").write_text(MODEL)
        return timed([sys.executable, "m_bench.py", "hydra/launcher=slurm", *COMMON, *extra], models,
                     dict(env, SEM_BENCH_ROWS=str(rows)), log)

    def submitit_sweep(tag: str, rows: int) -> dict:
        app = work / tag
        app.mkdir(parents=True)
        (app / "app.py").write_text(HYDRA_APP)
        return timed([sys.executable, "app.py", "-m", f"+x=range(0,{rows})", "hydra/launcher=submitit_slurm",
                      "hydra.launcher.partition=debug", "hydra.launcher.timeout_min=10"], app, env, log)

    results: dict[str, list[dict]] = {"sem": [], "submitit_slurm": [], "sem_split30": [], "sem_submit_only": []}
    try:
        restart_cluster(1001)
        for r in range(args.repeat):  # alternate, so that both see the same cluster state
            results["sem"].append(sem_sweep(f"sem{r}", args.rows))
            results["submitit_slurm"].append(submitit_sweep(f"submitit{r}", args.rows))
        sub = sem_sweep("submit", args.submit_rows, "hydra.launcher.wait=false")
        cancel = subprocess.run([sys.executable, "-m", "sem_core.cli", "cancel", str(work / "submit" / "exp")],
                                capture_output=True, text=True, env=env)
        if cancel.returncode != 0:
            raise SystemExit(f"sem cancel failed: {cancel.stdout}{cancel.stderr}")
        results["sem_submit_only"].append(sub)
        restart_cluster(30)
        results["sem_split30"].append(sem_sweep("split", args.rows))
    finally:
        restart_cluster(30)

    def med(name: str, key: str) -> float:
        return statistics.median(x[key] for x in results[name])

    rows_md = [
        "| launcher | rows | submission (s) | total wall time (s) | sbatch calls |",
        "|---|---:|---:|---:|---:|",
        f"| sem `slurm` | {args.rows} | {med('sem', 'submission_s'):.2f} | {med('sem', 'total_s'):.1f} | {med('sem', 'sbatch_calls'):.0f} |",
        f"| hydra-submitit-launcher `submitit_slurm` | {args.rows} | {med('submitit_slurm', 'submission_s'):.2f} | "
        f"{med('submitit_slurm', 'total_s'):.1f} | {med('submitit_slurm', 'sbatch_calls'):.0f} |",
        f"| sem `slurm`, MaxArraySize=30 | {args.rows} | {med('sem_split30', 'submission_s'):.2f} | "
        f"{med('sem_split30', 'total_s'):.1f} | {med('sem_split30', 'sbatch_calls'):.0f} |",
        f"| sem `slurm`, `wait=false` (submit, record QUEUED, exit) | {args.submit_rows} | "
        f"{med('sem_submit_only', 'submission_s'):.2f} | {med('sem_submit_only', 'total_s'):.2f} (command) | "
        f"{med('sem_submit_only', 'sbatch_calls'):.0f} |",
    ]
    print("\n".join(rows_md))
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "slurm.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
