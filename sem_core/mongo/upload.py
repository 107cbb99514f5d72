"""Upload run folders (sem's file layout) into MongoDB in sacred's schema, in bulk.

``sync_runs(db, run_dirs)`` is the one code path behind ``sem sync``, the live observer and the
sync at the end of a sweep:

1. one stat per file gives each run's fingerprint (``documents.fingerprint``); one range query on
   ``config.global_id`` gives the fingerprints in the database: unchanged runs cost no file
   read and no further round trip (a no-op re-sync of 1,000 runs is one query);
2. runs to upload go in batches: GridFS blobs (sources, artifacts, offloaded metrics and
   stdout) that the database lacks by md5 first; then new runs claim their ``_id`` and
   ``global_id`` with their run documents (fingerprint unset), then their metric documents,
   then the fingerprint: a sync cut short leaves the run "changed", so the next one repairs it;
3. new runs get integer ``_id`` s after the largest one (sacred's rule); a collision with a
   concurrent writer is retried, and a concurrent upload of the same run (unique index on
   ``config.global_id``) turns into an update: no duplicate runs, whatever the concurrency;
4. updates replace metric documents in place (unique index on ``run_id`` + ``name``, sacred's
   own invariant), then ``$set`` the fields sem writes, so what other tools added to a run
   document (Omniboard's tags and notes) survives.

Nothing in the database is deleted except the metric documents of names a run no longer has.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import mimetypes
import os
import queue
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from sem_core import records
from sem_core.mongo import documents, sync_state
from sem_core.sources import file_md5

UNSYNCED_MARKER = ".sem-unsynced"
CHUNK_SIZE = 261120  # GridFS default (255 KiB), as pymongo writes
FLUSH_BYTES = 8 * 1024 * 1024
BATCH_RUNS = 100
BATCH_BYTES = 64 * 1024 * 1024
ID_RETRIES = 20
REMOTE_IDS_LISTED = 1000  # up to this many runs are asked for by global_id, more by range


class SyncError(Exception):
    """A run that cannot be uploaded as it is (the message names the run folder and the fix)."""


@dataclass
class SyncSummary:
    uploaded: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (run folder, reason)
    run_ids: dict[str, Any] = field(default_factory=dict)  # run folder -> _id (uploaded or updated)
    # run folder -> {metric name: metric document _id} as the database now holds them
    metric_ids: dict[str, dict[str, Any]] = field(default_factory=dict)
    # run folder -> its fingerprint when this sync read it
    fingerprints: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "uploaded": len(self.uploaded),
            "updated": len(self.updated),
            "unchanged": len(self.unchanged),
            "failed": len(self.failed),
        }

    def merge(self, other: SyncSummary) -> None:
        self.uploaded += other.uploaded
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.failed += other.failed
        self.run_ids.update(other.run_ids)
        self.metric_ids.update(other.metric_ids)
        self.fingerprints.update(other.fingerprints)


@dataclass
class LocalRun:
    run_dir: Path
    global_id: str
    fingerprint: str


@dataclass
class _Blob:
    md5: str
    filename: str
    path: Path | None = None
    data: bytes | None = None
    content_type: str | None = None
    metadata: dict | None = None
    shared: bool = False  # a source file: the same content serves many runs

    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        assert self.path is not None  # a blob is its data or a file
        return os.stat(self.path).st_size


@dataclass
class PreparedRun:
    """A run folder read into its documents (``prepare_run``), to be written by ``send_prepared``."""

    local: LocalRun
    existing_id: int | None
    run_id: int | None = None
    doc: dict = field(default_factory=dict)
    metric_docs: list = field(default_factory=list)
    blobs: list = field(default_factory=list)
    # callbacks filling GridFS ids into the documents once blobs are stored
    fills: list = field(default_factory=list)
    # {name: _id} of the run's metric documents in the database, when the caller knows them
    known_metrics: dict[str, Any] | None = None
    # the run document this process last wrote for the run (the live observer's start): an
    # update then sets only the fields that differ from it, not the whole document again
    sent_doc: dict | None = None


# -- local side --------------------------------------------------------------------------
def local_fingerprint(run_dir: Path) -> str:
    """Fingerprint of a run folder from one stat per file (dotfiles, e.g. temp files, excluded)."""
    entries = []
    with os.scandir(run_dir) as it:
        for e in it:
            if e.name.startswith("."):
                continue
            st = e.stat()
            entries.append((e.name, st.st_size, st.st_mtime_ns))
    return documents.fingerprint(entries)


def scan(run_dirs: Iterable[Path]) -> list[LocalRun]:
    runs = []
    for d in run_dirs:
        path = Path(d)
        runs.append(LocalRun(path, path.name, local_fingerprint(path)))
    return runs


def mark_unsynced(run_dir: Path, reason: str) -> None:
    """Leave a marker in the run folder: this run is not in the database yet (``sem sync`` uploads it)."""
    from sem_core.mongo.connection import redact_uri

    records.atomic_write_text(Path(run_dir) / UNSYNCED_MARKER, redact_uri(reason).rstrip("\n") + "\n")


def _clear_unsynced(run_dir: Path) -> None:
    try:
        os.unlink(Path(run_dir) / UNSYNCED_MARKER)
    except FileNotFoundError:
        pass


# -- database side -----------------------------------------------------------------------
@dataclass
class SyncTarget:
    """A database the runs are synced to, and what syncing to it has learnt: that sem's indexes
    exist (created once), and the GridFS id of each file content stored (by md5: the jobs of a
    sweep share their sources). Owned by whoever keeps the connection: one ``sem sync``, or the
    ``MongoClients`` of a job's process. ``sync_runs`` also takes a bare database (nothing learnt)."""

    db: Any
    indexed: bool = False
    blob_ids: dict[str, Any] = field(default_factory=dict)
    # the _id after the last run this target inserted: the next new run tries it without asking
    # the database for the largest _id (another writer having taken it is a duplicate-key retry)
    next_id: int | None = None


