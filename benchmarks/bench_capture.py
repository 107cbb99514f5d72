"""Capture benchmark: per-job cost of recording the code version, sem vs sacred's default capture.

    python benchmarks/bench_capture.py [--quick] [--files 2000] [--runs 20] [--repeat 3]

Builds a git repository with --files files and a dirty tree (modified and untracked files), a
model file importing two sibling modules, and measures in one process, side by side:

- sacred: what sacred does for every run (each `python m.py with ...` is a new process):
  ``gather_sources_and_dependencies(globals, save_git_info=True)`` (sources, packages, and git
  through GitPython: ``is_dirty`` per source file) plus ``get_host_info()``;
- sem: ``capture_sweep`` ONCE for the sweep (git, python, packages, DVC, diff file) divided over
  the runs, plus what sem does per job: the model's sources (``model_sources``: hashing each
  source file), ``host_info`` (cache emptied too) and the seed.

Also counts the git processes each side starts. Writes every sample to
benchmarks/results/capture.json.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib as bl


class GitCounter:
    """Counts ``git`` processes started through subprocess.Popen (sacred's GitPython and sem both)."""

    def __init__(self):
        self.count = 0
        self._original = subprocess.Popen.__init__

    def __enter__(self):
        counter = self
        original = self._original

        def counting_init(popen, args, *a, **kw):
            first = args[0] if isinstance(args, (list, tuple)) else str(args).split()[0]
            if os.path.basename(str(first)) == "git":
                counter.count += 1
            original(popen, args, *a, **kw)

        subprocess.Popen.__init__ = counting_init
        return self

    def __exit__(self, *exc):
        subprocess.Popen.__init__ = self._original


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def make_repo(root: Path, n_files: int) -> Path:
    """A repository of n_files files, committed, then made dirty; returns the model file."""
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Bench")
    git(root, "config", "user.email", "bench@example.org")
    src = root / "src"
    for i in range(n_files - 4):
        folder = src / f"pkg{i // 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"mod{i:04d}.py").write_text(f"VALUE = {i}\n" * 20)
    models = root / "exp" / "models"
    models.mkdir(parents=True)
    (models / "data.py").write_text("import numpy as np\n\ndef make():\n    return np.arange(10)\n")
    (models / "features.py").write_text("def scale(x):\n    return 2 * x\n")
    (models / "m_bench.py").write_text("import numpy as np\nimport data\nimport features\n\nLR = 0.1\n")
    (root / "README.md").write_text("bench\n")
    git(root, "add", ".")
    git(root, "commit", "-qm", "init")
    for i in range(5):  # a dirty tree: modified tracked files and untracked ones
        (src / "pkg00" / f"mod{i:04d}.py").write_text(f"VALUE = {-i}\n")
        (root / f"scratch{i}.txt").write_text("untracked\n")
    (models / "m_bench.py").write_text("import numpy as np\nimport data\nimport features\n\nLR = 0.2\n")
    return models / "m_bench.py"


def sacred_per_run(model_module, runs: int) -> tuple[float, int]:
    from sacred.dependencies import gather_sources_and_dependencies
    from sacred.host_info import get_host_info

    base_dir = str(Path(model_module.__file__).parent)
    with GitCounter() as counter:
        start = time.perf_counter()
        for _ in range(runs):
            gather_sources_and_dependencies(vars(model_module), save_git_info=True, base_dir=base_dir)
            get_host_info()
        elapsed = time.perf_counter() - start
    return elapsed / runs, counter.count


def sem_per_job(model_file: Path, store: Path, runs: int) -> tuple[float, float, float, int]:
    """(per-job total, once-per-sweep capture, per-job part, git processes)."""
    from sem_core import ids, sources
    from sem_core.capture import capture_sweep
    from sem_core.host import host_info
    from sem_core.seeding import with_seed

    with GitCounter() as counter:
        start = time.perf_counter()
        capture = capture_sweep(model_file, store)
        sweep_part = time.perf_counter() - start
        start = time.perf_counter()
        for fold in range(runs):
            host_info.cache_clear()  # as in a fresh process per job
            sources.model_sources(model_file)
            host_info()
            with_seed({"fold": fold}, ids.experiment_id({"fold": fold}))
        job_part = (time.perf_counter() - start) / runs
    json.dumps(capture)
    return sweep_part / runs + job_part, sweep_part, job_part, counter.count


def main() -> None:
    parser = bl.arg_parser(__doc__)
    parser.add_argument("--files", type=int, default=None, help="files in the repository (default 2000, --quick 200)")
    parser.add_argument("--runs", type=int, default=None, help="runs per measurement (default 20, --quick 5)")
    args = parser.parse_args()
    files = args.files or (200 if args.quick else 2000)
    runs = args.runs or (5 if args.quick else 20)
    env = bl.environment()

    with tempfile.TemporaryDirectory(prefix="sem-bench-capture-") as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        model_file = make_repo(root, files)
        sys.path.insert(0, str(model_file.parent))
        model_module = importlib.import_module("m_bench")
        store = root / "exp" / "models" / "runs"

        sacred_times, sem_times, sweep_parts, job_parts = [], [], [], []
        sacred_git = sem_git = 0
        for _ in range(bl.repeats(args)):
            t, sacred_git = sacred_per_run(model_module, runs)
            sacred_times.append(t * 1000)
            total, sweep_part, job_part, sem_git = sem_per_job(model_file, store, runs)
            sem_times.append(total * 1000)
            sweep_parts.append(sweep_part * 1000)
            job_parts.append(job_part * 1000)

    m = {
        "sacred_per_run": bl.measurement(
            "sacred default capture, per run",
            sacred_times,
            "gather_sources_and_dependencies(save_git_info=True) + get_host_info(), as every `python m.py with ...`",
            "ms",
        ),
        "sem_per_job": bl.measurement(
            f"sem capture, per job (sweep capture / {runs} + per-job part)",
            sem_times,
            "capture_sweep once (git, python, packages, DVC, diff file) divided over the runs, plus per job: "
            "model sources and host info with cold caches, the seed",
            "ms",
        ),
        "sem_sweep_capture": bl.measurement(
            "sem capture_sweep, once per sweep",
            sweep_parts,
            "git state, full diff, every installed package, DVC state",
            "ms",
        ),
        "sem_job_part": bl.measurement(
            "sem, each job's own part", job_parts, "model sources, host info (cold caches), seed", "ms"
        ),
    }
    d = {
        "ratio": bl.derived(
            "sem / sacred, per run",
            bl.median(m["sem_per_job"]) / bl.median(m["sacred_per_run"]) * 100,
            "%",
            "ratio of the medians",
        ),
        "sacred_git": bl.derived(f"git processes, sacred, {runs} runs", sacred_git, "", "counted at subprocess.Popen"),
        "sem_git": bl.derived(f"git processes, sem, {runs} runs", sem_git, "", "counted at subprocess.Popen"),
    }
    bl.write_result(
        args,
        "capture",
        "bench_capture.py",
        title="Capture: recording the code version",
        description=(
            f"A git repository of {files:,} files with a dirty tree (5 modified tracked files, 5 untracked), "
            f"a model file importing two sibling modules; {runs} runs per measurement, in one process."
        ),
        params={"files": files, "runs": runs},
        measurements=m,
        derived_=d,
        env=env,
    )


if __name__ == "__main__":
    main()
