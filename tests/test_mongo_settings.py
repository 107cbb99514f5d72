"""Which database sem uses (first found wins), and that passwords never show in messages."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from urllib.parse import quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sem_core.errors import ConfigError
from sem_core.mongo import connection
from sem_core.mongo.connection import redact_uri, resolve_settings, uri_password


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    return path


@pytest.fixture
def places(tmp_path, isolated_home):
    """All five places configured, each naming a different database."""
    exp = tmp_path / "exp"
    _write(exp / "experiment_config.yaml", "mongo:\n  url: mongodb://h3:1/from_experiment\n")
    _write(isolated_home / ".config/sem/mongo.yaml", "host: h4\nport: 2\ndatabase: from_sem_yaml\n")
    _write(
        isolated_home / ".config/seml/mongodb.config",
        "username: alice\npassword: pw\nport: 3\ndatabase: from_seml\nhost: h5\n",
    )
    return exp, isolated_home


def test_first_found_wins_in_documented_order(places):
    exp, home = places
    env = {"HOME": str(home), "SEM_MONGO_URL": "mongodb://h2:1/from_env"}
    assert resolve_settings("mongodb://h1:1/from_override", exp, env=env).database == "from_override"
    assert resolve_settings(None, exp, env=env).database == "from_env"
    del env["SEM_MONGO_URL"]
    assert resolve_settings(None, exp, env=env).database == "from_experiment"
    (exp / "experiment_config.yaml").write_text("sem:\n  storage: models/runs\n")
    assert resolve_settings(None, exp, env=env).database == "from_sem_yaml"
    (home / ".config/sem/mongo.yaml").unlink()
    seml = resolve_settings(None, exp, env=env)
    assert seml.database == "from_seml"
    # SEML authenticates against the database itself
    assert seml.url == "mongodb://alice:pw@h5:3/from_seml?authSource=from_seml"
    (home / ".config/seml/mongodb.config").unlink()
    assert resolve_settings(None, exp, env=env) is None


def test_no_setting_means_no_database_and_no_warning(tmp_path, isolated_home):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_settings(None, tmp_path, env={"HOME": str(isolated_home)}) is None


def test_section_with_separate_keys_builds_an_escaped_uri(tmp_path, isolated_home):
    exp = tmp_path / "exp"
    _write(
        exp / "experiment_config.yaml",
        "mongo:\n  host: db.example\n  port: 27017\n  database: lab\n  username: bob\n"
        "  password: 'p@ss:w/rd'\n  auth_source: admin\n  tls: true\n",
    )
    s = resolve_settings(None, exp, env={"HOME": str(isolated_home)})
    assert s.url == f"mongodb://bob:{quote_plus('p@ss:w/rd')}@db.example:27017/lab?authSource=admin&tls=true"
    assert s.password == "p@ss:w/rd"
    assert "p@ss" not in s.display and "p%40ss" not in s.display and "p@ss" not in repr(s)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("mongo:\n  url: mongodb://h:1\n", "names no database"),
        ("mongo:\n  url: http://h:1/db\n", "must start with mongodb://"),
        ("mongo:\n  hostname: h\n", "unknown MongoDB key(s) ['hostname']"),
        ("mongo:\n  host: h\n", "need 'database'"),
        ("mongo:\n  url: mongodb://h/db\n  host: other\n", "either 'url'"),
    ],
)
def test_bad_settings_name_the_file_and_the_fix(tmp_path, isolated_home, text, fragment):
    exp = tmp_path / "exp"
    path = _write(exp / "experiment_config.yaml", text)
    with pytest.raises(ConfigError) as err:
        resolve_settings(None, exp, env={"HOME": str(isolated_home)})
    assert str(path) in str(err.value) and fragment in str(err.value)


def test_env_url_without_database_is_an_error_naming_the_variable(isolated_home):
    with pytest.raises(ConfigError, match=r"env SEM_MONGO_URL: .*names no database"):
        resolve_settings(None, None, env={"HOME": str(isolated_home), "SEM_MONGO_URL": "mongodb://u:secret@h:1"})


@pytest.mark.parametrize("relative", [".config/sem/mongo.yaml", ".config/seml/mongodb.config"])
def test_readable_password_file_warns_with_chmod(isolated_home, relative):
    path = _write(isolated_home / relative, "host: h\ndatabase: d\nusername: u\npassword: hunter2\n", mode=0o644)
    with pytest.warns(UserWarning) as record:
        resolve_settings(None, None, env={"HOME": str(isolated_home)})
    message = str(record[0].message)
    assert str(path) in message and f"chmod 600 {path}" in message and "hunter2" not in message


def test_private_password_file_and_passwordless_files_do_not_warn(isolated_home, tmp_path):
    _write(isolated_home / ".config/sem/mongo.yaml", "host: h\ndatabase: d\nusername: u\npassword: x\n", mode=0o600)
    exp = tmp_path / "exp"
    _write(exp / "experiment_config.yaml", "mongo:\n  url: mongodb://h:1/db\n", mode=0o644)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_settings(None, None, env={"HOME": str(isolated_home)})
        resolve_settings(None, exp, env={"HOME": str(isolated_home)})


passwords = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="*"), min_size=4, max_size=20
)


@given(user=st.from_regex(r"[a-z]{1,8}", fullmatch=True), password=passwords)
def test_redaction_removes_any_password(user, password):
    url = f"mongodb://{user}:{quote_plus(password)}@host:27017/db?authSource=admin"
    assert uri_password(url) == password
    shown = redact_uri(url)
    assert shown == f"mongodb://{user}:***@host:27017/db?authSource=admin"
    message = redact_uri(f"failed for {url} with password {password}", (password,))
    assert password not in message and quote_plus(password) not in message


def test_describe_error_drops_the_password_and_pymongo_noise():
    s = connection.settings_from_url("mongodb://u:hunter2@h:1/db", "test")
    exc = RuntimeError("auth failed for u:hunter2 (configured timeouts: 1ms), Timeout: 3s, Topology: hunter2")
    text = connection.describe_error(exc, s)
    assert "hunter2" not in text and text == "RuntimeError: auth failed for u:***"


def test_a_password_in_the_command_line_override_warns_without_showing_it(isolated_home):
    with pytest.warns(UserWarning, match=r"carries a password on the command line.*SEM_MONGO_URL") as record:
        s = resolve_settings("mongodb://u:hunter2@h:1/db", None, env={"HOME": str(isolated_home)})
    assert s.database == "db" and "hunter2" not in str(record[0].message)