def sync_target(db: Any) -> SyncTarget:
    return db if isinstance(db, SyncTarget) else SyncTarget(db)


def ensure_indexes(target: SyncTarget) -> None:
    """The unique index that makes sync idempotent, and the lookups sync and readers use.
    Once per target."""
    import pymongo
    import pymongo.errors

    if target.indexed:
        return
    db = target.db
    try:
        db.runs.create_index(
            "config.global_id",
            unique=True,
            name="sem_global_id_unique",
            partialFilterExpression={"config.global_id": {"$type": "string"}},
        )
    except pymongo.errors.OperationFailure as exc:
        if exc.code in (11000, 11001):
            raise SyncError(
                f"database {db.name!r}: collection 'runs' holds several runs with the same config.global_id "
                f"({exc.details.get('errmsg', exc) if exc.details else exc}); remove the duplicates "
                "(keep the lowest _id), then sync again"
            ) from None
        if exc.code not in (85, 86):  # an equivalent index under another name/options exists
            raise
    try:
        # one metric document per run and name, as sacred's upserts keep it: concurrent syncs
        # replace documents in place and can never duplicate them
        db.metrics.create_index(
            [("run_id", pymongo.ASCENDING), ("name", pymongo.ASCENDING)], unique=True, name="sem_run_metric_unique"
        )
    except pymongo.errors.OperationFailure as exc:
        if exc.code in (11000, 11001):
            raise SyncError(
                f"database {db.name!r}: collection 'metrics' holds several documents for the same run and "
                "metric name; remove the duplicates, then sync again"
            ) from None
        if exc.code not in (85, 86):
            raise
    db["fs.files"].create_index("md5")
    db["fs.files"].create_index([("filename", pymongo.ASCENDING), ("uploadDate", pymongo.ASCENDING)])
    db["fs.chunks"].create_index([("files_id", pymongo.ASCENDING), ("n", pymongo.ASCENDING)], unique=True)
    target.indexed = True


def remote_state(db: Any, global_ids: Sequence[str]) -> dict[str, tuple[Any, str | None]]:
    """``{global_id: (_id, fingerprint)}`` of the given runs already in the database.

    One query over the unique index: a range for many runs (global ids sort by start time, so a
    store's runs form a narrow range; runs of others inside it are filtered out here), the ids
    themselves for a few (a store's new runs and an old one edited: not the whole range)."""
    if not global_ids:
        return {}
    wanted = set(global_ids)
    if len(wanted) <= REMOTE_IDS_LISTED:
        query: dict = {"config.global_id": {"$in": sorted(wanted)}}
    else:
        query = {"config.global_id": {"$gte": min(wanted), "$lte": max(wanted)}}
    cursor = db.runs.find(query, {"_id": 1, "config.global_id": 1, "sem.fingerprint": 1})
    found = {}
    for doc in cursor:
        gid = (doc.get("config") or {}).get("global_id")
        if gid in wanted:
            found[gid] = (doc["_id"], (doc.get("sem") or {}).get("fingerprint"))
    return found


def _max_int_id(db: Any) -> int:
    doc = db.runs.find_one({"_id": {"$type": "number"}}, {"_id": 1}, sort=[("_id", -1)])
    # a run in sem clean's bin keeps its _id for its restore (sem_core.mongo.bin)
    binned = db["sem_bin.runs"].find_one({"run_id": {"$type": "number"}}, {"run_id": 1}, sort=[("run_id", -1)])
    return max(int(doc["_id"]) if doc else 0, int(binned["run_id"]) if binned else 0)


# client-level bulkWrite (one round trip across collections): MongoDB 8.0 (wire version 25)
CLIENT_BULK_WRITE_WIRE_VERSION = 25
# up to this many writes go in one bulkWrite (a run's end: its files, metrics and run document);
# more (a sync's batch of many runs) go per collection: a round trip or two saved is nothing
# there, and a server may spend more per document on bulkWrite (SecantusDB does)
ONE_COMMAND_MAX_WRITES = 64


def _client_bulk_write_available(client: Any) -> bool:
    """Whether ``client`` can send writes to several collections in one ``bulkWrite`` command:
    pymongo 4.9+ and every server it knows of MongoDB 8.0+ (unknown before it first connected)."""
    # on the class: before 4.9 any attribute of a MongoClient is a database of that name
    if not callable(getattr(type(client), "bulk_write", None)):
        return False
    versions = [sd.max_wire_version for sd in client.topology_description.server_descriptions().values()]
    return bool(versions) and all(v is not None and v >= CLIENT_BULK_WRITE_WIRE_VERSION for v in versions)


