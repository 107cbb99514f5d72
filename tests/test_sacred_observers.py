"""sacred's own observers attached to sem runs, each against the real thing (a SQLite file,
TinyDB + hashfs, sacred's file store, an HTTP server for Slack, W&B offline), each read back
and compared with sem's own record of the same run."""

from __future__ import annotations

import http.server
import inspect
import json
import re
import sys
import threading
from pathlib import Path

import pytest

from sem_core.observers.attached import REDACTED, AttachedObserver, redact_settings, secrets_in
from sem_core.observers.base import RunObserver
from sem_core.observers.file import FileStorageObserver
from sem_core.observers.mongo import MongoLiveObserver
from tests.conftest import load_store, run_model

sacred = pytest.importorskip("sacred")

SACRED_EVENTS = [
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
]

# row 0 completes, row 1 fails; each logs metrics, adds an artifact and a resource, prints
MODEL = """
import sys
from pathlib import Path
from sem_core import Experiment

ex = Experiment(__file__)
{attach}

@ex.configs
def configs():
    return [{{"lr": 0.1, "fail": False}}, {{"lr": 0.2, "fail": True}}]

@ex.automain
def main(config):
    for step in range(5):
        ex.log_scalar("loss", config["lr"] * (5 - step))
    ex.log_scalar("acc", 0.5)
    out = Path("weights_" + str(config["order_id"]) + ".txt")
    out.write_text("weights of row " + str(config["order_id"]))
    ex.add_artifact(out, name="weights.txt")
    ex.add_resource(Path(__file__).with_name("data.csv"))
    print("training row", config["order_id"])
    ex.info["sacred_imported"] = "sacred" in sys.modules
    if config["fail"]:
        raise RuntimeError("row 1 fails on purpose")
    return config["lr"] * 10  # a number: sacred's SqlObserver stores results in a float column
"""


def write(write_model, attach: str = "", experiment_config: str | None = None) -> Path:
    model = write_model(MODEL.format(attach=attach), experiment_config=experiment_config)
    (model.parent / "data.csv").write_text("x,y\n1,2\n")
    return model


def observers_config(target: str, **settings: object) -> str:
    """experiment_config.yaml attaching one observer."""
    lines = "".join(f"      {key}: {value}\n" for key, value in settings.items())
    return f"sem:\n  observers:\n    - _target_: {target}\n{lines}"


def sem_runs(model: Path) -> dict[int, dict]:
    return {r["config"]["order_id"]: r for r in load_store(model.parent / "runs")}


def sacred_imported(run: dict) -> bool:
    return json.loads((run["dir"] / "info.json").read_text())["sacred_imported"]


def run_both_rows(model: Path, *args: str):
    proc = run_model(model, "hydra.job.chdir=true", *args)
    # row 1 fails on purpose: the sweep reports it and exits 1
    assert proc.returncode == 1, proc.stdout + proc.stderr
    runs = sem_runs(model)
    assert runs[0]["run"]["status"] == "COMPLETED" and runs[1]["run"]["status"] == "FAILED", proc.stderr
    return proc, runs


# -- the interface ----------------------------------------------------------------------
@pytest.mark.parametrize("cls", [RunObserver, FileStorageObserver, MongoLiveObserver, AttachedObserver])
def test_sem_observers_have_sacreds_events_with_sacreds_arguments(cls):
    from sacred.observers import RunObserver as SacredRunObserver

    for event in SACRED_EVENTS:
        ours = inspect.signature(getattr(cls, event))
        theirs = inspect.signature(getattr(SacredRunObserver, event))
        assert list(ours.parameters) == list(theirs.parameters), (cls.__name__, event)
        assert [p.default for p in ours.parameters.values()] == [p.default for p in theirs.parameters.values()]


class EventLog:
    """A duck-typed observer (sacred's interface, no base class) that writes down what it gets."""

    def __init__(self, path):
        self.path = Path(path)
        self.priority = 0

    def _log(self, event, **kwargs):
        with self.path.open("a") as fh:
            fh.write(json.dumps([event, sorted(kwargs), {k: type(v).__name__ for k, v in kwargs.items()}]) + "\n")


for _event in SACRED_EVENTS:
    setattr(EventLog, _event, (lambda event: lambda self, **kw: self._log(event, **kw))(_event))


