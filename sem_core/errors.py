"""Errors a user can fix. Each message names the file, the row (order_id) or key, and the fix."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from typing import Any


class SemError(Exception):
    """A user-fixable error, printed as one line without a traceback wherever it ends a
    command: ``python m_model.py`` (``@ex.automain``, sem's sweeper and launchers, the hook of
    ``install_hooks``) exits with code 1, the ``sem`` command with code 2.

    It does not derive from Hydra's ``CompactHydraException``: the pure modules that raise it
    (ids, plan, schema) and every ``sem`` command that never starts Hydra import no Hydra."""


class ConfigError(SemError):
    """A bad row, override, schema or experiment_config.yaml."""


class NoActiveRun(SemError):
    """A run-time API (ex.log_scalar, ...) was called outside a run."""


class SemWarning(UserWarning):
    """Something the user should know that does not stop the run (printed as one line)."""


def warn(message: str) -> None:
    warnings.warn(SemWarning(message), stacklevel=2)


def install_hooks() -> None:
    """Give sem's warnings and errors their one-line form in this process.

    Called by the entry points (the ``sem`` command, a model file run as a script, a Slurm
    worker): importing sem_core changes no hook of the interpreter. Installing twice changes
    nothing; each hook hands what is not sem's to the hook it replaced."""
    if not getattr(warnings.formatwarning, "sem_hook", False):
        warnings.formatwarning = _one_line_sem_warnings(warnings.formatwarning)
    if not getattr(sys.excepthook, "sem_hook", False):
        sys.excepthook = _sem_errors_without_traceback(sys.excepthook)


def _one_line_sem_warnings(replaced: Callable[..., str]) -> Callable[..., str]:
    def format_warning(message, category, filename, lineno, line=None):  # type: ignore[no-untyped-def]
        if isinstance(category, type) and issubclass(category, SemWarning):
            return f"sem: warning: {message}\n"
        return replaced(message, category, filename, lineno, line)

    format_warning.sem_hook = True  # type: ignore[attr-defined]
    return format_warning


def _sem_errors_without_traceback(replaced: Callable[..., Any]) -> Callable[..., Any]:
    def excepthook(exc_type, exc, tb):  # type: ignore[no-untyped-def]
        # A SemError escaping a model file's module-level code (the README's template calls
        # read_yaml("../experiment_config.yaml") before @ex.automain) already says what to fix:
        # print it as automain does, without the traceback (HYDRA_FULL_ERROR=1 keeps it). Exit code stays 1.
        if isinstance(exc, SemError) and not os.environ.get("HYDRA_FULL_ERROR"):
            print(f"{os.path.basename(sys.argv[0]) or 'sem'}: error: {exc}", file=sys.stderr)
            return
        replaced(exc_type, exc, tb)

    excepthook.sem_hook = True  # type: ignore[attr-defined]
    return excepthook