class OrderedWrites:
    """Writes to several collections of one database, queued then executed in order in as few
    round trips as the server allows: one client-level ``bulkWrite`` (MongoDB 8.0+, up to
    ``ONE_COMMAND_MAX_WRITES``), else one bulk write per run of consecutive writes to one
    collection. Either way a write runs only once every write before it succeeded; a failure
    raises ``BulkWriteError`` whose ``writeErrors`` ``index`` counts from the first write queued
    since the last ``execute``."""

    def __init__(self, db: Any, one_command: bool | None = None) -> None:
        self.db = db
        # None: one bulkWrite when the client and server can and the writes are few (False: per collection)
        self.one_command = one_command
        self._queued: list[tuple[str, type, dict]] = []  # (collection, pymongo operation class, its arguments)

    def add(self, collection: str, operation: type, **arguments: Any) -> None:
        self._queued.append((collection, operation, arguments))

    def __len__(self) -> int:
        return len(self._queued)

    def execute(self) -> None:
        import pymongo.errors

        queued, self._queued = self._queued, []
        if not queued:
            return
        client = self.db.client
        one_command = self.one_command
        if one_command is None:
            one_command = len(queued) <= ONE_COMMAND_MAX_WRITES and _client_bulk_write_available(client)
        if one_command:
            ops = [op(**args, namespace=f"{self.db.name}.{coll}") for coll, op, args in queued]
            try:
                client.bulk_write(ops, ordered=True)
            except pymongo.errors.ClientBulkWriteException as exc:
                if exc.error is not None or not exc.write_errors:
                    raise
                errors = [dict(cast(dict, e), index=cast(dict, e)["idx"]) for e in exc.write_errors]
                raise pymongo.errors.BulkWriteError({"writeErrors": errors}) from None
            return
        start = 0
        while start < len(queued):
            coll = queued[start][0]
            end = start
            while end < len(queued) and queued[end][0] == coll:
                end += 1
            try:
                self.db[coll].bulk_write([op(**args) for _, op, args in queued[start:end]], ordered=True)
            except pymongo.errors.BulkWriteError as exc:
                errors = [dict(e, index=e["index"] + start) for e in exc.details.get("writeErrors", [])]
                raise pymongo.errors.BulkWriteError(dict(exc.details, writeErrors=errors)) from None
            start = end


class _GridFSWriter:
    """Queues GridFS files as writes: every chunk first, then the files documents (``flush``;
    the GridFS spec's order, so a files document never points at missing chunks, and the
    writes of many files are two bulk writes). Executes the queue whenever ``FLUSH_BYTES`` of
    chunks wait, so a large file is never held in memory whole."""

    def __init__(self, writes: OrderedWrites) -> None:
        self.writes = writes
        self._files: list[dict] = []
        self._pending = 0

    def put(self, blob: _Blob, file_id: Any) -> None:
        from bson import Binary
        from pymongo import InsertOne

        length = 0
        for n, piece in enumerate(_pieces(blob)):
            chunk = {"_id": _oid(), "files_id": file_id, "n": n, "data": Binary(piece)}
            self.writes.add("fs.chunks", InsertOne, document=chunk)
            length += len(piece)
            self._pending += len(piece)
            if self._pending >= FLUSH_BYTES:
                self.writes.execute()
                self._pending = 0
        doc = {
            "_id": file_id,
            "length": length,
            "chunkSize": CHUNK_SIZE,
            "uploadDate": dt.datetime.now(dt.timezone.utc),
            "filename": blob.filename,
            "md5": blob.md5,
        }
        if blob.content_type:
            doc["contentType"] = blob.content_type
        if blob.metadata is not None:
            doc["metadata"] = blob.metadata
        self._files.append(doc)

    def flush(self) -> None:
        """Queue the files documents of the files put so far (after all their chunks)."""
        from pymongo import InsertOne

        for doc in self._files:
            self.writes.add("fs.files", InsertOne, document=doc)
        self._files = []


def _pieces(blob: _Blob) -> Iterator[bytes]:
    if blob.data is not None:
        for i in range(0, len(blob.data), CHUNK_SIZE):
            yield blob.data[i : i + CHUNK_SIZE]
        return
    assert blob.path is not None  # a blob is its data or a file
    with open(blob.path, "rb") as fh:
        while True:
            piece = fh.read(CHUNK_SIZE)
            if not piece:
                return
            yield piece


def _oid() -> Any:
    from bson import ObjectId

    return ObjectId()


# -- preparing one run -------------------------------------------------------------------
def _read_record(read: Callable[..., Any], *args: Any) -> Any:
    try:
        return read(*args)
    except FileNotFoundError as exc:
        raise SyncError(f"{exc.filename}: missing") from None
    except records.CorruptRecord as exc:
        raise SyncError(f"{exc}; fix or remove the file, then sync again") from None


def _prepare(local: LocalRun, existing_id: int | None, origin: str, secrets: tuple) -> PreparedRun:
    """Read a run folder and build its documents; GridFS ids and the run's _id are filled later."""
    run_json, config, info, metrics, captured_out = _read_run_folder(local)
    captured_out = documents.scrub(captured_out, secrets)
    p = PreparedRun(local=local, existing_id=existing_id)
    sync: dict = {
        "fingerprint": local.fingerprint,
        "version": documents.SYNC_VERSION,
        "synced_at": dt.datetime.now(dt.timezone.utc),
        "origin": origin + ":" + str(local.run_dir),
    }
    source_ids = _add_sources(p, run_json)
    artifact_ids = _add_artifacts(p, run_json)
    offloaded: list = []
    metric_links = _add_metrics(p, metrics, offloaded)
    shown = _add_captured_out(p, captured_out, sync, offloaded)
    if offloaded:
        sync["offloaded"] = offloaded
    p.doc = documents.run_document(
        documents.scrub(run_json, secrets),
        documents.scrub(config, secrets),
        documents.scrub(info, secrets),
        shown,
        source_ids,
        artifact_ids,
        metric_links,
        sync,
    )
    return p


