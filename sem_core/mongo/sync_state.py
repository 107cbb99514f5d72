"""What the last sync of a whole run store left in a database, remembered next to the store, so
that syncing an unchanged store again asks the database one cheap question instead of reading
every run's fingerprint back (the fingerprints of 10,000 runs are a query the database has to
walk; its run count is collection metadata).

One file per store and database, ``<store>/_sync/<hash of the database's name>.json`` (a ``_``
folder of the store, as ``_sources``), holding the database's name (``MongoSettings.display``:
no password), the run count of its ``runs`` collection right after that sync, and
``{global_id: fingerprint}`` of every run the sync left in the database. Written atomically after
a sync; a missing or unreadable file is the same as none (the sync asks the database, as without
it).

A run counts as unchanged without asking when its fingerprint (one stat per file, so an edited
record is always seen) is the remembered one AND the database's run count is the remembered
one: a run deleted from the database (Omniboard, a script, a dropped database) or added by
anyone changes the count, and then every run is checked against the database. What the count
cannot tell: a run deleted while another was added between two syncs, or a run's document
overwritten from another copy of the store; ``sem sync --verify`` checks every run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sem_core import records

STATE_VERSION = 1
STATE_DIR = "_sync"


@dataclass(frozen=True)
class StoreSyncState:
    """What one sync of a store left in the database named ``database``."""

    database: str
    runs_count: int
    fingerprints: dict[str, str]  # global_id -> fingerprint the database holds


def state_path(store: Path, database: str) -> Path:
    key = hashlib.sha1(database.encode("utf-8")).hexdigest()[:16]
    return Path(store) / STATE_DIR / f"{key}.json"


def read_state(store: Path, database: str) -> StoreSyncState | None:
    """The remembered state of ``store`` in ``database``, or None (none, unreadable, another version)."""
    try:
        data = json.loads(state_path(store, database).read_text(encoding="utf-8"))
        if data.get("version") != STATE_VERSION or data.get("database") != database:
            return None
        return StoreSyncState(database, int(data["runs_count"]), dict(data["fingerprints"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_state(store: Path, state: StoreSyncState) -> None:
    """Remember ``state`` (atomically: a reader sees the old file or the new one)."""
    data: dict[str, Any] = {
        "version": STATE_VERSION,
        "database": state.database,
        "runs_count": state.runs_count,
        "fingerprints": state.fingerprints,
    }
    path = state_path(store, state.database)
    path.parent.mkdir(exist_ok=True)
    records.atomic_write_text(path, json.dumps(data, separators=(",", ":")))


def forget_state(store: Path, database: str) -> None:
    try:
        state_path(store, database).unlink()
    except FileNotFoundError:
        pass


def runs_count(db: Any) -> int:
    """The number of documents in ``runs``, from the collection's metadata (no scan)."""
    return int(db.runs.estimated_document_count())
