"""The live run behind ``ex.log_scalar``, ``ex.add_artifact``, ``ex.info``: one per job.

A ``Run`` drives a list of observers (sacred's events, ``sem_core.observers.base``).
Metric points and captured output are buffered in memory and flushed by a heartbeat
thread every ``heartbeat_interval`` seconds, so logging costs a list append.
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
import time
from time import time as _time
import traceback
from pathlib import Path
from typing import Any, Optional, Sequence

from sem_core.errors import NoActiveRun
from sem_core.observers.base import RunObserver
from sem_core.signals import signals_held
from sem_core.stdio import make_capture

_current: Optional["Run"] = None


def current_run() -> "Run":
    if _current is None:
        raise NoActiveRun(
            "no sem run is active: ex.log_scalar, ex.log_metrics, ex.add_artifact, ex.add_resource and ex.info "
            "work only inside main() while the model file runs (python m_<model>.py ...)"
        )
    return _current


def _utc_isoformat_many(stamps: list) -> list:
    """Naive-UTC ISO strings (sacred's metric timestamps) for epoch floats.

    ``datetime.isoformat`` per point costs ~4 us: most of the price of 100k log_scalar calls.
    Points of one second share the date-time prefix, so it is formatted once per second."""
    prefixes: dict = {}
    out = []
    for t in stamps:
        sec = int(t)
        prefix = prefixes.get(sec)
        if prefix is None:
            prefix = prefixes[sec] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        out.append(f"{prefix}.{min(int((t - sec) * 1e6), 999999):06d}")
    return out


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Run:
    def __init__(
        self,
        *,
        global_id: str,
        config: dict,
        ex_info: dict,
        host_info: dict,
        command: str,
        meta_info: dict,
        observers: Sequence[RunObserver],
        heartbeat_interval: float = 10.0,
        capture_mode: str = "fd",
    ):
        self.global_id = global_id
        self.config = config
        self.ex_info = ex_info
        self.host_info = host_info
        self.command = command
        self.meta_info = meta_info
        self.observers = sorted(observers, key=lambda o: -o.priority)
        self.heartbeat_interval = heartbeat_interval
        self.info: dict = {}
        self.result: Any = None
        self.status = "NOT_STARTED"
        self.recorded = False  # the record of truth holds the run's end
        self._wind_down_error: Optional[BaseException] = None
        self._lock = threading.Lock()
        self._points: list[tuple] = []
        self._next_step: dict[str, int] = {}
        self._out: list[str] = []
        self._stop = threading.Event()
        self._beat: Optional[threading.Thread] = None
        self._capture = make_capture(capture_mode, self._collect_output)
        self._artifact_names: set[str] = set()

    # -- user API --------------------------------------------------------------------
    def log_scalar(self, name: str, value: Any, step: Optional[int] = None) -> None:
        # Hot path (100k calls must cost well under 0.5 s): one tuple appended to one list.
        # No lock: list.append and the slice-delete in _drain are atomic, so a point logged
        # while a heartbeat drains lands in the next drain.
        if step is None:
            step = self._next_step.get(name, 0)
        self._next_step[name] = step + 1
        if type(value) is not float and type(value) is not int:
            value = value.item() if hasattr(value, "item") else value
        self._points.append((name, step, value, _time()))

    def add_artifact(self, path: str | Path, name: Optional[str] = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ex.add_artifact: {path} is not a file")
        name = name or path.name
        if name in self._artifact_names:
            raise ValueError(f"ex.add_artifact: an artifact named {name!r} was already added; pass name=")
        self._artifact_names.add(name)
        for obs in self.observers:
            obs.artifact_event(name=name, filename=str(path))

    def add_resource(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ex.add_resource: {path} is not a file")
        for obs in self.observers:
            obs.resource_event(filename=str(path))

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        global _current
        start_time = _now()
        for obs in self.observers:
            obs.started_event(
                ex_info=self.ex_info,
                command=self.command,
                host_info=self.host_info,
                start_time=start_time,
                config=self.config,
                meta_info=self.meta_info,
                _id=self.global_id,
            )
        self.status = "RUNNING"
        self._capture.start()
        _current = self
        self._beat = threading.Thread(target=self._heartbeat_loop, name=f"sem-heartbeat-{self.global_id}", daemon=True)
        self._beat.start()

    def _collect_output(self, text: str) -> None:
        with self._lock:
            self._out.append(text)

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat_interval):
            self.heartbeat()

    def _drain(self) -> tuple[dict, str]:
        """Take the points and output logged since the last drain (sacred's metric format)."""
        n = len(self._points)
        points = self._points[:n]
        del self._points[:n]
        with self._lock:
            out = "".join(self._out)
            self._out.clear()
        fresh: dict[str, dict[str, list]] = {}
        for name, step, value, t in points:
            series = fresh.get(name)
            if series is None:
                series = fresh[name] = {"steps": [], "values": [], "timestamps": []}
            series["steps"].append(step)
            series["values"].append(value)
            series["timestamps"].append(t)
        # sacred writes naive UTC ISO timestamps; converting here keeps log_scalar an append
        for series in fresh.values():
            series["timestamps"] = _utc_isoformat_many(series["timestamps"])
        return fresh, out

    def heartbeat(self) -> None:
        metrics, out = self._drain()
        for obs in self.observers:
            obs.log_metrics(metrics, self.info)
            obs.heartbeat_event(info=self.info, captured_out=out, beat_time=_now(), result=self.result)

    def _report_late_sources(self) -> None:
        """Modules of the model folder first imported inside main() belong to the run too."""
        from sem_core.sources import model_sources

        if not self.ex_info.get("mainfile"):
            return
        known = {name for name, _ in self.ex_info.get("sources", [])}
        late = [s for s in model_sources(Path(self.ex_info["base_dir"]) / self.ex_info["mainfile"]) if s[0] not in known]
        if late:
            for obs in self.observers:
                obs.sources_event(late)

    def _stop_capture(self) -> None:
        global _current
        self._stop.set()
        if self._beat is not None and self._beat is not threading.current_thread():
            self._beat.join()
        self._capture.stop()
        if _current is self:
            _current = None
        self.heartbeat()  # last flush of metrics and output

    # Ending a run: everything up to the record of truth's final event runs with signals held
    # back (sem_core.signals), so the SIGTERM srun sends twice, or a second Ctrl-C, cannot cut
    # the record off; they are delivered right after it. Other observers (MongoDB: network, maybe
    # slow) get their final event with signals live, so Ctrl-C never waits for a database.
    def complete(self, result: Any) -> None:
        self.result = result
        with signals_held():
            self._wind_down()
            self.status = "COMPLETED"
            end = {"stop_time": _now(), "result": result}
            self._final_event("completed_event", end, record=True)
        self._final_event("completed_event", end, record=False)

    def fail(self, exc: BaseException) -> None:
        with signals_held():
            trace = traceback.format_exception(type(exc), exc, exc.__traceback__)
            # Shown when it happens (not only in the summary at the end of the sweep) and kept
            # in cout.txt with the rest of the job's output, where people look first.
            print(f"run {self.global_id} failed:\n{''.join(trace)}", end="", file=sys.stderr, flush=True)
            self._wind_down()
            self.status = "FAILED"
            end = {"fail_time": _now(), "fail_trace": trace}
            self._final_event("failed_event", end, record=True)
        self._final_event("failed_event", end, record=False)

    def interrupt(self, status: str = "INTERRUPTED") -> None:
        with signals_held():
            self._wind_down(late_sources=False)
            self.status = status
            end = {"interrupt_time": _now(), "status": status}
            self._final_event("interrupted_event", end, record=True)
        self._final_event("interrupted_event", end, record=False)

    def _wind_down(self, late_sources: bool = True) -> None:
        """Last flush of metrics and output, and the sources imported late. A failure here is
        reported after the run's end is recorded, never instead of it."""
        try:
            self._stop_capture()
            if late_sources:
                self._report_late_sources()
        except Exception as exc:
            self._wind_down_error = exc

    def _final_event(self, event: str, kwargs: dict, record: bool) -> None:
        """The run's last event to the observers that hold its record (``record=True``) or to
        the others; then wait for the others and re-raise a wind-down failure."""
        for obs in self.observers:
            if bool(obs.holds_the_record) == record:
                getattr(obs, event)(**kwargs)
        if record:
            self.recorded = True
            return
        self._join()
        if self._wind_down_error is not None:
            error, self._wind_down_error = self._wind_down_error, None
            raise error

    def _join(self) -> None:
        for obs in self.observers:
            obs.join()
