"""Errors a user can fix. Each message names the file, the row (order_id) or key, and the fix."""

from __future__ import annotations

import os
import sys
import warnings

from hydra.errors import CompactHydraException


class SemError(CompactHydraException):
    """A user-fixable error: Hydra prints only its message and exits with code 1;
    the ``sem`` command prints it and exits with code 2."""


class ConfigError(SemError):
    """A bad row, override, schema or experiment_config.yaml."""


class NoActiveRun(SemError):
    """A run-time API (ex.log_scalar, ...) was called outside a run."""


class SemWarning(UserWarning):
    """Something the user should know that does not stop the run (printed as one line)."""


def warn(message: str) -> None:
    warnings.warn(SemWarning(message), stacklevel=2)


_default_formatwarning = warnings.formatwarning


def _formatwarning(message, category, filename, lineno, line=None):  # type: ignore[no-untyped-def]
    if isinstance(category, type) and issubclass(category, SemWarning):
        return f"sem: warning: {message}\n"
    return _default_formatwarning(message, category, filename, lineno, line)


warnings.formatwarning = _formatwarning


_default_excepthook = sys.excepthook


def _excepthook(exc_type, exc, tb):  # type: ignore[no-untyped-def]
    # A SemError escaping a model file's module-level code (the README's template calls
    # read_yaml("../experiment_config.yaml") before @ex.automain) already says what to fix:
    # print it as automain does, without the traceback (HYDRA_FULL_ERROR=1 keeps it). Exit code stays 1.
    if isinstance(exc, SemError) and not os.environ.get("HYDRA_FULL_ERROR"):
        print(f"{os.path.basename(sys.argv[0]) or 'sem'}: error: {exc}", file=sys.stderr)
        return
    _default_excepthook(exc_type, exc, tb)


sys.excepthook = _excepthook
