"""Row claims in MongoDB: two people (or machines) who start the same sweep at the same time
with ``sem.skip_completed=true`` run each row once.

Before a job's run starts, its run lifecycle claims the row: an atomic insert of a document
whose ``_id`` is ``<model file>/<experiment_id>`` into the ``sem_claims`` collection, holding
the claimer's global_id, host, user and a heartbeat. The database refuses a second insert of
the same ``_id``, so of two jobs racing for one row exactly one wins. The loser looks at the
claim it lost to:

- held by a live run (a heartbeat within ``stale_after`` seconds): the row is skipped and
  reported as "running elsewhere (host, user)";
- held by a run that ended COMPLETED: the row is skipped as done (the premise of
  ``sem.skip_completed``); the claim stays as the row's marker, so a sweep that starts a
  little later does not run the row again;
- held by a run that ended otherwise (FAILED, INTERRUPTED, ...) or whose heartbeat is stale
  (its process died without a word): taken over, with an update conditional on the claim
  being unchanged since it was read, so that two takers cannot both win.

The winner refreshes the heartbeat from a thread while the run goes on and marks the claim
with the run's final status when it ends (QUEUED again when Slurm requeues the job).
Claims are used only with a database configured and ``sem.skip_completed=true``; a database
that cannot be reached does not stop a job (it runs unclaimed, with a warning).
"""

from __future__ import annotations

import datetime as dt
import getpass
import logging
import os
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sem_core.run_status import ACTIVE_STATUSES, RunStatus

log = logging.getLogger(__name__)

COLLECTION = "sem_claims"
# no heartbeat for this many heartbeat intervals (at least MIN_STALE_S) and a claim is stale,
# the rule `sem status` uses for a local run whose process is gone
STALE_INTERVALS = 10
MIN_STALE_S = 120.0


def claim_key(model: str, experiment_id: str) -> str:
    return f"{model}/{experiment_id}"


def stale_after_s(sem_cfg: Any) -> float:
    """``sem.claim_stale_after`` if set, else 10 heartbeat intervals and at least 120 s."""
    value = sem_cfg.get("claim_stale_after") if hasattr(sem_cfg, "get") else None
    if value is not None:
        return float(value)
    return max(MIN_STALE_S, STALE_INTERVALS * float(sem_cfg.get("heartbeat_interval", 10.0)))


def _now() -> dt.datetime:
    # naive UTC: what pymongo hands back for a stored datetime
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in a container: the uid still tells
        return str(os.getuid())


@dataclass(frozen=True)
class Elsewhere:
    """What a job returns instead of running its row: another run holds the row's claim.
    A plain value (it travels back from worker processes and Slurm by pickle)."""

    global_id: str
    host: str
    user: str
    status: str  # the claim's status: RUNNING, QUEUED, COMPLETED

    @property
    def note(self) -> str:
        if self.status == RunStatus.COMPLETED:
            return f"completed elsewhere as {self.global_id} ({self.host}, {self.user})"
        return f"running elsewhere ({self.host}, {self.user})"

    def __str__(self) -> str:
        return self.note


def holder_of(doc: dict) -> Elsewhere:
    return Elsewhere(str(doc.get("global_id")), str(doc.get("host")), str(doc.get("user")), str(doc.get("status")))


def judge(doc: dict, now: dt.datetime, stale_after: float) -> str:
    """What a claim held by someone else means for a job that wants its row: ``"live"``
    (skip), ``"done"`` (skip: completed) or ``"free"`` (take it over)."""
    status = doc.get("status")
    if status == RunStatus.COMPLETED:
        return "done"
    if status in ACTIVE_STATUSES:
        beat = doc.get("heartbeat")
        if isinstance(beat, dt.datetime):
            beat = (
                beat.replace(tzinfo=None)
                if beat.tzinfo is None
                else beat.astimezone(dt.timezone.utc).replace(tzinfo=None)
            )
            if (now - beat).total_seconds() <= stale_after:
                return "live"
    return "free"


