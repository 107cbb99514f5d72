"""Observers the user attaches: sacred's own (``SqlObserver``, ``SlackObserver``, W&B's ...) or
any object with the methods of sacred's ``RunObserver``, from the model file
(``ex.observers.append(obs)``) or from ``experiment_config.yaml`` (``sem: observers:``, a list
of ``_target_`` entries built with ``hydra.utils.instantiate``).

``AttachedObserver`` wraps one such observer for one run and hands it sacred's events as
sacred's ``Run`` does (``sacred/run.py``): the same methods, keyword arguments and order:
``started_event``, then per heartbeat ``log_metrics`` and ``heartbeat_event``, ``resource_event``
and ``artifact_event`` as they happen, a last heartbeat, one of ``completed_event``,
``failed_event``, ``interrupted_event``, then ``join``. sem's own observers get two things
differently, to stay linear in long runs; the wrapper gives a sacred observer sacred's form:

- ``captured_out``: all the output so far (sem's get only what is new since the last beat);
- times: naive UTC ``datetime`` (sacred's ``datetime.utcnow()``), metric timestamps too.

An attached observer that raises is reported on stderr (so also in cout.txt) naming it and
the event, then left out for the rest of the run, as sacred does (``Run._safe_call``). sacred
fails the run when a ``started_event`` raises; sem runs on: its own file record is the run's
record of truth and is written before any attached observer is called (they come after sem's
observers in priority). Secrets an observer holds (a webhook URL, a token) are cut out of
those messages.

Nothing here imports sacred: a plain run never pays its import (~0.5 s); an observer's
``_target_`` module is imported only when that observer is attached.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from sem_core.errors import ConfigError
from sem_core.observers.base import Info, Metrics, RunObserver

# attached observers run after sem's own (file record 20, MongoDB 10), in sacred's order among themselves
PRIORITY_OFFSET = -1000
# keys of an observer's settings whose values are secrets (kept out of Hydra's saved config, of messages)
SECRET_KEY = re.compile(r"token|secret|passw|pwd|webhook|api_?key|auth|credential|private|url|uri|dsn", re.I)
REDACTED = "<secret>"
# how to install the packages of the observers people attach most
PACKAGE_HINTS = {
    "sacred": "pip install sacred",
    "wandb": "pip install wandb",
    "neptune": "pip install neptune neptune-sacred",
}
SACRED_EVENTS = (
    "queued_event",
    "started_event",
    "heartbeat_event",
    "completed_event",
    "interrupted_event",
    "failed_event",
    "resource_event",
    "artifact_event",
    "log_metrics",
    "join",
)


def _naive_utc(t: dt.datetime) -> dt.datetime:
    """sacred's times are ``datetime.utcnow()``: naive UTC."""
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None) if t.tzinfo is not None else t


def _sacred_metrics(metrics_by_name: Mapping[str, Mapping[str, list]]) -> dict:
    """sem's metric batch with sacred's timestamps (naive UTC datetimes, not ISO strings)."""
    parse = dt.datetime.fromisoformat
    return {
        name: {
            "steps": list(series["steps"]),
            "values": list(series["values"]),
            "timestamps": [parse(t) if isinstance(t, str) else t for t in series["timestamps"]],
        }
        for name, series in metrics_by_name.items()
    }


def secret_parts(value: str) -> set[str]:
    """The parts of a secret setting that may show up in an error message: the whole value and,
    for a URL, its password, path (a webhook's token) and query."""
    out = {value}
    try:
        parts = urlsplit(value)
    except ValueError:
        return out
    if parts.scheme and parts.netloc:
        for piece in (parts.password, parts.path, parts.query):
            if piece and len(piece) >= 8:  # "/" or "/db" names nothing secret
                out.add(piece)
    return out


def secrets_in(settings: Any, key: str = "") -> set[str]:
    """Every secret string in an observer's settings (a dict from experiment_config.yaml, or
    the observer object's own attributes), by key name."""
    found: set[str] = set()
    if isinstance(settings, Mapping):
        for k, v in settings.items():
            found |= secrets_in(v, str(k))
    elif isinstance(settings, (list, tuple)):
        for v in settings:
            found |= secrets_in(v, key)
    elif isinstance(settings, str) and key and SECRET_KEY.search(key) and len(settings) >= 4:
        found |= secret_parts(settings)
    return found


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def redact_settings(spec: Any, key: str = "") -> Any:
    """An observer entry as it may be shown and saved (Hydra's .hydra/config.yaml): each secret
    value replaced by ``REDACTED``; an interpolation (``${oc.env:SLACK_WEBHOOK}``) holds no
    secret and stays."""
    if isinstance(spec, Mapping):
        return {k: redact_settings(v, str(k)) for k, v in spec.items()}
    if isinstance(spec, list):
        return [redact_settings(v, key) for v in spec]
    if isinstance(spec, str) and key != "_target_" and SECRET_KEY.search(key) and not spec.startswith("${"):
        return REDACTED
    return spec


