"""Write synthetic runs into a run store through sem's real FileStorageObserver events
(for tests/test_results*.py and benchmarks/bench_results.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sem_core import ids
from sem_core.observers.file import FileStorageObserver

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def write_run(
    store: Path,
    row: dict,
    order_id: int,
    metrics: dict[str, list[float]],
    *,
    status: str = "COMPLETED",
    start: dt.datetime | None = None,
    seconds: float = 3.0,
    global_id: str | None = None,
    model: str = "m_linear.py",
    output: str = "",
    fail_trace: list[str] | None = None,
    artifacts: dict[str, Path] | None = None,
    hostname: str = "node1",
) -> Path:
    """One run with ``metrics[name]`` logged at steps 0..n-1; returns its folder."""
    start = start or T0
    gid = global_id or f"{start.strftime('%Y%m%dT%H%M%S')}-{ids.experiment_id(row)[:6]}{order_id:06d}"
    config = dict(
        row, experiment_id=ids.experiment_id(row), config_id=ids.config_id(row), order_id=order_id, global_id=gid
    )
    obs = FileStorageObserver(store)
    ex_info = {"name": Path(model).stem, "mainfile": model, "base_dir": str(store), "sources": [], "dependencies": []}
    obs.started_event(ex_info, "main", {"hostname": hostname}, start, config, {}, gid)
    if metrics:
        obs.log_metrics(
            {
                name: {
                    "steps": list(range(len(vals))),
                    "values": list(vals),
                    "timestamps": [(start + dt.timedelta(seconds=i)).isoformat() for i in range(len(vals))],
                }
                for name, vals in metrics.items()
            },
            {},
        )
    if output:
        obs.heartbeat_event({}, output, start + dt.timedelta(seconds=1), None)
    for name, path in (artifacts or {}).items():
        obs.artifact_event(name, str(path))
    stop = start + dt.timedelta(seconds=seconds)
    if status == "COMPLETED":
        obs.completed_event(stop, None)
    elif status == "FAILED":
        obs.failed_event(stop, fail_trace or ["Traceback (most recent call last):\n", "ValueError: boom\n"])
    elif status == "RUNNING":
        pass
    else:
        obs.interrupted_event(stop, status)
    return store / gid