def _read_run_folder(local: LocalRun) -> tuple[dict, dict, dict, dict, str]:
    """run.json, config.json (its global_id checked against the folder's name), info.json,
    the metrics and cout.txt of a run folder."""
    run_dir = local.run_dir
    run_json = _read_record(records.read_object, run_dir / records.RUN_FILE)
    config = _read_record(records.read_object, run_dir / records.CONFIG_FILE, {})
    gid = config.get("global_id")
    if gid is None:
        config = dict(config, global_id=local.global_id)
    elif gid != local.global_id:
        raise SyncError(
            f"{run_dir}: config.json says global_id {gid!r} but the folder is named {local.global_id!r}; "
            "a run folder's name is its global_id: rename the folder back"
        )
    info = _read_record(records.read_object, run_dir / records.INFO_FILE, {})
    metrics = _read_record(records.read_metrics, run_dir)
    cout_path = run_dir / records.COUT_FILE
    captured_out = cout_path.read_text(encoding="utf-8", errors="replace") if cout_path.exists() else ""
    return run_json, config, info, metrics, captured_out


def _add_sources(p: PreparedRun, run_json: dict) -> list:
    """``[name, GridFS id]`` per source file: the content-addressed copies in <store>/_sources,
    each stored in GridFS once per content."""
    run_dir = p.local.run_dir
    store = run_dir.parent
    experiment = run_json.get("experiment") or {}
    base_dir = str(experiment.get("base_dir") or store)
    source_ids: list = []
    for entry in experiment.get("sources") or []:
        name, stored = entry[0], entry[1]
        path = store / str(stored)
        if not path.exists():
            raise SyncError(f"{run_dir}: source {name!r} is missing from the store ({path})")
        md5 = documents.md5_of_stored_name(str(stored)) or file_md5(path)
        source_ids.append([name, None])
        p.blobs.append(_Blob(md5=md5, filename=os.path.join(base_dir, name), path=path, shared=True))
        p.fills.append(("source", len(source_ids) - 1, md5))
    return source_ids


def _add_artifacts(p: PreparedRun, run_json: dict) -> list:
    """``{name, file_id}`` per artifact listed in run.json; each file goes to GridFS."""
    run_dir = p.local.run_dir
    artifact_ids: list = []
    for name in run_json.get("artifacts") or []:
        path = run_dir / name
        if not path.exists():
            raise SyncError(f"{run_dir}: artifact {name!r} listed in run.json is missing ({path})")
        md5 = file_md5(path)
        content_type, _ = mimetypes.guess_type(name)
        artifact_ids.append({"name": name, "file_id": None})
        p.blobs.append(_Blob(md5=md5, filename="", path=path, content_type=content_type))
        p.fills.append(("artifact", len(artifact_ids) - 1, md5))
    return artifact_ids


def _add_metrics(p: PreparedRun, metrics: dict, offloaded: list) -> list:
    """One metric document per metric (``{id, name}`` links returned); a metric too long for a
    document keeps evenly spaced points there and every point in a GridFS file."""
    metric_links: list = []
    for name, series in metrics.items():
        oid = _oid()
        doc, thinned = documents.bounded_metric_document(0, name, series, oid)
        if thinned:
            data = documents.encode_full_series(series)
            md5 = hashlib.md5(data).hexdigest()
            n = len(series.get("values", []))
            doc["sem_full_data"] = {
                "file_id": None,
                "md5": md5,
                "points": n,
                "points_in_document": len(doc["values"]),
                "encoding": documents.FULL_METRIC_ENCODING,
                "note": "this document holds evenly spaced points; every point is in the GridFS file file_id",
            }
            p.blobs.append(
                _Blob(
                    md5=md5,
                    filename="",
                    data=data,
                    content_type="application/gzip",
                    metadata={"sem": "full metric", "name": name, "points": n},
                )
            )
            p.fills.append(("metric", len(p.metric_docs), md5))
            offloaded.append({"what": f"metric {name}", "md5": md5})
        p.metric_docs.append(doc)
        metric_links.append({"id": str(oid), "name": name})
    return metric_links


def _add_captured_out(p: PreparedRun, captured_out: str, sync: dict, offloaded: list) -> str:
    """The captured output the run document shows: all of it, or its head and tail when it is
    too long for a document (the full text then goes to a GridFS file)."""
    shown, cut = documents.bounded_text(captured_out)
    if cut:
        data = captured_out.encode("utf-8", "surrogateescape")
        total_bytes = len(data)
        md5 = hashlib.md5(data).hexdigest()
        p.blobs.append(
            _Blob(
                md5=md5,
                filename="",
                data=data,
                content_type="text/plain",
                metadata={"sem": "full captured_out", "bytes": total_bytes},
            )
        )
        p.fills.append(("captured_out", total_bytes, md5))
        sync["captured_out_bytes"] = total_bytes
        offloaded.append({"what": "captured_out", "md5": md5})
    return shown


def _assign_id(p: PreparedRun, run_id: int) -> None:
    p.run_id = run_id
    for m in p.metric_docs:
        m["run_id"] = run_id
    for b, fill in zip(p.blobs, p.fills):
        kind, index, _ = fill
        if kind == "artifact":
            b.filename = documents.artifact_filename(run_id, p.doc["artifacts"][index]["name"])
        elif kind == "metric":
            b.filename = f"metrics://runs/{run_id}/{p.metric_docs[index]['name']}.json.gz"
        elif kind == "captured_out":
            b.filename = f"captured_out://runs/{run_id}"


