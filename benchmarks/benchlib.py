"""What every benchmark script shares: its command line, running a child process with its peak
memory, the record of the machine and versions, and the results file it writes.

A results file (``benchmarks/results/<name>.json``) holds every raw sample, not only medians, so
that ``benchmarks/render.py`` can rebuild ``docs/performance.md`` from it and anyone can check a
figure. Its shape::

    {"benchmark": "core", "title": ..., "description": ..., "command": "python benchmarks/...",
     "quick": false, "repeat": 3, "params": {...}, "environment": {...},
     "measurements": {key: {"label", "includes", "unit", "samples": [...], "median", "min", "max"}},
     "derived": {key: {"label", "value", "unit", "how"}}, "notes": [...]}
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import functools
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
VERSIONED = ("hydra-core", "omegaconf", "sacred", "pymongo", "sem", "pandas", "submitit", "secantusdb")


def arg_parser(doc: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and one repeat: seconds, for CI (the figures mean little)"
    )
    parser.add_argument("--repeat", type=int, default=None, help="repeats of each measurement (default: 3, --quick: 1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results file (default: %(default)s)")
    return parser


def repeats(args: argparse.Namespace) -> int:
    return args.repeat if args.repeat is not None else (1 if args.quick else 3)


def command_line(script: str, argv: Sequence[str] | None = None) -> str:
    """The command that reproduces a results file (without --out)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--out":
            skip = True
            continue
        if arg.startswith("--out="):
            continue
        kept.append(arg)
    return " ".join(["python", f"benchmarks/{script}", *map(shlex.quote, kept)])


# ---- the environment of a measurement -------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total_mb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


SNAPSHOT_COMMIT = "SEM_BENCH_SNAPSHOT_COMMIT"  # set by run_all.py --snapshot: sem imported from a clean export


def git_commit() -> str:
    if os.environ.get(SNAPSHOT_COMMIT):
        return os.environ[SNAPSHOT_COMMIT]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", "sem_core", "hydra_plugins"],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # only the product's own files count: other benchmarks' results or docs being edited change no figure
    return head + ("+dirty" if dirty else "")


def _sem_core_file() -> str:
    import importlib.util

    spec = importlib.util.find_spec("sem_core")
    return str(spec.origin) if spec and spec.origin else "?"


def environment() -> dict:
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "sem_imported_from": str(Path(_sem_core_file()).parent.parent),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_total_mb": _memory_total_mb(),
        "hostname": platform.node(),
        "os": platform.platform(),
        "load_average_start": list(os.getloadavg()),
        "python": sys.version.split()[0],
        "versions": {name: _version(name) for name in VERSIONED},
    }


# ---- measuring ------------------------------------------------------------------------------


@dataclass
class Sample:
    """One run of a command: wall time, the child's CPU time and peak resident memory."""

    wall_s: float
    user_s: float
    sys_s: float
    peak_rss_mb: float
    returncode: int = 0
    stdout: str = field(repr=False, default="")
    stderr: str = field(repr=False, default="")


@functools.cache
def compile_sem() -> str:
    """Compile sem's modules to bytecode once, as ``pip install`` does: where
    PYTHONDONTWRITEBYTECODE is set (this sandbox sets it), an editable install or a snapshot
    would otherwise compile every sem module from source in every measured command, while
    Hydra, sacred and numpy load theirs from site-packages' bytecode."""
    root = Path(_sem_core_file()).parent.parent
    for package in ("sem_core", "hydra_plugins"):
        if (root / package).is_dir():
            compileall.compile_dir(str(root / package), quiet=1)
    return str(root)