class RowClaim:
    """The claim of one job's row, held by the job's run lifecycle (``sem_core.lifecycle``)."""

    def __init__(
        self,
        database: Any,
        model: str,
        experiment_id: str,
        global_id: str,
        heartbeat_interval: float,
        stale_after: float,
        display: str = "MongoDB",
    ) -> None:
        self._database_settings = database
        self.model = model
        self.experiment_id = experiment_id
        self.global_id = global_id
        self.heartbeat_interval = float(heartbeat_interval)
        self.stale_after = float(stale_after)
        self.display = display
        self.key = claim_key(model, experiment_id)
        self.held = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._collection = None

    def _claims(self) -> Any:
        if self._collection is None:
            from sem_core.mongo.connection import connect

            self._collection = connect(self._database_settings)[COLLECTION]
        return self._collection

    def _document(self, now: dt.datetime) -> dict:
        return {
            "model": self.model,
            "experiment_id": self.experiment_id,
            "global_id": self.global_id,
            "host": socket.gethostname(),
            "user": _user(),
            "pid": os.getpid(),
            "status": RunStatus.RUNNING,
            "claimed": now,
            "heartbeat": now,
            "heartbeat_interval": self.heartbeat_interval,
        }

    def take(self) -> Elsewhere | None:
        """Claim the row: None when this job holds it now (run the row), else who holds it."""
        import pymongo.errors

        try:
            return self._take()
        except pymongo.errors.PyMongoError as exc:
            from sem_core.mongo.connection import describe_error

            log.warning(
                "sem: could not claim row %s in %s (%s); running it unclaimed",
                self.key,
                self.display,
                describe_error(exc, self._database_settings),
            )
            return None

    def _take(self) -> Elsewhere | None:
        import pymongo.errors

        claims = self._claims()
        for _ in range(10):  # each pass either decides or lost a race that changed the claim
            now = _now()
            try:
                claims.insert_one({"_id": self.key, **self._document(now)})
                self._hold()
                return None
            except pymongo.errors.DuplicateKeyError:
                pass
            old = claims.find_one({"_id": self.key})
            if old is None:
                continue  # released in between: insert again
            if old.get("global_id") == self.global_id:
                # this run's own claim (a Slurm requeue starts the same global_id again)
                claims.update_one({"_id": self.key, "global_id": self.global_id}, {"$set": self._document(now)})
                self._hold()
                return None
            verdict = judge(old, now, self.stale_after)
            if verdict != "free":
                return holder_of(old)
            # taken over only if nobody changed the claim since it was read
            taken = claims.find_one_and_update(
                {
                    "_id": self.key,
                    "global_id": old.get("global_id"),
                    "heartbeat": old.get("heartbeat"),
                    "status": old.get("status"),
                },
                {
                    "$set": {
                        **self._document(now),
                        "took_over": {k: old.get(k) for k in ("global_id", "host", "user", "status", "heartbeat")},
                    }
                },
            )
            if taken is not None:
                self._hold()
                return None
        old = claims.find_one({"_id": self.key}) or {}
        return holder_of(old)

    def _hold(self) -> None:
        self.held = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"sem-claim-{self.global_id}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_interval):
            try:
                self._claims().update_one(
                    {"_id": self.key, "global_id": self.global_id}, {"$set": {"heartbeat": _now()}}
                )
            except Exception as exc:  # noqa: BLE001 - the next beat retries; the run goes on
                log.debug("sem: claim heartbeat of %s failed: %s", self.key, exc)

    def release(self, status: str | None) -> None:
        """Mark the claim with the run's final ``status`` (None: the run never started: the
        claim is removed, so that the row is free at once)."""
        if not self.held:
            return
        self.held = False
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        try:
            if status is None:
                self._claims().delete_one({"_id": self.key, "global_id": self.global_id})
            else:
                self._claims().update_one(
                    {"_id": self.key, "global_id": self.global_id},
                    {"$set": {"status": status, "heartbeat": _now(), "ended": _now()}},
                )
        except Exception as exc:  # noqa: BLE001 - a stale claim is taken over later anyway
            log.warning("sem: could not mark the claim of row %s %s in %s: %s", self.key, status, self.display, exc)


def live_claims(settings: Any, model: str, experiment_ids: Iterable[str], stale_after: float) -> dict[str, Elsewhere]:
    """experiment_id -> holder, for the rows of ``model`` whose claim a live run holds (for the
    sweep's plan: those rows are reported as running elsewhere before any job starts)."""
    from sem_core.mongo.connection import connect

    keys = [claim_key(model, e) for e in experiment_ids]
    now = _now()
    out = {}
    for doc in connect(settings)[COLLECTION].find({"_id": {"$in": keys}}):
        if judge(doc, now, stale_after) == "live":
            out[str(doc.get("experiment_id"))] = holder_of(doc)
    return out