def restore_secrets(shown: Any, real: Any) -> Any:
    """The entry to build: ``shown`` (Hydra's config, maybe changed on the command line) with each
    ``REDACTED`` value taken back from ``real`` (experiment_config.yaml, read in the job)."""
    if shown == REDACTED:
        return real
    if isinstance(shown, Mapping):
        real = real if isinstance(real, Mapping) else {}
        return {k: restore_secrets(v, real.get(k)) for k, v in shown.items()}
    if isinstance(shown, list):
        real = real if isinstance(real, list) else []
        return [restore_secrets(v, real[i] if i < len(real) else None) for i, v in enumerate(shown)]
    return shown


def check_entries(entries: Any, source: str) -> list[dict]:
    """``sem: observers:`` as a list of ``{_target_: dotted.name, ...}``; a bad entry is one clear
    line naming the file, the entry and the fix (before any job). Only the target's top-level
    package is looked up (importing the target would import sacred, 0.5-1.9 s, in the launcher):
    a package that is not installed is found here, a misspelt class in each job."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ConfigError(
            f"{source}: sem.observers must be a list of entries with a _target_, got {type(entries).__name__}"
        )
    for i, entry in enumerate(entries):
        target = entry.get("_target_") if isinstance(entry, Mapping) else None
        if not isinstance(target, str) or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+", target):
            raise ConfigError(
                f"{source}: sem.observers[{i}] needs `_target_: package.module.ObserverClass` "
                f"(e.g. sacred.observers.SqlObserver), got {redact_settings(entry)!r}"
            )
        package = target.split(".")[0]
        try:
            missing = importlib.util.find_spec(package) is None
        except (ImportError, ValueError):  # a module of that name without a spec: it is there
            missing = False
        if missing:
            hint = PACKAGE_HINTS.get(package, f"pip install the package that provides {package!r}")
            raise ConfigError(
                f"{source}: sem.observers[{i}] _target_ {target}: no module named {package!r} is installed ({hint})"
            )
    return [dict(entry) for entry in entries]


class AttachedObserver(RunObserver):
    """One attached observer for one run, given sacred's events in sacred's form.

    ``observer``: the object (``ex.observers``), or ``build``: how to make it, called inside the
    job's process at the run's start (``sem: observers:`` entries: W&B's observer starts a W&B
    run when it is made). ``secrets``: strings to keep out of messages."""

    def __init__(
        self,
        observer: Any = None,
        build: Callable[[], Any] | None = None,
        name: str = "",
        secrets: Iterable[str] = (),
    ):
        self.observer = observer
        self._build = build
        self.name = name or type(observer).__name__
        self.secrets = set(secrets)
        if observer is not None:
            self.secrets |= secrets_in(dict(getattr(observer, "__dict__", {})))
        self.priority = PRIORITY_OFFSET + int(getattr(observer, "priority", 0) or 0)
        self.failed = False
        self.run_id: Any = None
        self._out = ""  # all the output so far: sacred hands the whole of it at every beat

    # -- safety ------------------------------------------------------------------------
    def _call(self, event: str, **kwargs: Any) -> Any:
        if self.failed or self.observer is None:
            return None
        method = getattr(self.observer, event, None)
        if method is None:  # sacred's base class has every event; a duck-typed one may not
            return None
        try:
            return method(**kwargs)
        except Exception as exc:  # noqa: BLE001 - an attached observer never stops the run or its record
            self.failed = True
            self._report(
                f"{event} raised {type(exc).__name__}: {exc}; it is left out for the rest of this run "
                "(sem's own record is complete)"
            )
            return None

    def _report(self, message: str) -> None:
        line = redact(f"sem: run {self.run_id}: observer {self.name}: {message}", self.secrets)
        try:
            # one write: a line of its own in cout.txt
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - stderr itself may be gone
            pass

    # -- sacred's events ---------------------------------------------------------------
    def _begin(
        self,
        event: str,
        ex_info: Info,
        command: str,
        host_info: Info,
        time: dt.datetime,
        config: Info,
        meta_info: Info,
        _id: Any,
    ) -> None:
        self.run_id = _id
        if self.observer is None and self._build is not None:
            try:
                self.observer = self._build()
            except Exception as exc:  # noqa: BLE001 - reported; the run goes on recorded by sem
                self.failed = True
                self._report(f"could not be made ({type(exc).__name__}: {exc}); this run goes on without it")
                return
            self.secrets |= secrets_in(dict(getattr(self.observer, "__dict__", {})))
        time_key = "queue_time" if event == "queued_event" else "start_time"
        self._call(
            event,
            ex_info=ex_info,
            command=command,
            host_info=host_info,
            config=config,
            meta_info=meta_info,
            _id=_id,
            **{time_key: _naive_utc(time)},
        )

    def queued_event(
        self,
        ex_info: Info,
        command: str,
        host_info: Info,
        queue_time: dt.datetime,
        config: Info,
        meta_info: Info,
        _id: Any,
    ) -> Any:
        self._begin("queued_event", ex_info, command, host_info, queue_time, config, meta_info, _id)

    def started_event(
        self,
        ex_info: Info,
        command: str,
        host_info: Info,
        start_time: dt.datetime,
        config: Info,
        meta_info: Info,
        _id: Any,
    ) -> Any:
        self._begin("started_event", ex_info, command, host_info, start_time, config, meta_info, _id)

    def heartbeat_event(self, info: Info, captured_out: str, beat_time: dt.datetime, result: Any) -> None:
        self._out += captured_out or ""
        self._call("heartbeat_event", info=info, captured_out=self._out, beat_time=_naive_utc(beat_time), result=result)

    def log_metrics(self, metrics_by_name: Metrics, info: Info) -> None:
        self._call("log_metrics", metrics_by_name=_sacred_metrics(metrics_by_name), info=info)

    def completed_event(self, stop_time: dt.datetime, result: Any) -> None:
        self._call("completed_event", stop_time=_naive_utc(stop_time), result=result)

    def interrupted_event(self, interrupt_time: dt.datetime, status: str) -> None:
        # a plain str, as sacred's: sem's RunStatus is a str Enum, which jsonpickle writes as an object
        plain = status.value if isinstance(status, Enum) else str(status)
        self._call("interrupted_event", interrupt_time=_naive_utc(interrupt_time), status=plain)

    def failed_event(self, fail_time: dt.datetime, fail_trace: list[str]) -> None:
        self._call("failed_event", fail_time=_naive_utc(fail_time), fail_trace=fail_trace)

    def resource_event(self, filename: str) -> None:
        self._call("resource_event", filename=filename)

    def artifact_event(
        self,
        name: str,
        filename: str,
        metadata: dict | None = None,
        content_type: str | None = None,
    ) -> None:
        self._call("artifact_event", name=name, filename=filename, metadata=metadata, content_type=content_type)

    def join(self) -> None:
        self._call("join")
        if self.failed and self.observer is not None:
            # sacred's Run._warn_about_failed_observers
            self._report("failed during this run; what it stored of the run may be incomplete")
        if self._build is not None:
            self.observer = None  # made per job: the next job makes its own


def attach(
    observers: Sequence[Any] = (),
    entries: Sequence[Mapping[str, Any]] = (),
    file_entries: Sequence[Mapping[str, Any]] = (),
) -> list[AttachedObserver]:
    """The attached observers of one job: ``observers`` (objects, ``ex.observers``) and
    ``entries`` (``sem.observers`` of the job's config, secrets redacted), each built at the
    run's start with its secrets taken back from ``file_entries`` (experiment_config.yaml)."""
    out = [AttachedObserver(observer=obs) for obs in observers]
    for i, entry in enumerate(entries):
        real = restore_secrets(entry, file_entries[i] if i < len(file_entries) else {})
        target = str(real.get("_target_", "?"))
        out.append(AttachedObserver(build=_builder(real), name=target.rsplit(".", 1)[-1], secrets=secrets_in(real)))
    return out


def _builder(entry: Mapping[str, Any]) -> Callable[[], Any]:
    def build() -> Any:
        from hydra.utils import instantiate

        return instantiate(dict(entry), _convert_="all")

    return build


def job_observers(experiment_dir: Any, observers: Sequence[Any], sem_config: Any) -> list[AttachedObserver]:
    """The attached observers of the job going on in this process: ``observers`` (the model
    file's ``ex.observers``) and ``sem_config.observers`` (its ``sem`` node, as Hydra composed
    it); experiment_config.yaml is read again only when an entry hides a secret."""
    entries: list = []
    node = sem_config.get("observers") if sem_config is not None else None
    if node:
        from omegaconf import OmegaConf

        container = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        entries = list(container) if isinstance(container, (list, tuple)) else []
    file_entries: list = []
    if any(REDACTED in repr(entry) for entry in entries):
        from sem_core.settings import load_experiment_config

        file_entries = (load_experiment_config(experiment_dir).get("sem") or {}).get("observers") or []
    return attach(observers, entries, file_entries)
