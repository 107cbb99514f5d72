"""Run every benchmark, then regenerate docs/performance.md from the results: one command.

    python benchmarks/run_all.py                  # full sizes, about 25 minutes on 2 cores
    python benchmarks/run_all.py --quick          # seconds each: every script runs, figures mean little
    python benchmarks/run_all.py --only core plan --extra core="--memory-rows 2000"
    python benchmarks/run_all.py --snapshot       # measure the last commit, not the working tree

Scripts run one after another (``--jobs N`` runs N at once: for --quick only, timings would
disturb each other). A script that fails is reported and the others still run; the exit code is 1
if any failed. bench_slurm needs the test Slurm cluster (``sinfo``): without one it is skipped and
its previous results file is kept. ``--snapshot`` exports the last commit's sem_core and
hydra_plugins to a temporary folder and imports sem from there (for a working tree others are
editing); the results record that commit.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import benchlib as bl
import render

SCRIPTS = {
    "core": "bench_core.py",
    "plan": "bench_plan.py",
    "logging": "bench_logging.py",
    "capture": "bench_capture.py",
    "results": "bench_results.py",
    "sync": "bench_sync.py",
    "slurm": "bench_slurm.py",
}


def slurm_available() -> bool:
    return shutil.which("sinfo") is not None and subprocess.run(["sinfo"], capture_output=True).returncode == 0


def snapshot(into: Path) -> tuple[str, Path]:
    """The last commit's sem packages exported to ``into``; returns (commit, folder)."""
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=bl.REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "archive", commit, "sem_core", "hydra_plugins"], cwd=bl.REPO, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return commit, into


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", choices=list(SCRIPTS), help="run only these benchmarks")
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar='NAME="ARGS"',
        help='more arguments for one script, e.g. core="--memory-rows 2000"',
    )
    parser.add_argument("--out", type=Path, default=bl.RESULTS, help="results folder (default: %(default)s)")
    parser.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="page to write (default: docs/performance.md when --out is the default, else OUT/performance.md)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="scripts at once (only sensible with --quick)")
    parser.add_argument("--snapshot", action="store_true", help="measure the last commit (see above)")
    args = parser.parse_args(argv)

    extra: dict[str, list[str]] = {}
    for item in args.extra:
        name, _, rest = item.partition("=")
        if name not in SCRIPTS:
            parser.error(f"--extra {item!r}: unknown benchmark {name!r}; use one of {', '.join(SCRIPTS)}")
        extra.setdefault(name, []).extend(shlex.split(rest))
    names = args.only or list(SCRIPTS)
    env = dict(os.environ)
    tmp = None
    if args.snapshot:
        tmp = Path(tempfile.mkdtemp(prefix="sem-bench-snapshot-"))
        commit, folder = snapshot(tmp)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(folder), env.get("PYTHONPATH", "")) if p)
        env[bl.SNAPSHOT_COMMIT] = commit
        print(f"measuring commit {commit[:12]} (exported to {folder})", flush=True)
    if "slurm" in names and not slurm_available():
        print("slurm: skipped, no Slurm cluster answers (bash tests/slurm/start.sh); its results file is kept")
        names = [n for n in names if n != "slurm"]

    def run_one(name: str) -> tuple[str, int, float]:
        cmd = [
            sys.executable,
            str(bl.HERE / SCRIPTS[name]),
            "--out",
            str(args.out),
            *(["--quick"] if args.quick else []),
            *extra.get(name, []),
        ]
        print(f"{time.strftime('%H:%M:%S')} {name}: {shlex.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        took = time.perf_counter() - start
        status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
        print(f"{time.strftime('%H:%M:%S')} {name}: {status} in {took:.0f} s", flush=True)
        if proc.returncode != 0:
            print(proc.stdout[-2000:] + proc.stderr[-4000:], flush=True)
        return name, proc.returncode, took

    try:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            outcomes = list(pool.map(run_one, names))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    docs = args.docs or (bl.REPO / "docs" / "performance.md" if args.out == bl.RESULTS else args.out / "performance.md")
    render.main(["--results", str(args.out), "--out", str(docs)])
    failed = [name for name, code, _ in outcomes if code != 0]
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
