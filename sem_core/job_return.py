"""A job's ``JobReturn`` made safe to send to another process (local workers, Slurm tasks)."""

from __future__ import annotations

import pickle
import traceback

from hydra.core.utils import JobReturn


class JobError(Exception):
    """A job's exception that could not travel back by pickle, with its traceback."""


def portable(ret: JobReturn) -> JobReturn:
    """Make a JobReturn safe to send back: an unpicklable result or exception is replaced
    by its repr / formatted traceback instead of aborting the sweep."""
    value = ret._return_value
    try:
        pickle.dumps(value)
    except Exception:
        if isinstance(value, BaseException):
            text = "".join(traceback.format_exception(type(value), value, value.__traceback__))
            ret._return_value = JobError(text)
        else:
            ret._return_value = f"<unpicklable {type(value).__name__}: {value!r:.200}>"
    return ret