def run(cmd: Sequence[str], cwd: Path, env: dict | None = None, timeout: float = 3600, check: bool = True) -> Sample:
    """Run ``cmd`` as a user would (sem's modules compiled, as installed: ``compile_sem``); its
    peak RSS comes from ``wait4`` (the largest of the process and the children it waited for,
    e.g. sem's output copier)."""
    compile_sem()
    full_env = dict(os.environ)
    full_env.pop("HYDRA_FULL_ERROR", None)
    full_env.update(env or {})
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=str(cwd), env=full_env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(cmd)} (in {cwd}) exited {proc.returncode}:\n{stdout[-2000:]}\n{stderr[-3000:]}"
        )
    return Sample(wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode, stdout, stderr)


def round_robin(contenders: dict[str, Callable[[], Any]], repeat: int) -> dict[str, list[Any]]:
    """Run each contender once per round, ``repeat`` rounds: load on the machine hits all alike."""
    out: dict[str, list[Any]] = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, fn in contenders.items():
            out[name].append(fn())
    return out


def measurement(label: str, samples: Iterable[float], includes: str, unit: str = "s") -> dict:
    values = [float(x) for x in samples]
    return {
        "label": label,
        "includes": includes,
        "unit": unit,
        "samples": values,
        "median": statistics.median(values) if values else None,
        "min": min(values) if values else None,
        "max": max(values) if values else None,
    }


def derived(label: str, value: float, unit: str, how: str) -> dict:
    return {"label": label, "value": value, "unit": unit, "how": how}


def median(m: dict) -> float:
    return float(m["median"])


