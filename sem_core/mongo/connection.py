"""Which MongoDB to use, how to name it safely in messages, and how to connect.

Settings resolution, first found wins:

1. ``sem.mongo.url=...`` (Hydra override / the ``sem:`` node)
2. environment variable ``SEM_MONGO_URL``
3. the ``mongo:`` section of ``<experiment>/experiment_config.yaml``
4. ``~/.config/sem/mongo.yaml``
5. SEML's ``~/.config/seml/mongodb.config`` (keys host, port, database, username, password)

A ``mongo:`` section / ``mongo.yaml`` holds either ``url`` (a mongodb:// URI naming the
database) or ``host``/``port``/``database``/``username``/``password``/``auth_source``/``tls``.
No setting anywhere = no database (``resolve_settings`` returns None) and no noise.

Passwords never leave this module unredacted except inside the URI handed to pymongo (and the
0600 temp config file ``sem board`` gives Omniboard): use ``MongoSettings.display`` in every message.
"""

from __future__ import annotations

import os
import re
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional
from urllib.parse import quote_plus, unquote_plus

from sem_core.errors import ConfigError, SemError

ENV_VAR = "SEM_MONGO_URL"
SEM_CONFIG_RELATIVE = Path(".config") / "sem" / "mongo.yaml"
SEML_CONFIG_RELATIVE = Path(".config") / "seml" / "mongodb.config"
SECTION_KEYS = {"url", "host", "port", "database", "username", "password", "auth_source", "tls"}
SEML_KEYS = {"host", "port", "database", "username", "password"}
# Short: a job must not hang for pymongo's default 30 s when the database is unreachable.
DEFAULT_TIMEOUT_MS = 3000
REDACTED = "***"

_URI_USERINFO = re.compile(r"(mongodb(?:\+srv)?://)([^@/\s]*)@")


@dataclass(frozen=True)
class MongoSettings:
    """A resolved connection: the full URI (secret), the database name and where it came from."""

    url: str = field(repr=False)
    database: str
    source: str  # e.g. "env SEM_MONGO_URL" or a file path: named in messages

    @property
    def display(self) -> str:
        """The URI with its password replaced by ``***``: safe for logs and errors."""
        return redact_uri(self.url)

    @property
    def password(self) -> Optional[str]:
        return uri_password(self.url)

    def __repr__(self) -> str:
        return f"MongoSettings(url={self.display!r}, database={self.database!r}, source={self.source!r})"


# -- pure helpers ------------------------------------------------------------------------
def redact_uri(uri: str) -> str:
    """``mongodb://user:pw@host/db`` -> ``mongodb://user:***@host/db`` (every URI in ``uri``)."""

    def repl(m: re.Match) -> str:
        userinfo = m.group(2)
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            return f"{m.group(1)}{user}:{REDACTED}@"
        return m.group(0)

    return _URI_USERINFO.sub(repl, uri)


def uri_password(uri: str) -> Optional[str]:
    """The decoded password of a mongodb:// URI, or None."""
    m = _URI_USERINFO.search(uri)
    if not m or ":" not in m.group(2):
        return None
    return unquote_plus(m.group(2).split(":", 1)[1]) or None


def redact_text(text: str, secrets: tuple[Optional[str], ...] = ()) -> str:
    """Redact URIs and every given secret (raw and URL-encoded) in free text (errors, logs)."""
    text = redact_uri(text)
    for secret in secrets:
        if secret:
            for spelling in {secret, quote_plus(secret)}:
                text = text.replace(spelling, REDACTED)
    return text


def uri_database(uri: str) -> Optional[str]:
    """The database named in the path of a mongodb:// URI, or None."""
    m = re.match(r"^mongodb(?:\+srv)?://[^/]*/([^?]*)", uri)
    if not m:
        return None
    return unquote_plus(m.group(1)) or None


def uri_from_parts(parts: Mapping[str, Any], source: str) -> str:
    """A URI from host/port/database/username/password/auth_source/tls (values from a file)."""
    database = parts.get("database")
    if not database:
        raise ConfigError(f"{source}: MongoDB settings need 'database' (or a 'url' naming it)")
    host = str(parts.get("host") or "localhost")
    port = parts.get("port")
    netloc = f"{host}:{int(port)}" if port not in (None, "") else host
    username, password = parts.get("username"), parts.get("password")
    if username:
        cred = quote_plus(str(username))
        if password not in (None, ""):
            cred += ":" + quote_plus(str(password))
        netloc = f"{cred}@{netloc}"
    options = []
    auth_source = parts.get("auth_source")
    if username and auth_source:
        options.append(f"authSource={quote_plus(str(auth_source))}")
    if parts.get("tls"):
        options.append("tls=true")
    query = ("?" + "&".join(options)) if options else ""
    return f"mongodb://{netloc}/{quote_plus(str(database))}{query}"


def settings_from_url(url: str, source: str) -> MongoSettings:
    url = str(url).strip()
    if not url.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigError(f"{source}: MongoDB url must start with mongodb:// (got {redact_uri(url)!r})")
    database = uri_database(url)
    if not database:
        raise ConfigError(
            f"{source}: MongoDB url {redact_uri(url)!r} names no database; "
            "put it in the path, e.g. mongodb://host:27017/sacred"
        )
    return MongoSettings(url=url, database=database, source=source)


