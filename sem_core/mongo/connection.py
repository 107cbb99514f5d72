"""Which MongoDB to use, how to name it safely in messages, and how to connect.

Settings resolution, first found wins:

1. ``sem.mongo.url=...`` on the command line, else ``sem: mongo: url:`` in experiment_config.yaml
2. environment variable ``SEM_MONGO_URL``
3. the ``mongo:`` section of ``<experiment>/experiment_config.yaml``
4. ``~/.config/sem/mongo.yaml``
5. SEML's ``~/.config/seml/mongodb.config`` (keys host, port, database, username, password)

A ``mongo:`` section / ``mongo.yaml`` holds either ``url`` (a mongodb:// URI naming the
database) or ``host``/``port``/``database``/``username``/``password``/``auth_source``/``tls``.
No setting anywhere = no database (``resolve_settings`` returns None) and no noise.

Passwords never leave this module unredacted except inside the URI handed to pymongo and the
files only the user can read (mode 0600): the temp config file ``sem board`` gives Omniboard and
the sweep's ``mongo-url.json`` Slurm jobs read. Everything shown or written passes through
``redact_uri``; ``MongoSettings.display`` is the URL to name in messages.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

from sem_core.errors import ConfigError, SemError, warn

ENV_VAR = "SEM_MONGO_URL"
SEM_CONFIG_RELATIVE = Path(".config") / "sem" / "mongo.yaml"
SEML_CONFIG_RELATIVE = Path(".config") / "seml" / "mongodb.config"
SECTION_KEYS = {"url", "host", "port", "database", "username", "password", "auth_source", "tls"}
SEML_KEYS = {"host", "port", "database", "username", "password"}
# Short: a job must not hang for pymongo's default 30 s when the database is unreachable.
DEFAULT_TIMEOUT_MS = 3000
REDACTED = "***"

# a URL's scheme, then the rest of its word: the credentials end at the word's LAST "@", so
# a password with an unescaped "@", ":" or "/" is still hidden whole
_URL_IN_TEXT = re.compile(r"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]*://)(\S*)")


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
    def password(self) -> str | None:
        return uri_password(self.url)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every spelling of the password, for ``redact_uri(text, settings.secrets)``."""
        return uri_secrets(self.url)

    def __repr__(self) -> str:
        return f"MongoSettings(url={self.display!r}, database={self.database!r}, source={self.source!r})"


# -- pure helpers ------------------------------------------------------------------------
def redact_uri(text: str, secrets: tuple[str | None, ...] = ()) -> str:
    """``text`` safe to show: in every ``scheme://user:password@host`` the password becomes ``***``;
    credentials that are not a clean ``user:password`` (an unescaped ``@`` in the password, any
    scheme, even a mistyped one) are hidden whole, from ``://`` to the last ``@`` of the URL.
    Every given secret (raw and URL-escaped) is replaced too. sem's one redaction function:
    records, Hydra's files, log lines, errors, markers and terminal output all pass through it."""

    def repl(m: re.Match) -> str:
        scheme, rest = m.group(1), m.group(2)
        at = rest.rfind("@")
        if at < 0:
            return m.group(0)
        userinfo, host = rest[:at], rest[at:]
        user, sep, _password = userinfo.partition(":")
        if sep and user and not re.search(r"[@/?#\s]", userinfo):
            return f"{scheme}{user}:{REDACTED}{host}"
        if not sep and not re.search(r"[@/?#\s]", userinfo):
            return m.group(0)  # a user name alone: nothing secret
        return f"{scheme}{REDACTED}{host}"

    text = _URL_IN_TEXT.sub(repl, str(text))
    for secret in secrets:
        for spelling in secret_spellings(secret):
            text = text.replace(spelling, REDACTED)
    return text


def secret_spellings(secret: str | None) -> set[str]:
    """The ways a password can be written: raw and URL-escaped (both escapers)."""
    if not secret or secret == REDACTED:
        return set()
    return {s for s in (secret, quote_plus(secret), quote(secret, safe="")) if s}


def _userinfo(uri: str) -> str | None:
    m = _URL_IN_TEXT.match(str(uri).strip())
    if not m or "@" not in m.group(2):
        return None
    return m.group(2).rsplit("@", 1)[0]


def uri_password(uri: str) -> str | None:
    """The decoded password of a URI (credentials up to the last ``@``), or None."""
    userinfo = _userinfo(uri)
    if not userinfo or ":" not in userinfo:
        return None
    return unquote_plus(userinfo.split(":", 1)[1]) or None