def event_sequence(path: Path) -> list:
    """Events in order; consecutive heartbeat events (log_metrics, heartbeat_event) become one
    block of the distinct calls in it (how many beats fall in a run depends on its duration)."""
    beat = ("log_metrics", "heartbeat_event")
    out: list = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry[0] in beat and out and out[-1][0] == "beats":
            if entry not in out[-1][1]:
                out[-1][1].append(entry)
            continue
        out.append(["beats", [entry]] if entry[0] in beat else entry)
    return out


def test_an_observer_gets_sacreds_events_arguments_and_order(write_model, tmp_path):
    """The same observer attached to a real sacred experiment and to a sem model file gets the
    same sequence of events, with the same keyword arguments of the same types."""
    sacred_log, sem_log = tmp_path / "sacred.jsonl", tmp_path / "sem.jsonl"
    script = tmp_path / "with_sacred.py"
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(Path(__file__).parent.parent)!r})\n"
        + "from sacred import Experiment\nfrom tests.test_sacred_observers import EventLog\n"
        + f"ex = Experiment('s')\nex.observers.append(EventLog({str(sacred_log)!r}))\n"
        + "@ex.main\ndef main(_run):\n"
        + "    for i in range(5): _run.log_scalar('loss', 1.0 / (i + 1))\n"
        + "    open('w.txt', 'w').write('w')\n    _run.add_artifact('w.txt', name='weights.txt')\n"
        + "    print('hello')\n    return 3\n"
        + "ex.run(options={'--capture': 'sys', '--id': 'g1'})\n"  # sem hands its global_id as _id
    )
    import subprocess

    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    model = write_model(
        f"import sys\nsys.path.insert(0, {str(Path(__file__).parent.parent)!r})\n"
        + "from sem_core import Experiment\nfrom tests.test_sacred_observers import EventLog\n"
        + f"ex = Experiment(__file__)\nex.observers.append(EventLog({str(sem_log)!r}))\n"
        + "@ex.configs\ndef configs():\n    return [{'a': 1}]\n"
        + "@ex.automain\ndef main(config):\n"
        + "    for i in range(5): ex.log_scalar('loss', 1.0 / (i + 1))\n"
        + "    open('w.txt', 'w').write('w')\n    ex.add_artifact('w.txt', name='weights.txt')\n"
        + "    print('hello')\n    return 3\n"
    )
    proc = run_model(model, "hydra.job.chdir=true")
    assert proc.returncode == 0, proc.stderr
    assert event_sequence(sem_log) == event_sequence(sacred_log)


# -- sacred's observers, read back ---------------------------------------------------------
def test_sql_observer_on_sqlite_holds_what_sems_record_holds(write_model, tmp_path):
    sqlalchemy = pytest.importorskip("sqlalchemy")
    db = tmp_path / "runs.sqlite"
    model = write(
        write_model,
        attach=f"from sacred.observers import SqlObserver\nex.observers.append(SqlObserver({f'sqlite:///{db}'!r}))",
    )
    _, runs = run_both_rows(model)
    engine = sqlalchemy.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        rows = {r.run_id: r for r in conn.execute(sqlalchemy.text("select * from run")).fetchall()}
        artifacts = [
            tuple(r) for r in conn.execute(sqlalchemy.text("select run_id, filename from artifact")).fetchall()
        ]
    assert set(rows) == {runs[i]["config"]["global_id"] for i in (0, 1)}
    assert sorted(artifacts) == sorted((runs[i]["config"]["global_id"], "weights.txt") for i in (0, 1))
    for i, sem in runs.items():
        sql = rows[sem["config"]["global_id"]]
        assert sql.status == sem["run"]["status"]
        assert json.loads(sql.config) == sem["config"]
        assert sql.command == sem["run"]["command"] == "main"
        assert f"training row {i}" in sql.captured_out
    assert rows[runs[0]["config"]["global_id"]].result == runs[0]["run"]["result"]
    assert "row 1 fails on purpose" in rows[runs[1]["config"]["global_id"]].fail_trace
    # a plain run of the same file without the observer imports no sacred (next test)
    assert sacred_imported(runs[0]) is True


