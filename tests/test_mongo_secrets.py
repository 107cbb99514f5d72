"""A MongoDB password never reaches a file, a log line or the terminal.

Every way a URL can be given, live sync with forked jobs, ``sem sync``, Slurm jobs, an unreachable
database and malformed settings, with a password holding ``@ : / %`` and non-ASCII characters.
After each path every file sem, Hydra and Slurm wrote, the database and the captured output are
searched for the password, raw and URL-escaped. The database requires authentication: SecantusDB
enforces SCRAM users (a wrong password is refused), so a sync that worked used the real password.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from tests.conftest import run_model

pytestmark = pytest.mark.mongo

PASSWORD = "Zq@7:x/9%Üñ€k"
SPELLINGS = tuple({PASSWORD, quote_plus(PASSWORD), quote(PASSWORD, safe=""), "Zq@7:x/9"})
USER = "semuser"

MODEL = """
from sem_core import Experiment

ex = Experiment(__file__)

@ex.configs
def get_config():
    return [{"name": "row", "i": i} for i in range(3)]

@ex.automain
def main(config):
    ex.log_scalar("loss", 1.0 / (config["i"] + 1))
    return config["i"]
"""
LOCAL = ("hydra/launcher=local", "hydra.launcher.n_jobs=3")


def sem(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sem_core.cli", *args],
        cwd=cwd,
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_no_password(*, text: str = "", folders: tuple = (), db=None, allowed: tuple = ()) -> None:
    for spelling in SPELLINGS:
        assert spelling not in text, f"password ({spelling!r}) in the terminal output:\n{text[-3000:]}"
    for folder in folders:
        for path in Path(folder).rglob("*"):
            if not path.is_file() or path in allowed or path.stat().st_size > 50_000_000:
                continue
            data = path.read_bytes()
            for spelling in SPELLINGS:
                assert spelling.encode() not in data, f"password ({spelling!r}) written to {path}"
    if db is not None:
        for name in db.list_collection_names():
            dumped = json.dumps(list(db[name].find()), default=repr)
            for spelling in SPELLINGS:
                assert spelling not in dumped, f"password ({spelling!r}) in the database collection {name}"


@pytest.fixture
def auth_db(mongo_server, connect):
    """A database of this test's own whose user has the password; (database, its URL with the password)."""
    name = "sec_" + uuid.uuid4().hex[:8]
    admin = connect(mongo_server.url(name))
    admin[name].command("createUser", USER, pwd=PASSWORD, roles=[{"role": "readWrite", "db": name}])
    url = f"mongodb://{USER}:{quote_plus(PASSWORD)}@{mongo_server.address}/{name}?authSource={name}"
    # a wrong password is refused: this server checks credentials
    import pymongo.errors

    wrong = connect(url.replace(quote_plus(PASSWORD), "nope"), serverSelectionTimeoutMS=3000)
    with pytest.raises(pymongo.errors.OperationFailure):
        wrong[name].runs.find_one()
    return admin[name], url, name


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    return path


