"""The observer interface: sacred's ``RunObserver`` events, all no-ops.

Methods, argument names and defaults are those of ``sacred.observers.base.RunObserver`` (a test
compares the signatures), called in sacred's order (``sacred/run.py``): ``started_event`` (or
``queued_event``), per heartbeat ``log_metrics`` then ``heartbeat_event``, ``resource_event`` and
``artifact_event`` as they happen, a last heartbeat, one of ``completed_event``,
``failed_event`` or ``interrupted_event``, then ``join``. sacred is not imported (~0.5-1.9 s).

sem's own observers (file record, MongoDB) get three things in sem's form, to keep long runs
linear and cheap; observers of sacred's attached to a run get sacred's form
(``sem_core.observers.attached``):

- ``heartbeat_event(captured_out=...)``: the output written *since the last heartbeat*, not all
  of it again;
- times are timezone-aware UTC ``datetime``s (sacred: naive UTC);
- metric timestamps are ISO strings (sacred: ``datetime``s); ``log_metrics`` gets only the points
  logged since the last flush, as in sacred.

sem's additions, no-ops here: ``sources_event``, ``hand_over_output_file`` and
``holds_the_record``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

# sacred's dicts of a run: ex_info, host_info, config, meta_info, info
Info = dict[str, Any]
# {name: {"steps": [...], "values": [...], "timestamps": [...]}}
Metrics = dict[str, dict[str, list]]


class RunObserver:
    """Base class of every observer: each event does nothing unless overridden."""

    priority = 0
    # the run's record of truth: its final event is written with signals held back
    holds_the_record = False

    def queued_event(
        self,
        ex_info: Info,
        command: str,
        host_info: Info,
        queue_time: dt.datetime,
        config: Info,
        meta_info: Info,
        _id: Any,
    ) -> Any:
        pass

    def started_event(
        self,
        ex_info: Info,
        command: str,
        host_info: Info,
        start_time: dt.datetime,
        config: Info,
        meta_info: Info,
        _id: Any,
    ) -> Any:
        pass

    def heartbeat_event(self, info: Info, captured_out: str, beat_time: dt.datetime, result: Any) -> None:
        pass

    def completed_event(self, stop_time: dt.datetime, result: Any) -> None:
        pass

    def interrupted_event(self, interrupt_time: dt.datetime, status: str) -> None:
        pass

    def failed_event(self, fail_time: dt.datetime, fail_trace: list[str]) -> None:
        pass

    def resource_event(self, filename: str) -> None:
        pass

    def artifact_event(
        self,
        name: str,
        filename: str,
        metadata: dict | None = None,
        content_type: str | None = None,
    ) -> None:
        pass

    def log_metrics(self, metrics_by_name: Metrics, info: Info) -> None:
        pass

    def sources_event(self, sources: list) -> None:
        """sem's addition: ``[[name, md5], ...]`` of model-folder modules first imported while
        the run was going (inside ``main``), reported before the run's last event."""

    def hand_over_output_file(self) -> Path | None:
        """sem's addition: the file this observer keeps the job's output in, to be appended to
        by the capture itself (a separate process: output written right before a crash is kept).
        An observer that returns a path ignores ``captured_out`` from then on. None: it wants
        ``captured_out`` as sacred's observers do."""
        return None

    def join(self) -> None:
        """Wait for pending writes (called once after the run's last event)."""
