"""Upload run folders (sem's file layout) into MongoDB in sacred's schema, in bulk.

``sync_runs(db, run_dirs)`` is the one code path behind ``sem sync``, the live observer and the
sync at the end of a sweep:

1. one stat per file gives each run's fingerprint (``schema.fingerprint``); one range query on
   ``config.global_id`` gives the fingerprints in the database: unchanged runs cost no file
   read and no further round trip (a no-op re-sync of 1,000 runs is one query);
2. runs to upload go in batches: GridFS blobs (sources, artifacts, offloaded metrics and
   stdout) that the database lacks by md5, then the metric documents, then the run documents
   last, so a reader never sees a run whose metrics or artifacts are missing;
3. new runs get integer ``_id`` s after the largest one (sacred's rule); a collision with a
   concurrent writer is retried, and a concurrent upload of the same run (unique index on
   ``config.global_id``) turns into an update: no duplicates, whatever the concurrency.

Updates ``$set`` the fields sem writes, so what other tools added to a run document (Omniboard's
tags and notes) survives. Nothing in the database is deleted except the metric documents a run's
update has just replaced.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import mimetypes
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

from sem_core import records
from sem_core.mongo import schema

UNSYNCED_MARKER = ".sem-unsynced"
CHUNK_SIZE = 261120  # GridFS default (255 KiB), as pymongo writes
FLUSH_BYTES = 8 * 1024 * 1024
BATCH_RUNS = 100
BATCH_BYTES = 64 * 1024 * 1024
ID_RETRIES = 20


class SyncError(Exception):
    """A run that cannot be uploaded as it is (the message names the run folder and the fix)."""


@dataclass
class SyncSummary:
    uploaded: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (run folder, reason)

    def counts(self) -> dict[str, int]:
        return {
            "uploaded": len(self.uploaded),
            "updated": len(self.updated),
            "unchanged": len(self.unchanged),
            "failed": len(self.failed),
        }

    def merge(self, other: "SyncSummary") -> None:
        self.uploaded += other.uploaded
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.failed += other.failed


@dataclass
class LocalRun:
    run_dir: Path
    global_id: str
    fingerprint: str


@dataclass
class _Blob:
    md5: str
    filename: str
    path: Optional[Path] = None
    data: Optional[bytes] = None
    content_type: Optional[str] = None
    metadata: Optional[dict] = None


@dataclass
class _Prepared:
    local: LocalRun
    existing_id: Optional[int]
    run_id: Optional[int] = None
    doc: dict = field(default_factory=dict)
    metric_docs: list = field(default_factory=list)
    blobs: list = field(default_factory=list)
    # callbacks filling GridFS ids into the documents once blobs are stored
    fills: list = field(default_factory=list)


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
    return schema.fingerprint(entries)


def scan(run_dirs: Iterable[Path]) -> list[LocalRun]:
    return [LocalRun(Path(d), Path(d).name, local_fingerprint(Path(d))) for d in run_dirs]


def mark_unsynced(run_dir: Path, reason: str) -> None:
    """Leave a marker in the run folder: ``sem sync`` (and ``sem status``) know it is not in the database."""
    records.atomic_write_text(Path(run_dir) / UNSYNCED_MARKER, reason.rstrip("\n") + "\n")


def is_unsynced(run_dir: Path) -> bool:
    return (Path(run_dir) / UNSYNCED_MARKER).exists()


def _clear_unsynced(run_dir: Path) -> None:
    try:
        os.unlink(Path(run_dir) / UNSYNCED_MARKER)
    except FileNotFoundError:
        pass


def _file_md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- database side -----------------------------------------------------------------------
# (id(client), database) -> client; the client is kept so that its id is not reused
_indexed: dict = {}


def ensure_indexes(db) -> None:
    """The unique index that makes sync idempotent, and the lookups sync and readers use.
    Once per database and process."""
    import pymongo
    import pymongo.errors

    key = (id(db.client), db.name)
    if key in _indexed:
        return
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
    db.metrics.create_index([("run_id", pymongo.ASCENDING), ("name", pymongo.ASCENDING)])
    db["fs.files"].create_index("md5")
    db["fs.files"].create_index([("filename", pymongo.ASCENDING), ("uploadDate", pymongo.ASCENDING)])
    db["fs.chunks"].create_index([("files_id", pymongo.ASCENDING), ("n", pymongo.ASCENDING)], unique=True)
    _indexed[key] = db.client


def remote_state(db, global_ids: Sequence[str]) -> dict[str, tuple[Any, Optional[str]]]:
    """``{global_id: (_id, fingerprint)}`` of the given runs already in the database.

    One range query over the unique index (global ids sort by start time, so a store's runs
    form a narrow range); runs of others inside the range are filtered out here."""
    if not global_ids:
        return {}
    wanted = set(global_ids)
    cursor = db.runs.find(
        {"config.global_id": {"$gte": min(wanted), "$lte": max(wanted)}},
        {"_id": 1, "config.global_id": 1, "sem.fingerprint": 1},
    )
    found = {}
    for doc in cursor:
        gid = (doc.get("config") or {}).get("global_id")
        if gid in wanted:
            found[gid] = (doc["_id"], (doc.get("sem") or {}).get("fingerprint"))
    return found


def _max_int_id(db) -> int:
    doc = db.runs.find_one({"_id": {"$type": "number"}}, {"_id": 1}, sort=[("_id", -1)])
    return int(doc["_id"]) if doc else 0


class _GridFSWriter:
    """Writes GridFS files in bulk (chunks first, then the files documents: the GridFS
    spec's order, so a files document never points at missing chunks)."""

    def __init__(self, db):
        self.files = db["fs.files"]
        self.chunks = db["fs.chunks"]
        self._chunks: list = []
        self._files: list = []
        self._pending = 0

    def put(self, blob: _Blob, file_id) -> None:
        from bson import Binary

        length = 0
        n = 0
        for piece in _pieces(blob):
            self._chunks.append({"_id": _oid(), "files_id": file_id, "n": n, "data": Binary(piece)})
            n += 1
            length += len(piece)
            self._pending += len(piece)
            if self._pending >= FLUSH_BYTES:
                self._flush_chunks()
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

    def _flush_chunks(self) -> None:
        if self._chunks:
            self.chunks.insert_many(self._chunks, ordered=False)
            self._chunks = []
            self._pending = 0

    def flush(self) -> None:
        self._flush_chunks()
        if self._files:
            self.files.insert_many(self._files, ordered=False)
            self._files = []


def _pieces(blob: _Blob):
    if blob.data is not None:
        for i in range(0, len(blob.data), CHUNK_SIZE):
            yield blob.data[i : i + CHUNK_SIZE]
        return
    with open(blob.path, "rb") as fh:
        while True:
            piece = fh.read(CHUNK_SIZE)
            if not piece:
                return
            yield piece


def _oid():
    from bson import ObjectId

    return ObjectId()


# -- preparing one run -------------------------------------------------------------------
def _read_json_file(path: Path, default: Any) -> Any:
    if not path.exists():
        return default
    try:
        return records.read_json(path)
    except ValueError as exc:
        raise SyncError(f"{path}: not valid JSON ({exc}); fix or remove the file, then sync again") from None


def _prepare(local: LocalRun, existing_id: Optional[int], origin: str, secrets: tuple) -> _Prepared:
    """Read a run folder and build its documents; GridFS ids and the run's _id are filled later."""
    run_dir = local.run_dir
    store = run_dir.parent
    run_json = _read_json_file(run_dir / records.RUN_FILE, None)
    if not isinstance(run_json, dict):
        raise SyncError(f"{run_dir / records.RUN_FILE}: missing or not a JSON object")
    config = _read_json_file(run_dir / records.CONFIG_FILE, {})
    gid = config.get("global_id")
    if gid is None:
        config = dict(config, global_id=local.global_id)
    elif gid != local.global_id:
        raise SyncError(
            f"{run_dir}: config.json says global_id {gid!r} but the folder is named {local.global_id!r}; "
            "a run folder's name is its global_id: rename the folder back"
        )
    info = _read_json_file(run_dir / records.INFO_FILE, {})
    try:
        metrics = records.read_metrics(run_dir)
    except ValueError as exc:
        raise SyncError(f"{run_dir}: metrics are not valid JSON ({exc})") from None
    cout_path = run_dir / records.COUT_FILE
    captured_out = cout_path.read_text(encoding="utf-8", errors="replace") if cout_path.exists() else ""
    captured_out = schema.scrub(captured_out, secrets)

    p = _Prepared(local=local, existing_id=existing_id)
    sync: dict = {
        "fingerprint": local.fingerprint,
        "version": schema.SYNC_VERSION,
        "synced_at": dt.datetime.now(dt.timezone.utc),
        "origin": origin + ":" + str(run_dir),
    }

    # sources: content-addressed copies in <store>/_sources, stored in GridFS once per content
    experiment = run_json.get("experiment") or {}
    base_dir = str(experiment.get("base_dir") or store)
    source_ids: list = []
    for entry in experiment.get("sources") or []:
        name, stored = entry[0], entry[1]
        md5 = schema.md5_of_stored_name(str(stored))
        path = store / str(stored)
        if not path.exists():
            raise SyncError(f"{run_dir}: source {name!r} is missing from the store ({path})")
        md5 = md5 or _file_md5(path)
        source_ids.append([name, None])
        p.blobs.append(_Blob(md5=md5, filename=os.path.join(base_dir, name), path=path))
        p.fills.append(("source", len(source_ids) - 1, md5))

    artifact_ids: list = []
    for name in run_json.get("artifacts") or []:
        path = run_dir / name
        if not path.exists():
            raise SyncError(f"{run_dir}: artifact {name!r} listed in run.json is missing ({path})")
        md5 = _file_md5(path)
        content_type, _ = mimetypes.guess_type(name)
        artifact_ids.append({"name": name, "file_id": None})
        p.blobs.append(_Blob(md5=md5, filename="", path=path, content_type=content_type))
        p.fills.append(("artifact", len(artifact_ids) - 1, md5))

    offloaded: list = []
    metric_links: list = []
    for name, series in metrics.items():
        oid = _oid()
        doc, thinned = schema.bounded_metric_document(0, name, series, oid)
        if thinned:
            data = schema.encode_full_series(series)
            md5 = hashlib.md5(data).hexdigest()
            n = len(series.get("values", []))
            doc["sem_full_data"] = {
                "file_id": None,
                "md5": md5,
                "points": n,
                "points_in_document": len(doc["values"]),
                "encoding": schema.FULL_METRIC_ENCODING,
                "note": "this document holds evenly spaced points; every point is in the GridFS file file_id",
            }
            p.blobs.append(_Blob(md5=md5, filename="", data=data, content_type="application/gzip",
                                 metadata={"sem": "full metric", "name": name, "points": n}))
            p.fills.append(("metric", len(p.metric_docs), md5))
            offloaded.append({"what": f"metric {name}", "md5": md5})
        p.metric_docs.append(doc)
        metric_links.append({"id": str(oid), "name": name})

    total_bytes = len(captured_out.encode("utf-8", "surrogateescape"))
    shown, cut = schema.bounded_text(captured_out)
    if cut:
        data = captured_out.encode("utf-8", "surrogateescape")
        md5 = hashlib.md5(data).hexdigest()
        p.blobs.append(_Blob(md5=md5, filename="", data=data, content_type="text/plain",
                             metadata={"sem": "full captured_out", "bytes": total_bytes}))
        p.fills.append(("captured_out", total_bytes, md5))
        sync["captured_out_bytes"] = total_bytes
        offloaded.append({"what": "captured_out", "md5": md5})
    if offloaded:
        sync["offloaded"] = offloaded

    run_json = schema.scrub(run_json, secrets)
    p.doc = schema.run_document(
        run_json, schema.scrub(config, secrets), schema.scrub(info, secrets), shown,
        source_ids, artifact_ids, metric_links, sync,
    )
    return p


def _assign_id(p: _Prepared, run_id: int) -> None:
    p.run_id = run_id
    for m in p.metric_docs:
        m["run_id"] = run_id
    for b, fill in zip(p.blobs, p.fills):
        kind, index, _ = fill
        if kind == "artifact":
            b.filename = schema.artifact_filename(run_id, p.doc["artifacts"][index]["name"])
        elif kind == "metric":
            b.filename = f"metrics://runs/{run_id}/{p.metric_docs[index]['name']}.json.gz"
        elif kind == "captured_out":
            b.filename = f"captured_out://runs/{run_id}"


def _fill_ids(p: _Prepared, ids_by_md5: dict) -> None:
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
            doc["captured_out"] += schema.truncation_note(index, file_id, blob.filename)
    for entry in doc["sem"].get("offloaded", []):
        entry["file_id"] = ids_by_md5[entry["md5"]]


# -- the sync ----------------------------------------------------------------------------
class Uploader:
    def __init__(self, db, secrets: tuple = (), origin: Optional[str] = None):
        self.db = db
        self.secrets = tuple(s for s in secrets if s)
        self.origin = origin or socket.gethostname()
        self._ids_by_md5: dict[str, Any] = {}

    def upload(self, todo: list[tuple[LocalRun, Optional[int]]], summary: SyncSummary,
               progress: Optional[Callable[[int], None]] = None) -> None:
        batch: list[_Prepared] = []
        size = 0
        for local, existing_id in todo:
            try:
                p = _prepare(local, existing_id, self.origin, self.secrets)
            except (SyncError, OSError) as exc:
                summary.failed.append((str(local.run_dir), str(exc)))
                if progress:
                    progress(1)
                continue
            batch.append(p)
            size += sum(len(m["values"]) for m in p.metric_docs) * 40 + len(p.doc["captured_out"])
            if len(batch) >= BATCH_RUNS or size >= BATCH_BYTES:
                self._write_batch(batch, summary, progress)
                batch, size = [], 0
        if batch:
            self._write_batch(batch, summary, progress)

    def _write_batch(self, batch: list[_Prepared], summary: SyncSummary, progress) -> None:
        import bson

        # _ids first: artifact filenames name the run
        next_id = None
        for p in batch:
            if p.existing_id is not None:
                _assign_id(p, p.existing_id)
            else:
                if next_id is None:
                    next_id = _max_int_id(self.db) + 1
                _assign_id(p, next_id)
                next_id += 1

        self._store_blobs([b for p in batch for b in p.blobs])
        ready: list[_Prepared] = []
        for p in batch:
            _fill_ids(p, self._ids_by_md5)
            size = len(bson.encode(p.doc))
            if size > schema.MAX_DOCUMENT_BYTES:
                summary.failed.append((
                    str(p.local.run_dir),
                    f"its run document is {size / 2**20:.1f} MiB after moving captured_out and long metrics "
                    "to GridFS (MongoDB's limit is 16 MiB): info.json, config.json or the result is too big; "
                    "store large data with ex.add_artifact instead",
                ))
                continue
            ready.append(p)
        if not ready:
            if progress:
                progress(len(batch))
            return

        metric_docs = [m for p in ready for m in p.metric_docs]
        if metric_docs:
            self.db.metrics.insert_many(metric_docs, ordered=False)

        new = [p for p in ready if p.existing_id is None]
        self._insert_new(new, summary)
        self._update_existing([p for p in ready if p.existing_id is not None], summary)
        for p in ready:
            _clear_unsynced(p.local.run_dir)
        if progress:
            progress(len(batch))

    def _store_blobs(self, blobs: list[_Blob]) -> None:
        wanted = {b.md5 for b in blobs} - set(self._ids_by_md5)
        if wanted:
            for doc in self.db["fs.files"].find({"md5": {"$in": sorted(wanted)}}, {"md5": 1}):
                self._ids_by_md5.setdefault(doc["md5"], doc["_id"])
        writer = _GridFSWriter(self.db)
        for b in blobs:
            if b.md5 not in self._ids_by_md5:
                file_id = _oid()
                writer.put(b, file_id)
                self._ids_by_md5[b.md5] = file_id
        writer.flush()

    def _insert_new(self, new: list[_Prepared], summary: SyncSummary) -> None:
        import pymongo.errors

        pending = new
        for _ in range(ID_RETRIES):
            if not pending:
                return
            docs = [dict(p.doc, _id=p.run_id) for p in pending]
            try:
                self.db.runs.insert_many(docs, ordered=False)
                summary.uploaded += [str(p.local.run_dir) for p in pending]
                return
            except pymongo.errors.BulkWriteError as exc:
                errors = {e["index"]: e for e in exc.details.get("writeErrors", [])}
            retry, taken = [], []
            for i, p in enumerate(pending):
                err = errors.get(i)
                if err is None:
                    summary.uploaded.append(str(p.local.run_dir))
                elif err.get("code") == 11000 and "config.global_id" in (err.get("keyPattern") or {}):
                    taken.append(p)  # uploaded concurrently by another sync: update that document
                elif err.get("code") == 11000:
                    retry.append(p)  # another writer took this _id
                else:
                    summary.failed.append((str(p.local.run_dir), f"database refused the run: {err.get('errmsg')}"))
            if taken:
                found = remote_state(self.db, [p.local.global_id for p in taken])
                for p in taken:
                    old_id = p.run_id
                    p.existing_id = found[p.local.global_id][0]
                    self._move_metrics(old_id, p)
                self._update_existing(taken, summary)
            if retry:
                next_id = _max_int_id(self.db) + 1
                for p in retry:
                    old_id = p.run_id
                    _assign_id(p, next_id)
                    next_id += 1
                    # artifact filenames keep the id first tried: GridFS names are informational
                    self.db.metrics.update_many({"run_id": old_id, "_id": {"$in": [m["_id"] for m in p.metric_docs]}},
                                                {"$set": {"run_id": p.run_id}})
            pending = retry
        for p in pending:
            summary.failed.append((str(p.local.run_dir), f"no free run _id after {ID_RETRIES} attempts"))

    def _move_metrics(self, old_id: int, p: _Prepared) -> None:
        ids = [m["_id"] for m in p.metric_docs]
        _assign_id(p, p.existing_id)
        if ids:
            self.db.metrics.update_many({"run_id": old_id, "_id": {"$in": ids}}, {"$set": {"run_id": p.run_id}})

    def _update_existing(self, existing: list[_Prepared], summary: SyncSummary) -> None:
        from pymongo import DeleteMany, UpdateOne

        if not existing:
            return
        self.db.runs.bulk_write(
            [UpdateOne({"_id": p.existing_id}, {"$set": p.doc}) for p in existing], ordered=False
        )
        # the metric documents this update replaced (after the run points at the new ones)
        self.db.metrics.bulk_write(
            [DeleteMany({"run_id": p.existing_id, "_id": {"$nin": [m["_id"] for m in p.metric_docs]}})
             for p in existing],
            ordered=False,
        )
        summary.updated += [str(p.local.run_dir) for p in existing]


def plan_sync(db, run_dirs: Sequence[Path]) -> tuple[list[tuple[LocalRun, Optional[int]]], SyncSummary]:
    """What a sync would do: ``[(run, existing _id or None)]`` to upload, and the unchanged runs."""
    local = scan(run_dirs)
    remote = remote_state(db, [r.global_id for r in local])
    todo, summary = [], SyncSummary()
    for r in local:
        found = remote.get(r.global_id)
        if found is None:
            todo.append((r, None))
        elif found[1] == r.fingerprint:
            summary.unchanged.append(str(r.run_dir))
        else:
            todo.append((r, found[0]))
    return todo, summary


def sync_runs(
    db,
    run_dirs: Sequence[Path],
    secrets: tuple = (),
    progress: Optional[Callable[[int], None]] = None,
    dry_run: bool = False,
) -> SyncSummary:
    """Upload the runs missing from the database or changed since their last sync."""
    ensure_indexes(db)
    todo, summary = plan_sync(db, run_dirs)
    if progress and summary.unchanged:
        progress(len(summary.unchanged))
    if dry_run:
        for local, existing in todo:
            (summary.updated if existing is not None else summary.uploaded).append(str(local.run_dir))
        return summary
    Uploader(db, secrets=secrets).upload(todo, summary, progress)
    return summary
