"""Job arrays: pack jobs into array tasks, split tasks into arrays the cluster accepts.

Pure functions; the only I/O is ``read_max_array_size`` (one ``scontrol show config``).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence

from sem_core.errors import SemError

# Slurm's default when slurm.conf does not set MaxArraySize.
DEFAULT_MAX_ARRAY_SIZE = 1001

_MAX_ARRAY_RE = re.compile(r"^\s*MaxArraySize\s*=\s*(\d+)\s*$", re.MULTILINE)


def parse_max_array_size(scontrol_config: str) -> int:
    """MaxArraySize from the text of ``scontrol show config`` (Slurm's default if absent).

    The largest array index Slurm accepts is MaxArraySize - 1, so an array may hold at most
    MaxArraySize tasks (indices 0 .. MaxArraySize-1)."""
    match = _MAX_ARRAY_RE.search(scontrol_config)
    if match is None:
        return DEFAULT_MAX_ARRAY_SIZE
    value = int(match.group(1))
    # MaxArraySize=0 disables arrays: every task is then its own one-task submission
    return max(value, 1)


def read_max_array_size() -> int:
    """Ask the cluster (``scontrol show config``); a failing scontrol is an error, not a guess."""
    try:
        out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise SemError("hydra/launcher=slurm: 'scontrol' is not on PATH; run the sweep on a Slurm login node") from None
    except subprocess.TimeoutExpired:
        raise SemError("hydra/launcher=slurm: 'scontrol show config' did not answer within 60 s") from None
    if out.returncode != 0:
        raise SemError(
            f"hydra/launcher=slurm: 'scontrol show config' failed (exit {out.returncode}): "
            f"{(out.stderr or out.stdout).strip()[:500]}"
        )
    return parse_max_array_size(out.stdout)


def pack_jobs(n_jobs: int, configs_per_task: int) -> list[list[int]]:
    """Job indices 0..n_jobs-1 grouped into array tasks of ``configs_per_task`` each, in order."""
    if configs_per_task < 1:
        raise ValueError(f"configs_per_task must be >= 1, got {configs_per_task}")
    return [list(range(i, min(i + configs_per_task, n_jobs))) for i in range(0, n_jobs, configs_per_task)]


def split_arrays(n_tasks: int, max_array_size: int) -> list[range]:
    """Task indices split into consecutive arrays of at most ``max_array_size`` tasks
    (one sbatch call each)."""
    if max_array_size < 1:
        raise ValueError(f"max_array_size must be >= 1, got {max_array_size}")
    return [range(i, min(i + max_array_size, n_tasks)) for i in range(0, n_tasks, max_array_size)]


def array_spec(n_tasks: int, parallelism: int) -> str:
    """The ``--array`` value Slurm gets for an array of ``n_tasks`` (what submitit writes)."""
    return f"0-{n_tasks - 1}%{min(n_tasks, parallelism)}"


def share_parallelism(n_arrays: int, parallelism: int) -> list[tuple[int, int | None]]:
    """Keep ``%parallelism`` a limit on the whole sweep when it is split into several arrays.

    Returns, per array, its own ``%`` limit and the index of the array it must wait for
    (``afterany``) or None. The arrays are dealt round-robin to ``min(n_arrays, parallelism)``
    lanes that run side by side; the limit is shared out between the lanes, and the arrays of
    one lane run one after another. At most one array per lane can run, so no more than
    ``parallelism`` tasks of the sweep ever run at once."""
    if parallelism < 1:
        raise ValueError(f"array_parallelism must be >= 1, got {parallelism}")
    lanes = max(1, min(n_arrays, parallelism))
    return [
        (parallelism // lanes + (1 if i % lanes < parallelism % lanes else 0), i - lanes if i >= lanes else None)
        for i in range(n_arrays)
    ]


def plan_submissions(n_jobs: int, configs_per_task: int, max_array_size: int) -> list[list[list[int]]]:
    """submissions -> array tasks -> job indices. Every job appears exactly once, in order."""
    tasks = pack_jobs(n_jobs, configs_per_task)
    return [[tasks[t] for t in chunk] for chunk in split_arrays(len(tasks), max_array_size)]


def task_of_job(submissions: Sequence[Sequence[Sequence[int]]]) -> dict[int, tuple[int, int]]:
    """job index -> (submission index, array index within that submission)."""
    out: dict[int, tuple[int, int]] = {}
    for s, tasks in enumerate(submissions):
        for a, jobs in enumerate(tasks):
            for j in jobs:
                out[j] = (s, a)
    return out