SOURCES = ["command line", "env", "sem section", "mongo section", "mongo.yaml", "seml"]


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES)
def test_each_source_syncs_live_and_with_sem_sync_and_the_password_is_nowhere(
    source, write_model, auth_db, mongo_server, isolated_home
):
    db, url, name = auth_db
    model = write_model(MODEL)
    exp = model.parent.parent
    host, port = mongo_server.address.split(":")
    args, env, secret_files = list(LOCAL), {"HOME": str(isolated_home)}, []
    sync_args: list[str] = []
    if source == "command line":
        args.append(f"sem.mongo.url='{url}'")
        sync_args = ["--url", url]
    elif source == "env":
        env["SEM_MONGO_URL"] = url
    elif source == "sem section":
        secret_files.append(_write(exp / "experiment_config.yaml", f"sem:\n  mongo:\n    url: '{url}'\n"))
    elif source == "mongo section":
        secret_files.append(_write(exp / "experiment_config.yaml", f"mongo:\n  url: '{url}'\n"))
    elif source == "mongo.yaml":
        secret_files.append(
            _write(
                isolated_home / ".config/sem/mongo.yaml",
                json.dumps(
                    {
                        "host": host,
                        "port": int(port),
                        "database": name,
                        "username": USER,
                        "password": PASSWORD,
                        "auth_source": name,
                    }
                ),
            )
        )
    else:
        secret_files.append(
            _write(
                isolated_home / ".config/seml/mongodb.config",
                json.dumps({"host": host, "port": int(port), "database": name, "username": USER, "password": PASSWORD}),
            )
        )

    res = run_model(model, *args, env=env)
    output = res.stdout + res.stderr
    assert res.returncode == 0, output[-3000:]
    assert db.runs.count_documents({"status": "COMPLETED"}) == 3  # authenticated: the real password reached pymongo
    assert "came from the command line" not in output
    assert ("carries a password on the command line" in output) == (source == "command line")
    # Hydra's saved config shows where the database is, never the password
    saved = sorted(exp.rglob(".hydra/config.yaml"))
    assert len(saved) == 3
    if source in ("command line", "sem section"):
        assert all(f"{USER}:***@{mongo_server.address}" in p.read_text() for p in saved)

    # `sem sync` of the same store: everything is there already, nothing leaks either
    db.runs.update_one({}, {"$set": {"sem.fingerprint": "stale"}})
    synced = sem("sync", "-q", str(exp), *sync_args, env=env, cwd=exp)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "unchanged" in synced.stdout

    # --cfg prints the composed config: the URL there is redacted too
    cfg = run_model(model, "--cfg", "job", *args, env=env)
    assert cfg.returncode == 0, cfg.stderr[-2000:]

    assert_no_password(
        text=output + synced.stdout + synced.stderr + cfg.stdout + cfg.stderr,
        folders=(exp,),
        db=db,
        allowed=tuple(secret_files),
    )


@pytest.mark.slow
def test_an_unreachable_database_warns_once_per_sweep_and_counts_the_runs_waiting(write_model, isolated_home):
    from tests.mongo_fixtures import free_port

    model = write_model(MODEL)
    exp = model.parent.parent
    url = f"mongodb://{USER}:{quote_plus(PASSWORD)}@127.0.0.1:{free_port()}/lab"
    res = run_model(model, *LOCAL, env={"HOME": str(isolated_home), "SEM_MONGO_URL": url})
    output = res.stdout + res.stderr
    assert res.returncode == 0, output[-3000:]
    assert output.count("is unreachable") == 1, output
    assert "3 runs in" in output and "waiting for `sem sync`" in output, output
    markers = list((exp / "models" / "runs").glob("*/.sem-unsynced"))
    assert len(markers) == 3
    assert all(f"{USER}:***@127.0.0.1" in m.read_text() or "unreachable" in m.read_text() for m in markers)
    # `sem sync` against the same dead database: a clear error, no password
    synced = sem("sync", str(exp), env={"HOME": str(isolated_home), "SEM_MONGO_URL": url}, cwd=exp)
    assert synced.returncode != 0
    assert f"{USER}:***@127.0.0.1" in synced.stdout + synced.stderr
    assert_no_password(text=output + synced.stdout + synced.stderr, folders=(exp,))


UNESCAPED = f"mongodb://{USER}:" + quote_plus(PASSWORD).replace("%40", "@") + "@127.0.0.1:1/lab"


