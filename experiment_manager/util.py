"""experiment_manager's ``util`` module: ``read_yaml`` is ``sem_core.util.read_yaml`` itself
(re-exported, not wrapped, so a relative path is still taken from the calling model file)."""

from sem_core.util import read_yaml

__all__ = ["read_yaml"]
