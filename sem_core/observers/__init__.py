"""Run observers: sacred's observer events, one module per backend.

- ``base``: ``RunObserver``, every event a no-op.
- ``file``: sacred's FileStorageObserver layout (always on: the source of truth).
- ``mongo``: live MongoDB sync in sacred's MongoObserver schema (when a database is configured).
"""

from sem_core.observers.base import RunObserver

__all__ = ["RunObserver"]