@pytest.mark.parametrize(
    "how, setting, expected",
    [
        ("env", f"mongdb://{USER}:{quote_plus(PASSWORD)}@h:1/lab", "must start with mongodb://"),
        ("env", f"MONGODB://{USER}:{quote_plus(PASSWORD)}@h:1/lab", "must start with mongodb://"),
        ("env", UNESCAPED, "must be URL-escaped"),
        ("command line", UNESCAPED, "must be URL-escaped"),
        ("command line", f"mongdb://{USER}:{quote_plus(PASSWORD)}@h:1/lab", "must start with mongodb://"),
        ("file", f"sem:\n  mongo:\n    url: '{UNESCAPED}'\n", "(sem.mongo.url)"),
        ("file", f"sem:\n  mongo:\n    url: 'mongdb://{USER}:{PASSWORD}@h:1/lab'\n", "(sem.mongo.url)"),
        ("file", f"mongo:\n  url: 'MONGODB://{USER}:{PASSWORD}@h:1/lab'\n", "(section mongo)"),
        ("file", "sem:\n  mongo: 5\n", "sem.mongo must be a mapping"),
        ("file", "sem:\n  mongo:\n    url: notaurl\n", "(sem.mongo.url): MongoDB url must start with mongodb://"),
    ],
)
def test_a_bad_setting_fails_before_any_job_with_one_line_and_no_password(
    how, setting, expected, write_model, isolated_home
):
    model = write_model(MODEL)
    exp = model.parent.parent
    env, args, allowed = {"HOME": str(isolated_home)}, [], ()
    if how == "env":
        env["SEM_MONGO_URL"] = setting
    elif how == "command line":
        args = [f"sem.mongo.url='{setting}'"]
    else:
        allowed = (_write(exp / "experiment_config.yaml", setting),)
    res = run_model(model, *LOCAL, *args, env=env)
    output = res.stdout + res.stderr
    assert res.returncode == 1, output[-3000:]
    errors = [line for line in output.splitlines() if "error" in line]
    assert len(errors) == 1 and expected in errors[0], output
    if how == "file":
        assert str(exp / "experiment_config.yaml") in errors[0]
    assert "Traceback" not in output
    assert not (exp / "models" / "runs").exists()  # no job started
    assert_no_password(text=output, folders=(exp,), allowed=allowed)


def test_the_redaction_hides_malformed_credentials_whole():
    from sem_core.mongo.connection import redact_uri

    assert (
        redact_uri(f"x mongodb://{USER}:{quote_plus(PASSWORD)}@h:1/db?authSource=db y")
        == f"x mongodb://{USER}:***@h:1/db?authSource=db y"
    )
    for url in (
        f"mongodb://{USER}:{PASSWORD}@h:1/db",
        f"mongdb://{USER}:{PASSWORD}@h/db",
        f"MONGODB://{PASSWORD}@h/db",
    ):
        shown = redact_uri(f"failed: '{url}' (retrying)")
        assert "@h" in shown and not any(s in shown for s in SPELLINGS), shown
    assert redact_uri(f"bad password {PASSWORD}", (PASSWORD,)) == "bad password ***"


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_jobs_get_the_database_from_a_private_file_only(write_model, auth_db, isolated_home):
    from tests.services import missing_service
    from tests.test_slurm_cluster import LAUNCH, _cluster_problem

    problem = _cluster_problem()
    if problem:
        missing_service(problem)
    db, url, _name = auth_db
    model = write_model(MODEL)
    exp = model.parent.parent
    res = run_model(model, *LAUNCH, env={"HOME": str(isolated_home), "SEM_MONGO_URL": url}, timeout=240)
    output = res.stdout + res.stderr
    assert res.returncode == 0, output[-3000:]
    assert db.runs.count_documents({"status": "COMPLETED"}) == 3
    secret = list(exp.rglob("mongo-url.json"))
    assert len(secret) == 1 and stat.S_IMODE(secret[0].stat().st_mode) == 0o600
    assert list(secret[0].parent.glob("*.pkl")) and list(secret[0].parent.glob("*.sh"))  # payloads, job scripts
    slurm_state = Path(os.environ.get("SEM_SLURM_BASE", "/tmp/sem-slurm")) / "state"
    folders = (exp,) + ((slurm_state,) if slurm_state.is_dir() and os.access(slurm_state, os.R_OK) else ())
    assert_no_password(text=output, folders=folders, db=db, allowed=tuple(secret))