def test_a_plain_run_does_not_import_sacred(write_model):
    model = write(write_model)
    _, runs = run_both_rows(model)
    assert sacred_imported(runs[0]) is False


def test_tinydb_observer_from_experiment_config_holds_what_sems_record_holds(write_model, tmp_path):
    pytest.importorskip("tinydb")
    pytest.importorskip("hashfs")
    db = tmp_path / "tiny"
    model = write(
        write_model,
        experiment_config=observers_config("sacred.observers.TinyDbObserver", path=db),
    )
    _, runs = run_both_rows(model)
    from sacred.observers import TinyDbReader

    reader = TinyDbReader(str(db))
    stored = {r["_id"]: r for r in reader.runs.all()}
    assert set(stored) == {runs[i]["config"]["global_id"] for i in (0, 1)}
    for i, sem in runs.items():
        tiny = stored[sem["config"]["global_id"]]
        assert tiny["status"] == sem["run"]["status"]
        assert tiny["config"] == sem["config"]
        assert [a[0] for a in tiny["artifacts"]] == sem["run"]["artifacts"] == ["weights.txt"]
        assert len(tiny["resources"]) == len(sem["run"]["resources"]) == 1
        assert f"training row {i}" in tiny["captured_out"]
        # the artifact's bytes, from hashfs, are the ones sem stored
        files = reader.fetch_files(indices=[list(stored).index(sem["config"]["global_id"])])[0]
        assert files["artifacts"]["weights.txt"].read() == (sem["dir"] / "weights.txt").read_bytes()
    assert stored[runs[0]["config"]["global_id"]]["result"] == runs[0]["run"]["result"]
    assert "row 1 fails on purpose" in "".join(stored[runs[1]["config"]["global_id"]]["fail_trace"])


def test_sacreds_file_storage_and_sems_store_agree_field_by_field(write_model, tmp_path):
    theirs = tmp_path / "sacred_runs"
    model = write(
        write_model,
        experiment_config=observers_config("sacred.observers.FileStorageObserver", basedir=theirs),
    )
    _, runs = run_both_rows(model)
    for sem in runs.values():
        folder = theirs / sem["config"]["global_id"]  # sem hands its global_id as sacred's _id
        run = json.loads((folder / "run.json").read_text())
        assert json.loads((folder / "config.json").read_text()) == sem["config"]
        for key in ("status", "result", "command", "artifacts"):
            assert run.get(key) == sem["run"].get(key), key
        assert run["host"] == sem["run"]["host"]
        assert run["experiment"]["name"] == sem["run"]["experiment"]["name"]
        assert [s[0] for s in run["experiment"]["sources"]] == [s[0] for s in sem["run"]["experiment"]["sources"]]
        assert json.loads((folder / "metrics.json").read_text()) == json.loads(
            (sem["dir"] / "metrics.json").read_text()
        )
        assert (folder / "weights.txt").read_bytes() == (sem["dir"] / "weights.txt").read_bytes()
        assert (folder / "cout.txt").read_text() == (sem["dir"] / "cout.txt").read_text()
        for key in ("start_time", "stop_time"):  # sacred's naive UTC, sem's aware UTC: the same instant
            assert run[key] == sem["run"][key].replace("+00:00", "")
    assert "row 1 fails on purpose" in "".join(
        json.loads((theirs / runs[1]["config"]["global_id"] / "run.json").read_text())["fail_trace"]
    )


