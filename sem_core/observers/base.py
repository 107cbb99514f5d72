"""The observer interface: sacred's ``RunObserver`` events, all no-ops.

Signatures match ``sacred.observers.base.RunObserver`` so that a sacred observer can be
attached to a sem run unchanged (``sources_event`` is sem's one addition). Two differences,
both to keep long runs linear:

- ``heartbeat_event(captured_out=...)`` receives the output written *since the last
  heartbeat*, not all of it again;
- ``log_metrics(metrics_by_name, info)`` receives only the points logged since the last
  flush (as sacred does).
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