def write_result(
    args: argparse.Namespace,
    name: str,
    script: str,
    *,
    title: str,
    description: str,
    params: dict,
    measurements: dict,
    derived_: dict | None = None,
    notes: Sequence[str] = (),
    env: dict | None = None,
    extra: dict | None = None,
    repeat: int | None = None,
) -> Path:
    env = env or environment()
    env["load_average_end"] = list(os.getloadavg())
    result = {
        "benchmark": name,
        "title": title,
        "description": description,
        "command": command_line(script),
        "quick": bool(args.quick),
        "repeat": repeat if repeat is not None else repeats(args),
        "params": params,
        "environment": env,
        "measurements": measurements,
        "derived": derived_ or {},
        "notes": list(notes),
        **(extra or {}),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return path


# ---- realistic run records ------------------------------------------------------------------

REAL_MODEL = """
import os
from pathlib import Path

from sem_core import Experiment

ex = Experiment(__file__)


@ex.configs
def get_config():
    return [{{"name": "mlp", "lr": 10.0 ** -(1 + c % 4), "width": 32 * (1 + c // 4),
             "opt": {{"kind": "adam", "wd": c / 1000}}, "fold": f}}
            for c in range({configs}) for f in range(5)]


@ex.automain
def main(config):
    for step in range({points}):
        ex.log_scalar("train_loss", 1.0 / (1 + step) + config["lr"], step)
    print("epoch 1/1 done")
    scores = {{"test_rmse": 0.5 + config["fold"] / 10, "test_mae": 0.4 + config["lr"], "test_r2": 0.8,
               "test_nlpd": 1.1 - config["lr"]}}
    for name, value in scores.items():
        ex.log_scalar(name, value)
    if {artifact_bytes}:
        path = Path(config["global_id"] + ".bin")
        path.write_bytes(os.urandom({artifact_bytes}))
        ex.add_artifact(path, name="model.bin")
        path.unlink()
    return scores["test_rmse"]
"""
TEST_METRICS = ("test_rmse", "test_mae", "test_r2", "test_nlpd")


def real_runs(work: Path, configs: int = 2, points: int = 100, artifact_bytes: int = 0) -> tuple[Path, list[Path]]:
    """Run a real sem sweep of ``configs`` x 5 folds (a training curve of ``points`` steps, four
    test metrics and optionally an artifact each) and return its store and run folders: records
    as large as real ones."""
    models = work / "template" / "models"
    models.mkdir(parents=True, exist_ok=True)
    (models / "m_bench.py").write_text(REAL_MODEL.format(configs=configs, points=points, artifact_bytes=artifact_bytes))
    run([sys.executable, "m_bench.py", "-m"], models, check=False)  # the records are what counts
    store = models / "runs"
    dirs = sorted(d for d in store.iterdir() if (d / "run.json").exists() and (d / "config.json").exists())
    if len(dirs) != configs * 5:
        raise RuntimeError(f"the template sweep wrote {len(dirs)} runs, expected {configs * 5}")
    return store, dirs


def clone_runs(
    templates: Sequence[Path], store: Path, n: int, *, failed_every: int = 50, gid_prefix: str = "20260101T000000"
) -> list[Path]:
    """Write ``n`` run folders into ``store`` by copying real ones and varying them: each clone is
    its own configuration x fold (new row values and ids from sem's own id functions), its own
    global_id, start time, metric values, result and status (1 in ``failed_every`` FAILED)."""
    from sem_core import ids  # the same ids a sweep would give these rows

    store.mkdir(parents=True, exist_ok=True)
    template_store = templates[0].parent
    for extra in template_store.iterdir():  # shared folders (sources) next to the runs
        if extra.is_dir() and not (extra / "run.json").exists() and not (store / extra.name).exists():
            shutil.copytree(extra, store / extra.name)
    loaded = []
    for d in templates:
        files = {f.name: f.read_bytes() for f in d.iterdir() if f.is_file()}
        loaded.append(files)
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    out = []
    for i in range(n):
        files = loaded[i % len(loaded)]
        config_index, fold = divmod(i, 5)
        gid = f"{gid_prefix}-{i:012x}"
        config = json.loads(files["config.json"])
        row = {k: v for k, v in config.items() if k not in ("experiment_id", "config_id", "order_id", "global_id")}
        row.update(
            lr=10.0 ** -(1 + config_index % 4),
            width=32 * (1 + config_index // 4 % 8),
            opt={"kind": "adam", "wd": config_index / 1000},
            seed=config_index,
            fold=fold,
        )
        experiment_id, config_id = ids.row_ids(row)
        config = {**row, "experiment_id": experiment_id, "config_id": config_id, "order_id": i, "global_id": gid}
        metrics = json.loads(files["metrics.json"])
        for k, (name, series) in enumerate(sorted(metrics.items())):
            if name in TEST_METRICS:
                series["values"] = [((i * 31 + k * 17) % 997) / 997]
            else:
                series["values"] = [v + (i % 7) / 100 for v in series["values"]]
        run_doc = json.loads(files["run.json"])
        start = t0 + dt.timedelta(seconds=i)
        run_doc["start_time"] = start.isoformat()
        run_doc["stop_time"] = run_doc["heartbeat"] = (start + dt.timedelta(seconds=3)).isoformat()
        run_doc["last_metrics"] = {name: s["values"][-1] for name, s in metrics.items()}
        run_doc["result"] = run_doc["last_metrics"].get("test_rmse")
        if failed_every and i % failed_every == failed_every - 1:
            run_doc["status"] = "FAILED"
            run_doc["result"] = None
            run_doc["fail_trace"] = ["Traceback (most recent call last):\n", "ValueError: diverged\n"]
        sem_meta = run_doc.get("meta", {}).get("sem", {})
        if "job_num" in sem_meta:
            sem_meta["job_num"] = i
        target = store / gid
        target.mkdir()
        artifacts = {a for a in run_doc.get("artifacts", []) if isinstance(a, str)}
        for name, data in files.items():
            if name in artifacts:  # each run its own content: a store would keep shared bytes once
                data = os.urandom(len(data))
            elif name == "config.json":
                data = json.dumps(config, indent=2, sort_keys=True).encode()
            elif name == "run.json":
                data = json.dumps(run_doc, indent=2, sort_keys=True).encode()
            elif name == "metrics.json":
                data = json.dumps(metrics).encode()
            (target / name).write_bytes(data)
        out.append(target)
    return out


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