def test_sacreds_file_storage_records_an_interrupted_run_as_sem_does(write_model, tmp_path):
    """SIGTERM (kill, timeout, docker stop) mid-run: the attached observer gets sacred's
    interrupted_event after sem's record is written; both say INTERRUPTED, with the output and
    metrics of the run so far."""
    import os
    import signal
    import subprocess
    import time

    theirs = tmp_path / "sacred_runs"
    started = tmp_path / "started"
    model = write_model(
        "import time\nfrom pathlib import Path\nfrom sem_core import Experiment\nex = Experiment(__file__)\n"
        "@ex.configs\ndef configs():\n    return [{'a': 1}]\n"
        "@ex.automain\ndef main(config):\n    ex.log_scalar('progress', 1)\n    print('working', flush=True)\n"
        f"    Path({str(started)!r}).touch()\n    time.sleep(600)\n",
        experiment_config=observers_config("sacred.observers.FileStorageObserver", basedir=theirs),
    )
    proc = subprocess.Popen(
        [sys.executable, str(model), "sem.heartbeat_interval=60"],
        cwd=model.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120  # only against a hang
        while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert started.exists(), proc.communicate(timeout=5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, err
    (sem,) = load_store(model.parent / "runs")
    run = json.loads((theirs / sem["config"]["global_id"] / "run.json").read_text())
    assert run["status"] == sem["run"]["status"] == "INTERRUPTED"
    assert run["stop_time"] == sem["run"]["stop_time"].replace("+00:00", "")
    assert "working" in (theirs / sem["config"]["global_id"] / "cout.txt").read_text()
    sacred_metrics = json.loads((theirs / sem["config"]["global_id"] / "metrics.json").read_text())
    assert sacred_metrics["progress"]["values"] == [1]


# -- Slack, through a local HTTP server -------------------------------------------------------
class _Hook(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    handler = type("Hook", (_Hook,), {"received": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/services/T0SEM/B0SEM/xoxbSecretToken123", handler.received
    server.shutdown()


def files_holding(root: Path, text: str, skip: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p != skip and text.encode() in p.read_bytes()]


def test_slack_observer_posts_on_completion_and_on_failure_and_its_url_stays_secret(write_model, tmp_path, webhook):
    url, received = webhook
    model = write(
        write_model,
        experiment_config=observers_config("sacred.observers.SlackObserver", webhook_url=url),
    )
    proc, runs = run_both_rows(model)
    texts = [body["attachments"][0]["text"] if "attachments" in body else body.get("text", "") for _, body in received]
    assert len(received) == 2, received
    assert {path for path, _ in received} == {"/services/T0SEM/B0SEM/xoxbSecretToken123"}
    assert any("completed" in t for t in texts) and any("failed" in t for t in texts)
    # the webhook URL (its token) is in experiment_config.yaml only: not in Hydra's saved
    # config, the records, the logs, the terminal
    exp = model.parent.parent
    assert files_holding(exp, "xoxbSecretToken123", skip=exp / "experiment_config.yaml") == []
    assert "xoxbSecretToken123" not in proc.stdout + proc.stderr
    saved = next(exp.rglob(".hydra/config.yaml")).read_text()
    assert REDACTED in saved and "SlackObserver" in saved


def test_an_observer_that_raises_is_reported_without_its_secret_and_the_record_is_complete(write_model, tmp_path):
    # nothing listens on port 9: every post fails
    url = "http://127.0.0.1:9/services/T0SEM/B0SEM/xoxbSecretToken123"
    model = write(
        write_model,
        experiment_config=observers_config("sacred.observers.SlackObserver", webhook_url=url),
    )
    proc, runs = run_both_rows(model)
    assert re.search(r"observer SlackObserver: completed_event raised \w*ConnectionError", proc.stderr), proc.stderr
    assert "xoxbSecretToken123" not in proc.stdout + proc.stderr
    exp = model.parent.parent
    assert files_holding(exp, "xoxbSecretToken123", skip=exp / "experiment_config.yaml") == []
    # sem's record of the completed row is whole
    assert runs[0]["run"]["result"] == 1.0
    assert json.loads((runs[0]["dir"] / "metrics.json").read_text())["loss"]["values"] == pytest.approx(
        [0.5, 0.4, 0.3, 0.2, 0.1]
    )


def test_a_bad_observer_entry_is_one_line_before_any_job(write_model):
    model = write(write_model, experiment_config="sem:\n  observers:\n    - webhook_url: http://x/y/zzzzzzzzzz\n")
    proc = run_model(model)
    assert proc.returncode == 1
    assert "sem.observers[0] needs `_target_: package.module.ObserverClass`" in proc.stderr
    assert "zzzzzzzzzz" not in proc.stderr
    assert not (model.parent / "runs").exists()


def test_an_observer_from_a_package_not_installed_is_one_line_before_any_job(write_model):
    model = write(
        write_model, experiment_config=observers_config("neptune_nowhere.NeptuneObserver", api_token="tkn12345")
    )
    proc = run_model(model)
    assert proc.returncode == 1
    assert "sem.observers[0] _target_ neptune_nowhere.NeptuneObserver: no module named 'neptune_nowhere'" in proc.stderr
    assert "tkn12345" not in proc.stderr
    assert not (model.parent / "runs").exists()


def test_an_observer_that_cannot_be_made_is_reported_and_the_run_goes_on(write_model):
    model = write(
        write_model, experiment_config="sem:\n  observers:\n    - _target_: sacred.observers.NoSuchObserver\n"
    )
    proc, runs = run_both_rows(model)
    assert "observer NoSuchObserver: could not be made" in proc.stderr
    assert runs[0]["run"]["result"] == 1.0


# -- W&B ----------------------------------------------------------------------------------------
def wandb_records(path: Path) -> list:
    """The records of a W&B run file (``run-<id>.wandb``: LevelDB's log format, 32 KiB blocks of
    chunks with a 7-byte header, holding protobuf ``Record``s). wandb itself no longer ships a
    Python reader of it (its core is a Go binary)."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending, out = 7, 32768, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            break
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk  # FULL, FIRST | MIDDLE, LAST
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def wandb_run(folder: Path) -> dict:
    config, history, artifacts = {}, {}, []
    for record in wandb_records(next(folder.glob("run-*.wandb"))):
        kind = record.WhichOneof("record_type")
        updates = record.config.update if kind == "config" else record.run.config.update if kind == "run" else ()
        for item in updates:
            config[item.key] = json.loads(item.value_json)
        if kind == "history":
            for item in record.history.item:
                name = item.key or "/".join(item.nested_key)
                if not name.startswith("_"):  # _step, _runtime, _timestamp: W&B's own
                    history.setdefault(name, []).append(json.loads(item.value_json))
        if kind == "artifact":
            artifacts.append(record.artifact.name)
    return {"config": config, "history": history, "artifacts": artifacts}


def test_wandb_sacred_observer_offline_writes_a_run_per_job_holding_sems_record(write_model, tmp_path):
    pytest.importorskip("wandb.integration.sacred")
    wandb_dir = tmp_path / "wandb_runs"
    wandb_dir.mkdir()
    # reinit: finish_previous: each job's wandb.init (in the observer's __init__) finishes the
    # W&B run of the job before it in the same process (wandb's default hands the same run back)
    model = write(
        write_model,
        experiment_config=(
            "sem:\n  observers:\n    - _target_: wandb.integration.sacred.WandbObserver\n"
            f"      mode: offline\n      project: sem-test\n      dir: {wandb_dir}\n      reinit: finish_previous\n"
        ),
    )
    _, runs = run_both_rows(model)
    stored = [wandb_run(f) for f in sorted((wandb_dir / "wandb").glob("offline-run-*"))]
    assert len(stored) == 2  # one W&B run per job: the observer is made per job
    by_gid = {w["config"]["global_id"]: w for w in stored}
    for sem in runs.values():
        wb = by_gid[sem["config"]["global_id"]]
        assert {k: wb["config"][k] for k in sem["config"]} == sem["config"]
        metrics = json.loads((sem["dir"] / "metrics.json").read_text())
        for name in ("loss", "acc"):
            assert wb["history"][name] == metrics[name]["values"]
        assert wb["artifacts"] == sem["run"]["artifacts"] == ["weights.txt"]
    assert by_gid[runs[0]["config"]["global_id"]]["history"]["result_0"] == [runs[0]["run"]["result"]]


# -- on Slurm: built in each array task's process ---------------------------------------------------
PID_OBSERVER = """
import json, os
from pathlib import Path
from sacred.observers import RunObserver


class PidObserver(RunObserver):
    \"\"\"Writes down the process it was made in, and the token it was given (hashed).\"\"\"

    def __init__(self, folder, token):
        self.folder, self.made_in = Path(folder), os.getpid()
        self.token_ok = token == os.environ["EXPECTED_TOKEN"]

    def started_event(self, ex_info, command, host_info, start_time, config, meta_info, _id):
        (self.folder / _id).write_text(json.dumps({"made_in": self.made_in, "started_in": os.getpid(),
                                                    "slurm_job": os.environ.get("SLURM_JOB_ID"),
                                                    "token_ok": self.token_ok}))
"""


@pytest.mark.slurm
def test_on_slurm_observers_are_made_in_each_task_with_their_secret_kept_out_of_every_file(write_model, tmp_path):
    from tests.services import missing_service
    from tests.test_slurm_cluster import LAUNCH, _cluster_problem

    problem = _cluster_problem()
    if problem:
        missing_service(problem)
    seen = tmp_path / "seen"
    seen.mkdir()
    token = "tok-SlurmSecret-4711"
    model = write(write_model, experiment_config=observers_config("pid_observer.PidObserver", folder=seen, token=token))
    (model.parent / "pid_observer.py").write_text(PID_OBSERVER)
    proc = run_model(model, *LAUNCH, env={"EXPECTED_TOKEN": token}, timeout=240)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # row 1 fails on purpose
    runs = sem_runs(model)
    for sem in runs.values():
        made = json.loads((seen / sem["config"]["global_id"]).read_text())
        assert (
            made["slurm_job"] and made["made_in"] == made["started_in"] == sem["run"]["meta"]["sem"]["process"]["pid"]
        )
        assert made["token_ok"]  # the job built it with the real value, read from experiment_config.yaml
    exp = model.parent.parent
    assert files_holding(exp, token, skip=exp / "experiment_config.yaml") == []  # payloads, scripts, logs, records
    assert token not in proc.stdout + proc.stderr


# -- the redaction rules (pure) ---------------------------------------------------------------
def test_secret_settings_are_redacted_and_interpolations_kept():
    entry = {
        "_target_": "sacred.observers.SlackObserver",
        "webhook_url": "https://hooks.slack.com/services/T/B/tok",
        "bot_name": "sem",
        "token": "${oc.env:TELEGRAM_TOKEN}",
        "nested": {"api_key": "abcdef"},
    }
    shown = redact_settings(entry)
    assert shown == {
        "_target_": "sacred.observers.SlackObserver",
        "webhook_url": REDACTED,
        "bot_name": "sem",
        "token": "${oc.env:TELEGRAM_TOKEN}",
        "nested": {"api_key": REDACTED},
    }
    assert {"https://hooks.slack.com/services/T/B/tok", "/services/T/B/tok", "abcdef"} <= secrets_in(entry)


# -- the example of docs/observers.md ----------------------------------------------------------
def test_the_observers_example_runs_and_its_observers_hold_sems_runs(tmp_path):
    sqlalchemy = pytest.importorskip("sqlalchemy")
    import shutil

    example = tmp_path / "observers"
    shutil.copytree(
        Path(__file__).resolve().parent.parent / "examples" / "observers",
        example,
        ignore=shutil.ignore_patterns("runs", "multirun", "sacred_runs", "*.sqlite", "__pycache__"),
    )
    proc = run_model(example / "models" / "m_observed.py", cwd=example)
    assert proc.returncode == 0, proc.stderr
    runs = load_store(example / "models" / "runs")
    assert len(runs) == 2
    with sqlalchemy.create_engine(f"sqlite:///{example / 'runs.sqlite'}").connect() as conn:
        sql = {r.run_id: r for r in conn.execute(sqlalchemy.text("select run_id, status, result from run"))}
    for sem in runs:
        gid = sem["config"]["global_id"]
        assert (sql[gid].status, sql[gid].result) == ("COMPLETED", sem["run"]["result"])
        theirs = json.loads((example / "sacred_runs" / gid / "run.json").read_text())
        assert (theirs["status"], theirs["result"]) == ("COMPLETED", sem["run"]["result"])


def test_an_object_attached_in_the_model_file_has_its_secrets_cut_out_of_the_report(capsys):
    import datetime as dt

    class Failing:
        def __init__(self):
            self.webhook_url = "https://hooks.example.org/services/T1/B2/ModelFileSecret99"

        def started_event(self, **kwargs):
            raise ConnectionError(f"cannot post to {self.webhook_url}")

    obs = AttachedObserver(observer=Failing())
    now = dt.datetime.now(dt.timezone.utc)
    obs.started_event({}, "main", {}, now, {}, {}, "g1")
    obs.completed_event(now, 1)  # left out after the failure: not called, not reported again
    err = capsys.readouterr().err
    assert "observer Failing: started_event raised ConnectionError: cannot post to <secret>" in err
    assert "ModelFileSecret99" not in err and err.count("raised") == 1
