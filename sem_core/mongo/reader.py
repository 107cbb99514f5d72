"""Runs read back from MongoDB into ``sem_core.records.RunRecord`` (the form file runs have).

Works for every run in sacred's schema: runs sem uploaded and runs written by sacred's own
MongoObserver. Metrics and captured_out are fetched on first use; a metric or captured_out
that sem moved to GridFS at the 16 MB limit comes back in full.
"""

from __future__ import annotations

import atexit
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sem_core.errors import SemError
from sem_core.mongo import connection, documents
from sem_core.mongo.connection import REDACTED
from sem_core.records import RunRecord


class MongoRunRecord(RunRecord):
    """A ``RunRecord`` whose metrics and captured_out are loaded from the database lazily."""

    def __init__(self, location: str, run: dict, config: dict, db: Any, doc: dict):
        super().__init__(location=location, run=run, config=config)
        self._db = db
        self._doc = doc

    @property
    def mongo_id(self) -> Any:
        return self._doc.get("_id")

    @property
    def metrics(self) -> dict:
        if self._metrics is None:
            self._metrics = read_metrics(self._db, self._doc)
        return self._metrics

    @property
    def captured_out(self) -> str:
        file_id = (self._doc.get("sem") or {}).get("captured_out_file_id")
        if file_id is not None:
            return _read_blob(self._db, file_id).decode("utf-8", "surrogateescape")
        return self._doc.get("captured_out") or ""

    def artifact_bytes(self, name: str) -> bytes:
        for entry in self._doc.get("artifacts") or []:
            if entry.get("name") == name:
                return _read_blob(self._db, entry["file_id"])
        raise KeyError(f"run {self.global_id} (_id {self.mongo_id}) has no artifact {name!r}")


def _read_blob(db: Any, file_id: Any) -> bytes:
    import gridfs

    return gridfs.GridFS(db).get(file_id).read()


def read_metrics(db: Any, doc: dict) -> dict:
    """sacred-format ``{name: {steps, values, timestamps}}`` of a run document, in full."""
    links = (doc.get("info") or {}).get("metrics") or []
    order = [link.get("name") for link in links]
    out: dict = {}
    for m in db.metrics.find({"run_id": doc["_id"]}):
        full = m.get("sem_full_data")
        if full and full.get("file_id") is not None:
            series = documents.decode_full_series(_read_blob(db, full["file_id"]))
        else:
            series = {
                "steps": m.get("steps", []),
                "values": m.get("values", []),
                "timestamps": [documents.record_time(t) for t in m.get("timestamps", [])],
            }
        out[m["name"]] = series
    # the order the run logged them in (info.metrics), then any others
    ordered = {name: out[name] for name in order if name in out}
    ordered.update({k: v for k, v in out.items() if k not in ordered})
    return ordered


def record_of(db: Any, doc: dict, display_url: str) -> MongoRunRecord:
    return MongoRunRecord(
        location=f"{display_url}#runs/{doc.get('_id')}",
        run=documents.run_json_of(doc),
        config=dict(doc.get("config") or {}),
        db=db,
        doc=doc,
    )


# display URL (password redacted) -> real URL, for URLs used in this process: a record's
# ``location`` names its database without the password, and ``read_run(location)`` finds it again.
_known_urls: dict[str, str] = {}
_databases: dict[str, Any] = {}


@atexit.register
def _close_clients() -> None:
    """Close the cached clients when the process ends (pymongo warns about unclosed ones)."""
    while _databases:
        _url, db = _databases.popitem()
        db.client.close()


def _database(source: str | Any) -> tuple[Any, str]:
    """(pymongo Database, display URL) of a mongodb:// URL or a Database."""
    if not isinstance(source, str):
        return source, f"mongodb:///{source.name}"
    url = source
    if REDACTED in url and url in _known_urls:
        url = _known_urls[url]
    elif REDACTED in url:
        configured = connection.resolve_settings(experiment_dir=Path.cwd())
        if configured is not None and configured.display == url:
            url = configured.url
        else:
            raise SemError(
                f"{url}: the password of this MongoDB URL was redacted; give the full URL via "
                f"{connection.ENV_VAR} or ~/.config/sem/mongo.yaml"
            )
    settings = connection.settings_from_url(url, "MongoDB URL")
    _known_urls[settings.display] = settings.url
    if settings.url not in _databases:
        _databases[settings.url] = connection.connect(settings)  # a short timeout: an unreachable server fails fast
    return _databases[settings.url], settings.display


def iter_runs(source: str | Any, query: dict | None = None) -> Iterator[MongoRunRecord]:
    """Every run in the database ``source`` (mongodb:// URL or pymongo Database) matching
    ``query`` (a filter on the runs collection), by ``_id``."""
    db, display = _database(source)
    for doc in db.runs.find(query or {}, sort=[("_id", 1)]):
        yield record_of(db, doc, display)


def read_run(location: str | Any, global_id: str | None = None) -> MongoRunRecord | None:
    """One run: by ``RunRecord.location`` (``<url>#runs/<_id>``), or by ``global_id`` in ``location``'s
    database. None if there is no such run."""
    fragment = None
    if isinstance(location, str) and "#" in location:
        location, fragment = location.split("#", 1)
    db, display = _database(location)
    if global_id is not None:
        doc = db.runs.find_one({"config.global_id": global_id})
    elif fragment and fragment.startswith("runs/"):
        key = fragment[len("runs/") :]
        doc = db.runs.find_one({"_id": int(key) if key.isdigit() else key})
    else:
        raise ValueError(f"read_run: give a location ending in #runs/<_id> or a global_id (got {location!r})")
    return record_of(db, doc, display) if doc is not None else None


def experiment_dir_of_store(store: Path) -> Path | None:
    """The experiment folder around a run store (for its experiment_config.yaml), or None."""
    from sem_core.settings import EXPERIMENT_CONFIG_NAME

    store = Path(store).resolve()
    for folder in (store, *store.parents):
        if (folder / EXPERIMENT_CONFIG_NAME).is_file() or (folder / "models").is_dir():
            return folder
    return None


def synced_global_ids(store: Path) -> set[str]:
    """Runs of ``store`` that the configured database holds in their current state (same sync
    fingerprint); empty when no database is configured. Used by ``sem clean`` to know which runs
    have a copy outside the store. An unreachable database raises a ``SemError``: nothing is
    assumed to be copied."""
    import pymongo.errors

    from sem_core import records
    from sem_core.mongo import upload

    settings = connection.resolve_settings(experiment_dir=experiment_dir_of_store(store))
    if settings is None:
        return set()
    db = connection.connect(settings)
    try:
        _, summary = upload.plan_sync(db, list(records.iter_run_dirs(Path(store))))
    except pymongo.errors.PyMongoError as exc:
        raise SemError(
            f"MongoDB {settings.display} (from {settings.source}): {connection.describe_error(exc, settings)}; "
            "cannot tell which runs are synced"
        ) from None
    return {Path(d).name for d in summary.unchanged}
