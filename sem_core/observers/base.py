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

from pathlib import Path
from typing import Optional


class RunObserver:
    """Base class of every observer: each event does nothing unless overridden."""

    priority = 0
    # the run's record of truth: its final event is written with signals held back
    holds_the_record = False

    def queued_event(self, ex_info, command, host_info, queue_time, config, meta_info, _id):
        pass

    def started_event(self, ex_info, command, host_info, start_time, config, meta_info, _id):
        pass

    def heartbeat_event(self, info, captured_out, beat_time, result):
        pass

    def completed_event(self, stop_time, result):
        pass

    def interrupted_event(self, interrupt_time, status):
        pass

    def failed_event(self, fail_time, fail_trace):
        pass

    def resource_event(self, filename):
        pass

    def artifact_event(self, name, filename, metadata: Optional[dict] = None, content_type: Optional[str] = None):
        pass

    def log_metrics(self, metrics_by_name: dict, info: dict):
        pass

    def sources_event(self, sources: list):
        """sem's addition: ``[[name, md5], ...]`` of model-folder modules first imported while
        the run was going (inside ``main``), reported before the run's last event."""
        pass

    def hand_over_output_file(self) -> Optional[Path]:
        """sem's addition: the file this observer keeps the job's output in, to be appended to
        by the capture itself (a separate process: output written right before a crash is kept).
        An observer that returns a path ignores ``captured_out`` from then on. None: it wants
        ``captured_out`` as sacred's observers do."""
        return None

    def join(self):
        """Wait for pending writes (called once after the run's last event)."""
        pass


