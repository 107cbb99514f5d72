"""Run observers: sacred's observer events, one module per backend."""

from sem_core.observers.base import RunObserver

__all__ = ["RunObserver"]