def _fill_ids(p: PreparedRun, ids_by_md5: dict) -> None:
    doc = p.doc
    for blob, (kind, index, md5) in zip(p.blobs, p.fills):
        file_id = ids_by_md5[md5]
        if kind == "source":
            doc["experiment"]["sources"][index][1] = file_id
        elif kind == "artifact":
            doc["artifacts"][index]["file_id"] = file_id
        elif kind == "metric":
            p.metric_docs[index]["sem_full_data"]["file_id"] = file_id
        elif kind == "captured_out":
            doc["sem"]["captured_out_file_id"] = file_id
            doc["captured_out"] += documents.truncation_note(index, file_id, blob.filename)
    for entry in doc["sem"].get("offloaded", []):
        entry["file_id"] = ids_by_md5[entry["md5"]]


# -- the sync ----------------------------------------------------------------------------
class Uploader:
    def __init__(self, target: SyncTarget, secrets: tuple = (), origin: str | None = None) -> None:
        self.target = target
        self.db = target.db
        self.secrets = tuple(s for s in secrets if s)
        self.origin = origin or socket.gethostname()
        # GridFS ids by md5, shared by the syncs to this target (a sweep's jobs share sources)
        self._ids_by_md5 = target.blob_ids

    def upload(
        self,
        todo: list[tuple[LocalRun, int | None]],
        summary: SyncSummary,
        progress: Callable[[int], None] | None = None,
        known_metrics: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Read the runs in batches and write each batch. With more than one batch, a thread
        writes a batch while the next one is read: the database's work and the reading overlap
        (two cores: a sync takes about the longer of the two, not their sum); at most one batch
        read ahead waits, so memory stays bounded. A failed write stops the reading and is raised
        here; so is an error of the reading, once the batch being written is done."""
        batches = self._read_batches(todo, summary, progress, known_metrics)
        if len(todo) <= BATCH_RUNS:
            for batch in batches:
                self._write_batch(batch, summary, progress)
            return
        ready: queue.SimpleQueue[list[PreparedRun] | None] = queue.SimpleQueue()
        in_memory = threading.Semaphore(2)  # batches read and not yet written: the one written, the next
        failed: list[BaseException] = []
        stop = threading.Event()

        def write_batches() -> None:
            while (batch := ready.get()) is not None:
                try:
                    if not (failed or stop.is_set()):  # else: dropped; the reading thread stops
                        self._write_batch(batch, summary, progress)
                except BaseException as exc:  # noqa: BLE001 - raised in the reading thread
                    failed.append(exc)
                finally:
                    in_memory.release()

        writer = threading.Thread(target=write_batches, name="sem-sync-writer", daemon=True)
        writer.start()
        try:
            while in_memory.acquire() and not failed:
                batch = next(batches, [])  # a batch is never empty
                if not batch:
                    break
                ready.put(batch)
        except BaseException:
            stop.set()  # the batch being written ends; none after it
            raise
        finally:
            ready.put(None)
            writer.join()
        if failed:
            raise failed[0]

    def _read_batches(
        self,
        todo: list[tuple[LocalRun, int | None]],
        summary: SyncSummary,
        progress: Callable[[int], None] | None,
        known_metrics: dict[str, dict[str, Any]] | None,
    ) -> Iterator[list[PreparedRun]]:
        """The runs of ``todo`` read, in batches of ``BATCH_RUNS`` runs or ``BATCH_BYTES``; a run
        that cannot be read is counted failed."""
        batch: list[PreparedRun] = []
        size = 0
        for local, existing_id in todo:
            try:
                p = _prepare(local, existing_id, self.origin, self.secrets)
            except (SyncError, OSError) as exc:
                summary.failed.append((str(local.run_dir), str(exc)))
                if progress:
                    progress(1)
                continue
            if known_metrics is not None and existing_id is not None:
                p.known_metrics = known_metrics.get(local.global_id)
            batch.append(p)
            size += sum(len(m["values"]) for m in p.metric_docs) * 40 + len(p.doc["captured_out"])
            if len(batch) >= BATCH_RUNS or size >= BATCH_BYTES:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    def _write_batch(
        self, batch: list[PreparedRun], summary: SyncSummary, progress: Callable[[int], None] | None
    ) -> None:
        import bson

        # _ids first: artifact filenames name the run
        next_id = None
        for p in batch:
            if p.existing_id is not None:
                _assign_id(p, p.existing_id)
            else:
                if next_id is None:
                    next_id = self.target.next_id or _max_int_id(self.db) + 1
                _assign_id(p, next_id)
                next_id += 1

        writes = OrderedWrites(self.db)
        queued = self._store_blobs([b for p in batch for b in p.blobs], writes)
        try:
            ready: list[PreparedRun] = []
            for p in batch:
                _fill_ids(p, self._ids_by_md5)
                size = len(bson.encode(p.doc))
                if size > documents.MAX_DOCUMENT_BYTES:
                    summary.failed.append(
                        (
                            str(p.local.run_dir),
                            f"its run document is {size / 2**20:.1f} MiB after moving captured_out and long "
                            "metrics to GridFS (MongoDB's limit is 16 MiB): info.json, config.json or the result "
                            "is too big; store large data with ex.add_artifact instead",
                        )
                    )
                    continue
                ready.append(p)
            new = [p for p in ready if p.existing_id is None]
            updates = [p for p in ready if p.existing_id is not None]
            if new:
                writes.execute()  # the files before the run documents naming them
                updates += self._insert_new(new, summary)
            # a run's end (the live observer): its files, metrics and run document in one round trip
            self._update_existing(updates, summary, writes)
            writes.execute()
        except BaseException:
            # files queued may not be stored: forget their ids (looked up or stored again next time)
            for md5 in queued:
                self._ids_by_md5.pop(md5, None)
            raise
        for p in ready:
            if str(p.local.run_dir) in summary.run_ids:
                _clear_unsynced(p.local.run_dir)
        if progress:
            progress(len(batch))

    def _store_blobs(self, blobs: list[_Blob], writes: OrderedWrites) -> list[str]:
        """Queue the files the database lacks onto ``writes``; returns the md5s of those queued.

        The database is asked which it holds for sources (shared by runs) and for files of at
        least one GridFS chunk; a run's own small file (a plot, a small model) is new content
        almost always: storing it costs the database less than the question would."""
        wanted = {b.md5 for b in blobs if b.shared or b.size() >= CHUNK_SIZE} - set(self._ids_by_md5)
        if wanted:
            for doc in self.db["fs.files"].find({"md5": {"$in": sorted(wanted)}}, {"md5": 1}):
                self._ids_by_md5.setdefault(doc["md5"], doc["_id"])
        writer = _GridFSWriter(writes)
        queued = []
        for b in blobs:
            if b.md5 not in self._ids_by_md5:
                file_id = _oid()
                writer.put(b, file_id)
                self._ids_by_md5[b.md5] = file_id
                queued.append(b.md5)
        writer.flush()
        return queued

    def _insert_new(self, new: list[PreparedRun], summary: SyncSummary) -> list[PreparedRun]:
        """Claim ``_id`` and ``global_id`` with the run documents (fingerprint unset, so a crash
        before the end leaves the run "changed" for the next sync), then the metrics, then the
        fingerprint. Returns the runs found already uploaded by a concurrent sync (to update)."""
        import pymongo.errors
        from pymongo import UpdateOne

        pending, inserted, taken = new, [], []
        for _ in range(ID_RETRIES):
            if not pending:
                break
            # a run with metric documents is complete only once they are in: its fingerprint
            # is set after them; a run without is complete with its run document
            docs = [
                dict(
                    p.doc,
                    _id=p.run_id,
                    sem=dict(p.doc["sem"], fingerprint=p.local.fingerprint if not p.metric_docs else None),
                )
                for p in pending
            ]
            try:
                self.db.runs.insert_many(docs, ordered=False)
                errors = {}
            except pymongo.errors.BulkWriteError as exc:
                errors = {e["index"]: e for e in exc.details.get("writeErrors", [])}
            retry = []
            for i, p in enumerate(pending):
                err = errors.get(i)
                if err is None:
                    inserted.append(p)
                elif err.get("code") == 11000 and "config.global_id" in (err.get("keyPattern") or {}):
                    taken.append(p)  # uploaded concurrently by another sync: update that document
                elif err.get("code") == 11000:
                    retry.append(p)  # another writer took this _id
                else:
                    summary.failed.append((str(p.local.run_dir), f"database refused the run: {err.get('errmsg')}"))
            if inserted:
                self.target.next_id = max(p.run_id for p in inserted if p.run_id is not None) + 1
            if retry:
                next_id = _max_int_id(self.db) + 1
                for p in retry:
                    # artifact filenames keep the id first tried: GridFS names are informational
                    _assign_id(p, next_id)
                    next_id += 1
            pending = retry
        for p in pending:
            summary.failed.append((str(p.local.run_dir), f"no free run _id after {ID_RETRIES} attempts"))

        metric_docs = [m for p in inserted for m in p.metric_docs]
        clashed: set = set()
        if metric_docs:
            try:
                self.db.metrics.insert_many(metric_docs, ordered=False)
            except pymongo.errors.BulkWriteError as exc:
                # metrics left under this _id by an earlier, interrupted writer: replace them instead
                for e in exc.details.get("writeErrors", []):
                    if e.get("code") != 11000:
                        raise
                    clashed.add(metric_docs[e["index"]]["run_id"])
        done = [p for p in inserted if p.run_id not in clashed]
        if any(p.metric_docs for p in done):
            self.db.runs.bulk_write(
                [
                    UpdateOne({"_id": p.run_id}, {"$set": {"sem.fingerprint": p.local.fingerprint}})
                    for p in done
                    if p.metric_docs
                ],
                ordered=False,
            )
        summary.uploaded += [str(p.local.run_dir) for p in done]
        summary.run_ids.update({str(p.local.run_dir): p.run_id for p in done})
        summary.metric_ids.update({str(p.local.run_dir): {m["name"]: m["_id"] for m in p.metric_docs} for p in done})

        again = [p for p in inserted if p.run_id in clashed]
        for p in again:
            p.existing_id = p.run_id
        if taken:
            found = remote_state(self.db, [p.local.global_id for p in taken])
            for p in taken:
                p.existing_id = found[p.local.global_id][0]
                _assign_id(p, p.existing_id)
        return again + taken

    def _update_existing(self, existing: list[PreparedRun], summary: SyncSummary, writes: OrderedWrites) -> None:
        """Replace each run's metric documents in place (unique per run and name: a concurrent
        sync of the same run can never leave duplicates or delete the other's), then ``$set``
        the run document; queued after what ``writes`` holds and executed with it."""
        import pymongo.errors
        from pymongo import UpdateOne

        if not existing:
            return
        ids = [p.existing_id for p in existing]
        previous: dict = {}
        if all(p.known_metrics is not None for p in existing):
            # the caller holds them (the live observer: from the run's upload at job start); if a
            # concurrent sync changed them, the replace below fails on _id and is redone after a read
            for p in existing:
                previous.update({(p.existing_id, name): oid for name, oid in (p.known_metrics or {}).items()})
        else:
            for m in self.db.metrics.find({"run_id": {"$in": ids}}, {"_id": 1, "run_id": 1, "name": 1}):
                previous[(m["run_id"], m["name"])] = m["_id"]
        first_metric_write = len(writes)
        # no metric document of these runs exists (a live run's end): inserting costs the database
        # half what upserting does; one inserted meanwhile by a concurrent sync is a duplicate key
        _queue_metric_writes(existing, previous, writes, insert=not previous)
        for p in existing:
            writes.add("runs", UpdateOne, filter={"_id": p.existing_id}, update={"$set": _fields_to_set(p)})
        try:
            writes.execute()
        except pymongo.errors.BulkWriteError as exc:
            # a concurrent sync created one of these metric documents first (its _id differs):
            # take its _ids and write the metrics and runs again (every write before it is done)
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") not in (66, 11000) or e.get("index", 0) < first_metric_write for e in errors):
                raise
            current = {
                (m["run_id"], m["name"]): m["_id"]
                for m in self.db.metrics.find({"run_id": {"$in": ids}}, {"_id": 1, "run_id": 1, "name": 1})
            }
            _queue_metric_writes(existing, current, writes, insert=False)
            for p in existing:
                writes.add("runs", UpdateOne, filter={"_id": p.existing_id}, update={"$set": _fields_to_set(p)})
            writes.execute()
        summary.updated += [str(p.local.run_dir) for p in existing]
        summary.run_ids.update({str(p.local.run_dir): p.existing_id for p in existing})
        summary.metric_ids.update(
            {str(p.local.run_dir): {m["name"]: m["_id"] for m in p.metric_docs} for p in existing}
        )


def _fields_to_set(p: PreparedRun) -> dict:
    """What an update ``$set`` s: the whole run document, or, when this process wrote the run
    before (``sent_doc``), the top-level fields that differ from what it wrote (a run's end
    leaves its config, host and package list as its start wrote them). Either way the document
    ends the same, and fields other tools added (Omniboard's tags and notes) stay."""
    if p.sent_doc is None:
        return p.doc
    changed = {key: value for key, value in p.doc.items() if key not in p.sent_doc or p.sent_doc[key] != value}
    # never empty ($set {} is an error): the sync fields change at every sync anyway
    return changed or {"sem": p.doc["sem"]}


def _queue_metric_writes(existing: list[PreparedRun], previous: dict, writes: OrderedWrites, insert: bool) -> None:
    """Queue the metric documents of runs already in the database: each takes the ``_id`` of
    ``previous`` ({(run _id, name): metric _id}) for its name and replaces it (upsert), or is
    inserted (``insert``: none exists); names a run no longer has are deleted. Sets each run
    document's ``info.metrics`` links."""
    from pymongo import DeleteMany, InsertOne, ReplaceOne

    for p in existing:
        names = []
        for m in p.metric_docs:
            m["run_id"] = p.existing_id
            m["_id"] = previous.get((p.existing_id, m["name"]), m["_id"])
            names.append(m["name"])
            if insert:
                writes.add("metrics", InsertOne, document=m)
            else:
                writes.add(
                    "metrics",
                    ReplaceOne,
                    filter={"run_id": p.existing_id, "name": m["name"]},
                    replacement=m,
                    upsert=True,
                )
        p.doc["info"]["metrics"] = [{"id": str(m["_id"]), "name": m["name"]} for m in p.metric_docs]
        if any(run_id == p.existing_id and name not in names for run_id, name in previous):
            writes.add("metrics", DeleteMany, filter={"run_id": p.existing_id, "name": {"$nin": names}})


def plan_sync(
    db: Any, run_dirs: Sequence[Path], known: dict | None = None, state_key: str | None = None
) -> tuple[list[tuple[LocalRun, int | None]], SyncSummary]:
    """What a sync would do: ``[(run, existing _id or None)]`` to upload, and the unchanged runs.

    ``known``: ``{global_id: (_id, fingerprint)}`` of the database state when the caller knows it
    (the live observer: nothing at job start, the _id it got at job end), saving the query. A
    wrong guess is still safe: the unique index turns a duplicate insert into an update.
    ``state_key``: the database's name in the stores' sync-state files (``sync_state``): runs
    they vouch for are unchanged without asking the database; None: ask for every run."""
    local = scan(run_dirs)
    summary = SyncSummary(fingerprints={str(r.run_dir): r.fingerprint for r in local})
    if known is None and state_key is not None:
        local = _not_vouched_for(db, local, state_key, summary)
    remote = known if known is not None else remote_state(db, [r.global_id for r in local])
    todo: list[tuple[LocalRun, int | None]] = []
    for r in local:
        found = remote.get(r.global_id)
        if found is None:
            todo.append((r, None))
        elif found[1] == r.fingerprint:
            summary.unchanged.append(str(r.run_dir))
        else:
            todo.append((r, found[0]))
    return todo, summary


def _not_vouched_for(db: Any, local: list[LocalRun], state_key: str, summary: SyncSummary) -> list[LocalRun]:
    """Count the runs the sync-state files of their stores vouch for as unchanged (same
    fingerprint, and the database's run count the remembered one); return the others."""
    # stores as strings: a Path per run costs more than the rest of a no-op sync
    stores = [os.path.dirname(r.run_dir) for r in local]
    states = {store: sync_state.read_state(Path(store), state_key) for store in set(stores)}
    if not any(states.values()):
        return local
    count = sync_state.runs_count(db)
    rest = []
    for r, store in zip(local, stores):
        state = states[store]
        if state is not None and state.runs_count == count and state.fingerprints.get(r.global_id) == r.fingerprint:
            summary.unchanged.append(str(r.run_dir))
        else:
            rest.append(r)
    return rest


def remember_sync(db: Any, summary: SyncSummary, state_key: str) -> None:
    """Write each store's sync-state file: the runs this sync left in the database (unchanged,
    uploaded, updated) with their fingerprints, and the database's run count now."""
    count = sync_state.runs_count(db)
    by_store: dict[str, dict[str, str]] = {os.path.dirname(d): {} for d in summary.fingerprints}
    for d in summary.unchanged + summary.uploaded + summary.updated:
        store, name = os.path.split(d)
        by_store[store][name] = summary.fingerprints[d]
    for store, fingerprints in by_store.items():
        try:
            sync_state.write_state(Path(store), sync_state.StoreSyncState(state_key, count, fingerprints))
        except OSError:
            # a store that cannot be written to is synced in full the next time
            sync_state.forget_state(Path(store), state_key)


def sync_runs(
    db: Any | SyncTarget,
    run_dirs: Sequence[Path],
    secrets: tuple = (),
    progress: Callable[[int], None] | None = None,
    dry_run: bool = False,
    known: dict | None = None,
    known_metrics: dict[str, dict[str, Any]] | None = None,
    state_key: str | None = None,
    verify: bool = False,
) -> SyncSummary:
    """Upload the runs missing from the database or changed since their last sync.
    ``SyncSummary.run_ids`` maps each uploaded or updated folder to its run ``_id``. ``db``: a
    pymongo Database, or a ``SyncTarget`` kept across syncs (indexes and stored files known).
    ``known_metrics``: ``{global_id: {name: _id}}`` of the metric documents of runs in the
    database, when the caller knows them (``SyncSummary.metric_ids`` of its last sync of them):
    saves the query for them; a wrong guess is caught by the database and read again.
    ``state_key``: given when ``run_dirs`` are whole stores (``sem sync``, a sweep's end): the
    database's name (``MongoSettings.display``) in the stores' sync-state files, which are
    trusted (unless ``verify``) and written after the sync."""
    target = sync_target(db)
    todo, summary = plan_sync(target.db, run_dirs, known, state_key=None if verify else state_key)
    if progress and summary.unchanged:
        progress(len(summary.unchanged))
    if dry_run:
        # read every run as the upload would (nothing is written): a run that cannot be uploaded
        # is reported now, not at the real sync
        origin = socket.gethostname()
        for local, existing in todo:
            try:
                _prepare(local, existing, origin, secrets)
            except (SyncError, OSError) as exc:
                summary.failed.append((str(local.run_dir), str(exc)))
                continue
            (summary.updated if existing is not None else summary.uploaded).append(str(local.run_dir))
        return summary
    if todo:
        ensure_indexes(target)
        Uploader(target, secrets=secrets).upload(todo, summary, progress, known_metrics)
    if state_key is not None:
        remember_sync(target.db, summary, state_key)
    return summary


# -- one run, in two steps (the live observer) --------------------------------------------
def prepare_run(
    run_dir: Path,
    secrets: tuple = (),
    existing_id: int | None = None,
    known_metrics: dict[str, Any] | None = None,
    sent_doc: dict | None = None,
) -> PreparedRun:
    """Read a run folder into its documents, without the database: what ``sync_runs`` uploads,
    read at the moment the caller chooses (the live observer: at the event) and written later
    by ``send_prepared``, maybe from another thread. ``existing_id``: the run's ``_id`` in the
    database (None: a new run, inserted; a concurrent upload of it turns into an update);
    ``known_metrics``, ``sent_doc``: what the caller's last sync of it left there."""
    (local,) = scan([run_dir])
    p = _prepare(local, existing_id, socket.gethostname(), tuple(s for s in secrets if s))
    p.known_metrics = known_metrics if existing_id is not None else None
    p.sent_doc = sent_doc if existing_id is not None else None
    return p


def send_prepared(db: Any | SyncTarget, prepared: Sequence[PreparedRun]) -> SyncSummary:
    """Write runs read by ``prepare_run``, as ``sync_runs`` writes them."""
    target = sync_target(db)
    summary = SyncSummary(fingerprints={str(p.local.run_dir): p.local.fingerprint for p in prepared})
    if prepared:
        ensure_indexes(target)
        Uploader(target)._write_batch(list(prepared), summary, None)
    return summary


def store_artifact(db: Any | SyncTarget, run_dir: Path, name: str, run_id: int) -> None:
    """Store an artifact of a run in GridFS ahead of the run's next sync, which then finds it
    by md5 (``SyncTarget.blob_ids``) and only links it: the live observer sends each artifact
    when it is added, while the job goes on. A file stored by a job killed before its run
    document named it is an orphan (nothing is lost: ``sem sync`` stores the artifact again)."""
    target = sync_target(db)
    path = Path(run_dir) / name
    md5 = file_md5(path)
    if md5 in target.blob_ids:
        return
    ensure_indexes(target)
    content_type, _ = mimetypes.guess_type(name)
    blob = _Blob(md5=md5, filename=documents.artifact_filename(run_id, name), path=path, content_type=content_type)
    writes = OrderedWrites(target.db)
    writer = _GridFSWriter(writes)
    file_id = _oid()
    writer.put(blob, file_id)
    writer.flush()
    writes.execute()
    target.blob_ids[md5] = file_id
