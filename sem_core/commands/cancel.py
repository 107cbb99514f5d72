"""``sem cancel [PATH]``: cancel the Slurm jobs of runs still QUEUED or RUNNING (scancel) and
mark their records CANCELLED."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from sem_core.commands.status import add_selection
from sem_core.run_status import RunStatus


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "cancel",
        help="cancel the pending and running Slurm jobs of a sweep or store",
        description="Cancel (scancel) the Slurm jobs of the runs still QUEUED or RUNNING under PATH, wait "
        "until they have left the queue, and mark their records CANCELLED. Local runs are left alone.",
    )
    add_selection(p)
    p.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for cancelled jobs to leave the queue before marking them (default 60)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sem_core.commands.shared_args import problem_log
    from sem_core.errors import SemError
    from sem_core.slurm import status as st
    from sem_core.slurm.reconcile import slurm_info, write_verdict
    from sem_core.slurm.selection import select_runs

    selected, where = select_runs(args.path, problem_log(args))
    active = [r for r in selected if r.status in st.ACTIVE]
    on_slurm = [r for r in active if slurm_info(r.run)]
    local = [r for r in active if not slurm_info(r.run)]
    if local:
        print(f"sem cancel: {len(local)} active local run(s) are not Slurm jobs and were left alone", file=sys.stderr)
    if not on_slurm:
        print(f"no queued or running Slurm jobs in {where}")
        return 0
    job_of = {r.global_id: str((slurm_info(r.run) or {})["job_id"]) for r in on_slurm}
    job_ids = sorted(set(job_of.values()))
    out = subprocess.run(["scancel", *job_ids], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SemError(
            f"scancel {' '.join(job_ids[:10])}... failed (exit {out.returncode}): {out.stderr.strip()[:500]}"
        )
    # wait until the jobs have left the queue (completing ones included): a running job's
    # heartbeat could otherwise rewrite its record after it was marked
    deadline = time.monotonic() + args.wait
    remaining: set = set(job_ids)
    while True:
        listed, error = st.still_in_queue(job_ids)
        if error:
            print(f"sem cancel: squeue failed ({error}); marking the runs anyway", file=sys.stderr)
            remaining = set()
            break
        remaining = listed or set()
        if not remaining or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    marked = 0
    for rec in on_slurm:
        job_id = job_of[rec.global_id]
        if job_id in remaining:
            continue
        if write_verdict(Path(rec.location), RunStatus.CANCELLED, f"Slurm job {job_id} cancelled by sem cancel"):
            marked += 1
    print(
        f"cancelled {len(job_ids)} Slurm job(s) ({', '.join(job_ids[:8])}{' ...' if len(job_ids) > 8 else ''}); "
        f"{marked} run(s) marked CANCELLED in {where}"
    )
    if remaining:
        print(
            f"sem cancel: {len(remaining)} job(s) still stopping after {args.wait:.0f} s; "
            "`sem status` will record them when Slurm reports them ended",
            file=sys.stderr,
        )
        return 1
    return 0