def uri_secrets(uri: str) -> tuple[str, ...]:
    """What must never be shown of ``uri``: its password as written and decoded (for a malformed
    URL, everything between ``://`` and the last ``@``)."""
    userinfo = _userinfo(uri)
    if not userinfo:
        return ()
    if ":" in userinfo:
        password = userinfo.split(":", 1)[1]
    elif re.search(r"[@/?#\s]", userinfo):
        password = userinfo  # malformed: no telling where the user name ends
    else:
        return ()  # a user name alone
    return tuple(s for s in {password, unquote_plus(password)} if s and s != REDACTED)


def uri_database(uri: str) -> str | None:
    """The database named in the path of a mongodb:// URI, or None."""
    m = re.match(r"^mongodb(?:\+srv)?://(?:.*@)?[^/@]*/([^?]*)", uri)
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
    if not isinstance(url, str):
        raise ConfigError(
            f"{source}: the MongoDB url must be a string like mongodb://HOST:PORT/DATABASE, got {type(url).__name__}"
        )
    url = url.strip()
    if not url.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigError(
            f"{source}: MongoDB url must start with mongodb:// or mongodb+srv:// (got {redact_uri(url)!r})"
        )
    userinfo = _userinfo(url)
    if userinfo is not None and re.search(r"[@/?#\s]|%(?![0-9A-Fa-f]{2})", userinfo):
        # pymongo would refuse it in every job, and the cut would show part of the password
        raise ConfigError(
            f"{source}: the user name or password in the MongoDB url {redact_uri(url)!r} holds a character that "
            "must be URL-escaped (@ : / ? # % or a space); escape it with urllib.parse.quote_plus, or give "
            "username and password as separate keys in ~/.config/sem/mongo.yaml"
        )
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
        warn(
            f"{path} holds a MongoDB password and is readable by other users "
            f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}"
        )


def resolve_settings(
    override_url: str | None = None,
    experiment_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
    override_file: Path | None = None,
) -> MongoSettings | None:
    """The first configured database (see module docstring), or None when there is none.
    ``override_file``: the ``experiment_config.yaml`` whose ``sem: mongo: url:`` gave
    ``override_url`` (None: it was typed on the command line)."""
    from sem_core.settings import EXPERIMENT_CONFIG_NAME, read_yaml

    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home()) if home is None else Path(home)

    if override_url:
        if override_file is not None:
            settings = settings_from_url(override_url, f"{override_file} (sem.mongo.url)")
            if settings.password:
                warn_if_readable_by_others(Path(override_file))
            return settings
        settings = settings_from_url(override_url, "sem.mongo.url on the command line")
        if settings.password:
            warn(
                f"sem.mongo.url={settings.display} carries a password on the command line, where shell history "
                "keeps it (sem keeps it out of its own and Hydra's files and logs); put the URL in "
                "SEM_MONGO_URL or ~/.config/sem/mongo.yaml (mode 600) instead"
            )
        return settings
    if experiment_dir is not None and override_file is None:
        path = Path(experiment_dir) / EXPERIMENT_CONFIG_NAME
        file_url = sem_section_url(read_yaml(path) if path.exists() else None, path)
        if file_url is not None:
            return resolve_settings(file_url, experiment_dir, env, home, override_file=path)
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


def require_settings(override_url: str | None = None, experiment_dir: Path | None = None) -> MongoSettings:
    """``resolve_settings`` for the commands that need a database: none configured is an error
    that lists where sem looks."""
    settings = resolve_settings(override_url=override_url, experiment_dir=experiment_dir)
    if settings is None:
        raise SemError(
            "no MongoDB configured: set SEM_MONGO_URL=mongodb://HOST:PORT/DATABASE, a 'mongo:' section in "
            "experiment_config.yaml, ~/.config/sem/mongo.yaml or SEML's ~/.config/seml/mongodb.config"
        )
    return settings


