"""MongoDB sync of run records in sacred's MongoObserver schema (read by Omniboard, incense and
sacred users' scripts).

- ``connection``: which database (settings resolution), URI redaction, connecting.
- ``schema``: pure functions turning a run folder's data into sacred's documents (16 MB safety).
- ``upload``: ``sync_runs``, the bulk uploader used by ``sem sync``, the live observer and the
  end of a sweep.
- ``reader``: runs read back from MongoDB as ``sem_core.records.RunRecord``.

The live observer (RUNNING at job start, the full record at job end) is
``sem_core.observers.mongo``, beside the file observer.

sem works without a database: nothing here is imported unless a database is configured.
"""
