"""The live run behind ``ex.log_scalar``, ``ex.add_artifact``, ``ex.info``: one per job.

A ``Run`` drives a list of observers (sacred's events, ``sem_core.observers.base``).
Metric points and captured output are buffered in memory and flushed by a heartbeat
thread every ``heartbeat_interval`` seconds, so logging costs a list append.

Nothing the run logged is dropped when a flush fails (a disk full for a moment, an observer
that raises): each observer keeps what it has not yet taken, and gets it again at the next
beat. The heartbeat thread survives any error. A run whose record could not be written in
full ends FAILED with the reason, never COMPLETED. While the record holder refuses data for
long, memory is bounded: past ``MAX_PENDING_POINTS`` metric points the run is stopped with a
``RecordError``.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import faulthandler
import json
import os
import sys
import threading
import time
import traceback
from bisect import bisect_left
from collections.abc import Sequence
from pathlib import Path
from time import time as _time
from typing import Any

from sem_core.errors import SemError
from sem_core.observers.base import RunObserver
from sem_core.records import merge_series
from sem_core.run_status import RunStatus
from sem_core.signals import signals_held
from sem_core.stdio import OutputCopier, make_capture
from sem_core.traces import user_trace

# Metric points waiting for an observer that refuses them (disk full) before the run is stopped.
MAX_PENDING_POINTS = 2_000_000

# How long the run's end waits for a full disk to take the last flush and the final record.
FINAL_WRITE_RETRY_S = 30.0


class RecordError(SemError):
    """The run record could not be written in full."""


def _utc_isoformat_many(micros: list[float]) -> list[str]:
    """Naive-UTC ISO strings (sacred's metric timestamps) for times in epoch microseconds.

    Formatting each time alone (``datetime.isoformat``, an f-string) costs most of the price of
    100k log_scalar calls. The times of one second are written by one format instead."""
    out: list[str] = []
    i, n = 0, len(micros)
    while i < n:
        sec = int(micros[i] // 1_000_000)
        start, end = sec * 1_000_000, (sec + 1) * 1_000_000
        # the times are in order unless the clock was set back: checked, not assumed
        j = bisect_left(micros, end, i + 1)
        group = micros[i:j]
        if start <= min(group) and max(group) < end:
            # one format for the whole second; %d of a float truncates it
            text = ((_second_prefix(sec) + "%06d\0") * (j - i)) % tuple(map(float(start).__rsub__, group))
            out += text[:-1].split("\0")
        else:
            for us in group:
                whole = int(us // 1_000_000)
                out.append(f"{_second_prefix(whole)}{int(us - whole * 1_000_000):06d}")
        i = j
    return out


def _second_prefix(sec: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))


def _checked_step(step: Any) -> Any:
    """A step given to log_scalar: a number (numpy's as a Python number)."""
    if hasattr(step, "item"):
        step = step.item()
    try:
        step + 1
    except TypeError:
        raise TypeError(f"ex.log_scalar: a step must be a number, got {type(step).__name__} {step!r}") from None
    return step


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def info_snapshot(info: dict) -> tuple[dict, dict[str, str]]:
    """``ex.info`` as JSON data, and ``{key: reason}`` for the top-level keys that cannot be
    written (keys of mixed types, circular references); those are left out of the snapshot."""
    from sem_core.records import _json_default

    try:
        return json.loads(json.dumps(info, sort_keys=True, default=_json_default)), {}
    except (TypeError, ValueError, RecursionError):
        pass
    good, bad = {}, {}
    for key, value in list(info.items()):
        try:
            if not isinstance(key, str):
                raise TypeError(f"its key is a {type(key).__name__}, not a str")
            good[key] = json.loads(json.dumps(value, sort_keys=True, default=_json_default))
        except (TypeError, ValueError, RecursionError) as exc:
            reason = str(exc)
            if "not supported between instances" in reason:
                reason = f"a dict in it mixes key types ({reason})"
            bad[str(key)] = reason
    return good, bad


class _Pending:
    """What one observer has not taken yet: metric points and output."""

    __slots__ = ("metrics", "out", "points", "failing_since", "error")

    def __init__(self) -> None:
        self.metrics: dict[str, dict[str, list]] = {}
        self.out = ""
        self.points = 0
        self.failing_since: dt.datetime | None = None
        self.error: str | None = None

    def add(self, metrics: dict, out: str) -> None:
        self.points += merge_series(self.metrics, metrics)
        self.out += out


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
        copier: OutputCopier | None = None,
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
        # what could not be recorded; a run with any of these never ends COMPLETED
        self.record_errors: list[str] = []
        self._end: dict = {}
        # not drained yet, per metric name: step, value, time (epoch microseconds), step, value, ...
        self._points: dict[str, list] = {}
        self._next_step: dict[str, Any] = {}  # the step a point logged without one gets (drained)
        self._pending = {id(obs): _Pending() for obs in self.observers}
        self._info_problems: dict[str, str] = {}
        self._beat_lock = threading.Lock()  # one flush at a time (heartbeat thread or the end)
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._capture_mode = capture_mode
        self._copier = copier  # the process's output copier, shared by its jobs (sem_core.stdio)
        self._capture: Any = None
        self._take_output = True  # whether some observer reads captured_out (set by start)
        self._main_thread: int | None = None  # the thread running main(), set by start()
        self._stopped_for_memory = False
        self._artifact_names: set[str] = set()
        self._modules_at_start: set[str] = set()

    # -- user API --------------------------------------------------------------------
    def log_scalar(self, name: str, value: Any, step: int | None = None) -> None:
        # Hot path (100k calls must cost well under 0.15 s, metrics.json included): three items
        # appended to the name's flat list, no tuple, dict or datetime kept per point; default
        # steps are numbered and times formatted when a heartbeat drains the list. No lock:
        # `list += tuple` and the slice-delete in _drain are atomic, so a point logged while a
        # heartbeat drains lands whole in the next drain.
        try:
            points = self._points[name]
        except KeyError:
            points = self._new_metric(name)
        if step is not None and type(step) is not int:
            step = _checked_step(step)
        if type(value) is not float and type(value) is not int:
            value = value.item() if hasattr(value, "item") else value
        points += (step, value, _time() * 1e6)

    def _new_metric(self, name: str) -> list:
        if type(name) is not str:
            # metrics.json is keyed by name: 5 and "5" would collide when the record is written
            raise TypeError(f"ex.log_scalar: a metric name must be a str, got {type(name).__name__} {name!r}")
        points: list = []
        self._points[name] = points
        return points

    def add_artifact(self, path: str | os.PathLike, name: str | None = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ex.add_artifact: {path} is not a file")
        name = name or path.name
        if name in self._artifact_names:
            raise ValueError(f"ex.add_artifact: an artifact named {name!r} was already added; pass name=")
        self._artifact_names.add(name)
        for obs in self.observers:
            obs.artifact_event(name=name, filename=str(path))

    def add_resource(self, path: str | os.PathLike) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ex.add_resource: {path} is not a file")
        for obs in self.observers:
            obs.resource_event(filename=str(path))

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        # a module first imported inside main() is in sys.modules at the end and not here
        self._modules_at_start = set(sys.modules)
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
        self.status = RunStatus.RUNNING
        self._main_thread = threading.get_ident()
        output_file, keeper = None, None
        if self._capture_mode == "fd":
            # the record holder's output file is appended to by the capture itself
            for obs in self.observers:
                output_file = obs.hand_over_output_file()
                if output_file:
                    keeper = obs
                    break
        # fd mode: read the output back from the file only for observers that look at it
        self._take_output = self._capture_mode != "fd" or any(
            obs is not keeper and type(obs).heartbeat_event is not RunObserver.heartbeat_event for obs in self.observers
        )
        self._capture = make_capture(self._capture_mode, output_file, self._copier)
        self._capture.start()
        # a segfault leaves a Python trace in the job's output (fd 2 is captured)
        faulthandler.enable(file=sys.__stderr__ if sys.__stderr__ is not None else sys.stderr, all_threads=True)
        self._beat = threading.Thread(target=self._heartbeat_loop, name=f"sem-heartbeat-{self.global_id}", daemon=True)
        self._beat.start()

    def _heartbeat_loop(self) -> None:
        # Never ends on an error: a dead heartbeat would leave a live run looking killed.
        while not self._stop.wait(self.heartbeat_interval):
            try:
                self.heartbeat()
            except BaseException as exc:  # noqa: BLE001 - reported, and the next beat retries
                self._report(f"heartbeat failed ({type(exc).__name__}: {exc}); retrying at the next beat")

    def _drain(self) -> dict:
        """Take the points logged since the last drain (sacred's metric format)."""
        fresh: dict[str, dict[str, list]] = {}
        # a name first logged during the drain is inserted into the dict: iterate over a copy
        for name, points in list(self._points.items()):
            n = len(points)
            if not n:
                continue
            taken = points[:n]
            del points[:n]
            fresh[name] = {
                "steps": self._number_steps(name, taken[0::3]),
                "values": taken[1::3],
                # sacred writes naive UTC ISO timestamps; converting here keeps log_scalar an append
                "timestamps": _utc_isoformat_many(taken[2::3]),
            }
        return fresh

    def _number_steps(self, name: str, steps: list) -> list:
        """The steps left None numbered as sacred does: one past the name's previous step."""
        defaults = steps.count(None)
        step = self._next_step.get(name, 0)
        if defaults == len(steps) and type(step) is int:
            numbered = list(range(step, step + defaults))
        elif defaults:
            numbered = []
            for given in steps:
                step = step if given is None else given
                numbered.append(step)
                step += 1
        else:
            numbered = steps
        self._next_step[name] = numbered[-1] + 1
        return numbered

    def _info(self) -> dict:
        info, problems = info_snapshot(self.info)
        for key, reason in problems.items():
            if key not in self._info_problems:
                self._info_problems[key] = reason
                message = f"ex.info[{key!r}] cannot be saved: {reason}; make it plain data (str keys, no cycles)"
                self.record_errors.append(message)
                self._report(message)
        return info

    def heartbeat(self) -> bool:
        """Hand every observer what it has not taken yet; True when the observers holding the
        record took everything (the others catch up later: ``sem sync``)."""
        with self._beat_lock:
            fresh = self._drain()
            out = self._capture.take() if self._capture is not None and self._take_output else ""
            info = self._info()
            beat = _now()
            complete = True
            for obs in self.observers:
                pending = self._pending[id(obs)]
                pending.add(_copy_series(fresh) if len(self.observers) > 1 else fresh, out)
                try:
                    if pending.metrics:
                        obs.log_metrics(pending.metrics, info)
                        pending.metrics, pending.points = {}, 0
                    obs.heartbeat_event(info=info, captured_out=pending.out, beat_time=beat, result=self.result)
                    pending.out = ""
                    if pending.failing_since is not None:
                        self._report(f"{type(obs).__name__} takes data again; nothing was lost")
                    pending.failing_since, pending.error = None, None
                except Exception as exc:
                    complete = complete and not obs.holds_the_record
                    error = f"{type(exc).__name__}: {exc}"
                    if pending.failing_since is None:
                        pending.failing_since = beat
                        self._report(f"{type(obs).__name__} could not write ({error}); its data is kept and retried")
                    pending.error = error
                    if pending.points > MAX_PENDING_POINTS:
                        if obs.holds_the_record:
                            self._stop_for_memory(pending)
                        else:  # not the record: it is dropped, loudly, rather than fill memory
                            name = type(obs).__name__
                            self._report(f"{name} dropped {pending.points} metric points it could not take")
                            pending.metrics, pending.points, pending.out = {}, 0, ""
            return complete

    def _stop_for_memory(self, pending: _Pending) -> None:
        """The record holder has refused data for too long: stop ``main`` (in the main thread)
        with a RecordError rather than let memory grow without bound."""
        if self._stopped_for_memory or self._main_thread is None:
            return
        self._stopped_for_memory = True
        message = (
            f"{pending.points} metric points could not be written since {pending.failing_since:%H:%M:%S} "
            f"({pending.error}); the run is stopped so memory stays bounded"
        )
        self.record_errors.append(message)
        self._report(message)
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._main_thread), ctypes.py_object(RecordError))

    def _report(self, message: str) -> None:
        """A line about the record on the terminal (also in cout.txt while output is captured)."""
        try:
            # one write: a line of its own in cout.txt, not split around the job's stdout
            sys.stderr.write(f"sem: run {self.global_id}: {message}\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - stderr itself may be gone; the record keeps the error
            pass

    def _report_late_sources(self) -> None:
        """Modules of the model folder first imported inside main() belong to the run too."""
        from sem_core.sources import model_sources

        if not self.ex_info.get("mainfile") or sys.modules.keys() <= self._modules_at_start:
            return  # nothing imported since the start: no model-folder scan (a job's largest end cost)
        known = {name for name, _ in self.ex_info.get("sources", [])}
        model_file = Path(self.ex_info["base_dir"]) / self.ex_info["mainfile"]
        late = [s for s in model_sources(model_file) if s[0] not in known]
        if late:
            for obs in self.observers:
                obs.sources_event(late)

    def _stop_capture(self) -> None:
        self._stop.set()
        if self._beat is not None and self._beat is not threading.current_thread():
            self._beat.join()
        if self._capture is not None:
            self._capture.stop()
            if self._capture.problem:
                self.record_errors.append(self._capture.problem)
        # last flush of metrics and output; a disk full for a moment is waited for
        deadline = time.monotonic() + FINAL_WRITE_RETRY_S
        delay = 0.05
        while not self.heartbeat():
            if time.monotonic() >= deadline:
                for obs in self.observers:
                    pending = self._pending[id(obs)]
                    if obs.holds_the_record and (pending.points or pending.out):
                        self.record_errors.append(
                            f"{pending.points} metric points and {len(pending.out)} characters of output could not "
                            f"be written since {pending.failing_since:%H:%M:%S} ({pending.error})"
                        )
                break
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        if self._capture is not None:
            self._capture.discard()

    # Ending a run: everything up to the record of truth's final event runs with signals held
    # back (sem_core.signals), so the SIGTERM srun sends twice, or a second Ctrl-C, cannot cut
    # the record off; they are delivered right after it. Other observers (MongoDB: network, maybe
    # slow) get their final event with signals live, so Ctrl-C never waits for a database.
    def complete(self, result: Any) -> None:
        self.result = result
        with signals_held():
            self._wind_down()
            if self.record_errors:
                # a record that lost something must not pass for a complete one
                incomplete = RecordError("the run's record is incomplete: " + "; ".join(self.record_errors))
                self._fail_held(incomplete, errors_told=True)
                end_event, end = "failed_event", self._end
            else:
                self.status = RunStatus.COMPLETED
                end_event, end = "completed_event", {"stop_time": _now(), "result": result}
                self._record_end(end_event, end)
        self._final_event(end_event, end, record=False)

    def fail(self, exc: BaseException) -> None:
        with signals_held():
            # Shown when it happens (not only in the summary at the end of the sweep) and kept
            # in cout.txt with the rest of the job's output, where people look first.
            trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            self._report(f"failed:\n{user_trace(trace)}".rstrip())
            self._wind_down()
            self._fail_held(exc, shown=True)
        self._final_event("failed_event", self._end, record=False)

    def _fail_held(self, exc: BaseException, shown: bool = False, errors_told: bool = False) -> None:
        trace = traceback.format_exception(type(exc), exc, exc.__traceback__)
        if self.record_errors and not errors_told:
            trace.append("sem: the run's record is also incomplete: " + "; ".join(self.record_errors) + "\n")
        if not shown:
            self._report(f"failed:\n{user_trace(''.join(trace))}".rstrip())
        self.status = RunStatus.FAILED
        self._end = {"fail_time": _now(), "fail_trace": trace}
        self._record_end("failed_event", self._end)

    def interrupt(self, status: RunStatus = RunStatus.INTERRUPTED) -> None:
        with signals_held():
            self._wind_down(late_sources=False)
            self.status = status
            end = {"interrupt_time": _now(), "status": status}
            self._record_end("interrupted_event", end)
        self._final_event("interrupted_event", end, record=False)

    def _wind_down(self, late_sources: bool = True) -> None:
        """Last flush of metrics and output, and the sources imported late. A failure here
        makes the record incomplete; it never stops the run's end from being recorded."""
        try:
            self._stop_capture()
            if late_sources:
                self._report_late_sources()
        except Exception as exc:
            self.record_errors.append(f"{type(exc).__name__} while flushing the record: {exc}")

    def _record_end(self, event: str, kwargs: dict) -> None:
        """The final event to the observers holding the record. A full disk is waited for;
        if it cannot be written, a FAILED end naming the reason is tried before giving up."""
        deadline = time.monotonic() + FINAL_WRITE_RETRY_S
        delay = 0.05
        while True:
            try:
                self._final_event(event, kwargs, record=True)
                return
            except Exception as exc:
                if time.monotonic() < deadline and isinstance(exc, OSError):
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                if event == "failed_event":
                    raise RecordError(f"the final record could not be written: {type(exc).__name__}: {exc}") from exc
                self.record_errors.append(f"writing the {self.status} record failed: {type(exc).__name__}: {exc}")
                event, kwargs = (
                    "failed_event",
                    {
                        "fail_time": _now(),
                        "fail_trace": [
                            f"sem: the run ended {self.status}, but that could not be recorded: "
                            + "; ".join(self.record_errors)
                            + "\n"
                        ],
                    },
                )
                self.status = RunStatus.FAILED
                self._end = kwargs
                deadline = time.monotonic() + FINAL_WRITE_RETRY_S

    def _final_event(self, event: str, kwargs: dict, record: bool) -> None:
        """The run's last event to the observers that hold its record (``record=True``) or to
        the others, then wait for the others. The others failing leaves the record as it is."""
        if record:
            for obs in self.observers:
                if obs.holds_the_record:
                    getattr(obs, event)(**kwargs)
            self.recorded = True
            return
        for obs in self.observers:
            if not obs.holds_the_record:
                try:
                    getattr(obs, event)(**kwargs)
                except Exception as exc:  # noqa: BLE001 - e.g. a database gone: `sem sync` catches up
                    self._report(f"{type(obs).__name__} missed the run's end ({type(exc).__name__}: {exc})")
        self._join()

    def _join(self) -> None:
        for obs in self.observers:
            obs.join()


def _copy_series(metrics: dict) -> dict:
    return {name: {key: list(values) for key, values in series.items()} for name, series in metrics.items()}