def settings_from_section(section: Mapping[str, Any], source: str) -> MongoSettings:
    """A ``mongo:`` section or ``mongo.yaml``: ``url`` or the separate keys."""
    if not isinstance(section, Mapping):
        raise ConfigError(f"{source}: the mongo settings must be a mapping, got {type(section).__name__}")
    unknown = sorted(set(section) - SECTION_KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown MongoDB key(s) {unknown}; known: {sorted(SECTION_KEYS)}")
    if section.get("url"):
        extra = sorted(k for k in section if k != "url" and section[k] not in (None, ""))
        if extra:
            raise ConfigError(f"{source}: give either 'url' or {extra}, not both")
        return settings_from_url(section["url"], source)
    return settings_from_url(uri_from_parts(section, source), source)


def settings_from_seml(parts: Mapping[str, Any], source: str) -> MongoSettings:
    """SEML's mongodb.config: SEML authenticates against the database itself (authSource=database)."""
    if not isinstance(parts, Mapping):
        raise ConfigError(f"{source}: expected 'key: value' lines (host, port, database, username, password)")
    known = {k: v for k, v in parts.items() if k in SEML_KEYS}
    if known.get("username") and known.get("database"):
        known["auth_source"] = known["database"]
    return settings_from_url(uri_from_parts(known, source), source)


def section_has_password(section: Any) -> bool:
    if not isinstance(section, Mapping):
        return False
    if section.get("password") not in (None, ""):
        return True
    url = section.get("url")
    return bool(url and uri_password(str(url)))


# -- I/O edges ---------------------------------------------------------------------------
def warn_if_readable_by_others(path: Path) -> None:
    """A file holding a password that group or others can read gets a warning naming the fix."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        warnings.warn(
            f"{path} holds a MongoDB password and is readable by other users "
            f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}",
            stacklevel=3,
        )


def resolve_settings(
    override_url: Optional[str] = None,
    experiment_dir: Optional[Path] = None,
    env: Optional[Mapping[str, str]] = None,
    home: Optional[Path] = None,
) -> Optional[MongoSettings]:
    """The first configured database (see module docstring), or None when there is none."""
    from sem_core.settings import EXPERIMENT_CONFIG_NAME, read_yaml

    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home()) if home is None else Path(home)

    if override_url:
        settings = settings_from_url(override_url, "sem.mongo.url override")
        if settings.password:
            warnings.warn(
                f"sem.mongo.url={settings.display} carries a password on the command line, where shell history, "
                "--cfg output and Slurm job files keep it (sem replaces it by *** in Hydra's .hydra/ files); put "
                "the URL in SEM_MONGO_URL or ~/.config/sem/mongo.yaml (mode 600) instead",
                stacklevel=2,
            )
        return settings
    if env.get(ENV_VAR):
        return settings_from_url(env[ENV_VAR], f"env {ENV_VAR}")
    if experiment_dir is not None:
        path = Path(experiment_dir) / EXPERIMENT_CONFIG_NAME
        if path.exists():
            data = read_yaml(path) or {}
            section = data.get("mongo") if isinstance(data, dict) else None
            if section:
                if section_has_password(section):
                    warn_if_readable_by_others(path)
                return settings_from_section(section, f"{path} (section mongo)")
    path = home / SEM_CONFIG_RELATIVE
    if path.exists():
        section = read_yaml(path) or {}
        if section_has_password(section):
            warn_if_readable_by_others(path)
        return settings_from_section(section, str(path))
    path = home / SEML_CONFIG_RELATIVE
    if path.exists():
        parts = read_yaml(path) or {}
        if isinstance(parts, Mapping) and parts.get("password"):
            warn_if_readable_by_others(path)
        return settings_from_seml(parts, str(path))
    return None



def require_settings(override_url: Optional[str] = None, experiment_dir: Optional[Path] = None) -> MongoSettings:
    """``resolve_settings`` for the commands that need a database: none configured is an error
    that lists where sem looks."""
    settings = resolve_settings(override_url=override_url, experiment_dir=experiment_dir)
    if settings is None:
        raise SemError(
            "no MongoDB configured: set SEM_MONGO_URL=mongodb://HOST:PORT/DATABASE, a 'mongo:' section in "
            "experiment_config.yaml, ~/.config/sem/mongo.yaml or SEML's ~/.config/seml/mongodb.config"
        )
    return settings


def connect(settings: MongoSettings, timeout_ms: int = DEFAULT_TIMEOUT_MS):
    """A pymongo Database for ``settings`` (lazy: pymongo connects on first use)."""
    import pymongo

    client = pymongo.MongoClient(
        settings.url,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        # generous: one bulk write of a big batch may take a while on a slow server
        socketTimeoutMS=120_000,
        appname="sem",
    )
    return client[settings.database]


def describe_error(exc: BaseException, settings: MongoSettings) -> str:
    """A one-line, password-free description of a database error."""
    text = f"{type(exc).__name__}: {exc}"
    first_line = text.splitlines()[0] if text else type(exc).__name__
    # pymongo appends timeouts and a topology dump to selection errors: the first clause says it
    for tail in (" (configured timeouts", ", Timeout:", ", full error:"):
        first_line = first_line.split(tail, 1)[0]
    if len(first_line) > 300:
        first_line = first_line[:300] + "..."
    return redact_text(first_line, (settings.password,))