def connect(settings: MongoSettings, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Any:
    """A pymongo Database for ``settings`` (lazy: pymongo connects on first use)."""
    import pymongo

    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
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
    return redact_uri(first_line, settings.secrets)


# -- the settings layer's hand-over to jobs ----------------------------------------------
# The sweep's process resolves the database once, before Hydra composes any config; the
# config tree only ever holds the redacted URL. Jobs take the real one from the sweep's task
# (``SemTask.database``): forked jobs inherit it, Slurm jobs read it from the sweep's private
# file (``write_secret_file``).
SECRET_FILE_NAME = "mongo-url.json"


def _override_entries(hydra_argv: list[str]) -> list[tuple[int, Any]]:
    """(position in argv, parsed override) of the overrides of ``sem.mongo`` and its keys."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parsed, _unknown = get_args_parser().parse_known_args(list(hydra_argv))
    texts = set(parsed.overrides or [])
    found = []
    parser = OverridesParser.create()
    for i, text in enumerate(hydra_argv):
        if text not in texts or "sem.mongo" not in text:
            continue
        try:
            (ov,) = parser.parse_overrides([text])
        except OverrideParseException:
            # Hydra reports the syntax error itself; the text must not reach its message whole
            raise ConfigError(
                f"cannot parse the override {redact_uri(text)!r}: quote the URL, "
                "e.g. sem.mongo.url='mongodb://HOST:PORT/DATABASE'"
            ) from None
        if ov.key_or_group == "sem.mongo" or ov.key_or_group.startswith("sem.mongo."):
            found.append((i, ov))
    return found


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def resolve_for_sweep(
    hydra_argv: list[str], experiment_config: Mapping[str, Any], experiment_dir: Path
) -> tuple[list[str], MongoSettings | None]:
    """Resolve the sweep's database before Hydra starts (a bad setting fails here, before any
    job, naming where it was set). Returns ``hydra_argv`` with any ``sem.mongo.url=`` URL
    replaced by its redacted form (Hydra saves, logs and prints its overrides and config, so
    the password must never reach them), and the database (None: none configured)."""
    from sem_core.settings import EXPERIMENT_CONFIG_NAME

    sem_section_url(experiment_config, Path(experiment_dir) / EXPERIMENT_CONFIG_NAME)  # a bad one fails here
    argv = list(hydra_argv)
    override = None
    for i, ov in _override_entries(argv):
        if ov.key_or_group != "sem.mongo.url":
            raise ConfigError(f"{redact_uri(ov.input_line)}: set the database with sem.mongo.url=URL")
        if ov.is_sweep_override():
            raise ConfigError("sem.mongo.url: one database per sweep (got a sweep of URLs)")
        value = None if ov.type.name == "DEL" else ov.value()
        if value is not None and not isinstance(value, str):
            raise ConfigError(
                f"sem.mongo.url on the command line must be a mongodb:// URL, got {redact_uri(str(value))}"
            )
        override = value
        if value is not None:
            prefix = ov.input_line[: ov.input_line.index("sem.mongo.url")]
            argv[i] = f"{prefix}sem.mongo.url={_quoted(redact_uri(value))}"
    return argv, resolve_settings(override, experiment_dir)


def sem_section_url(experiment_config: Any, path: Path) -> str | None:
    """The ``sem: mongo: url:`` of an experiment config (checked: a bad one names the file and key)."""
    sem_section = experiment_config.get("sem") if isinstance(experiment_config, Mapping) else None
    if not isinstance(sem_section, Mapping) or sem_section.get("mongo") is None:
        return None
    mongo = sem_section["mongo"]
    if not isinstance(mongo, Mapping):
        raise ConfigError(
            f"{path}: sem.mongo must be a mapping such as 'mongo: {{url: mongodb://HOST:PORT/DATABASE}}'"
            f", got {redact_uri(repr(mongo))}"
        )
    unknown = sorted(str(k) for k in mongo if k != "url")
    if unknown:
        raise ConfigError(f"{path}: sem.mongo: unknown key(s) {unknown}; the only key is 'url'")
    if mongo.get("url") is None:
        return None
    settings_from_url(mongo["url"], f"{path} (sem.mongo.url)")  # checked now: a string, the scheme, a database
    return mongo["url"]


def write_secret_file(folder: Path, settings: MongoSettings) -> Path:
    """The sweep's database for jobs on other nodes, in ONE file only the user can read (mode
    0600 from its creation, never wider): never in a job script, a payload or the environment."""
    import json

    folder = Path(folder)
    path = folder / SECRET_FILE_NAME
    tmp = folder / f".{SECRET_FILE_NAME}.{os.getpid()}.tmp"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o600)
        json.dump({"url": settings.url, "database": settings.database, "source": settings.source}, fh)
    os.replace(tmp, path)
    return path


def read_secret_file(path: Path) -> MongoSettings:
    import json

    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return MongoSettings(url=data["url"], database=data["database"], source=data["source"])
