"""The file observer: sacred's events in, sacred's FileStorageObserver layout out."""

import datetime as dt
import json
import math

import pytest

from sem_core import records
from sem_core.host import host_info
from sem_core.observers.file import FileStorageObserver

T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


@pytest.fixture
def model(tmp_path):
    base = tmp_path / "models"
    base.mkdir()
    (base / "m_x.py").write_text("print('model')\n")
    return base


def ex_info(model):
    from sem_core.sources import file_md5

    return {
        "name": "m_x",
        "base_dir": str(model),
        "sources": [["m_x.py", file_md5(model / "m_x.py")]],
        "dependencies": [],
        "repositories": [],
        "mainfile": "m_x.py",
    }


def start(obs, model, _id="g1", config=None):
    return obs.started_event(ex_info(model), "main", host_info(), T0, config or {"a": 1, "global_id": _id}, {}, _id)


def test_started_completed_layout(tmp_path, model):
    store = tmp_path / "runs"
    obs = FileStorageObserver(store)
    start(obs, model)
    run = json.loads((store / "g1" / "run.json").read_text())
    assert run["status"] == "RUNNING" and run["start_time"] == T0.isoformat()
    obs.log_metrics({"loss": {"steps": [0, 1], "values": [1.0, 0.5], "timestamps": ["t0", "t1"]}}, {})
    obs.heartbeat_event({"note": 1}, "hello\n", T0, None)
    obs.log_metrics({"loss": {"steps": [2], "values": [0.25], "timestamps": ["t2"]}}, {})
    obs.completed_event(T0 + dt.timedelta(seconds=3), 42)
    d = store / "g1"
    run = json.loads((d / "run.json").read_text())
    assert run["status"] == "COMPLETED" and run["result"] == 42 and run["stop_time"]
    assert json.loads((d / "metrics.json").read_text()) == {
        "loss": {"steps": [0, 1, 2], "values": [1.0, 0.5, 0.25], "timestamps": ["t0", "t1", "t2"]}
    }
    assert not (d / "metrics.jsonl").exists()
    assert (d / "cout.txt").read_text() == "hello\n"
    assert json.loads((d / "info.json").read_text()) == {"note": 1}
    assert json.loads((d / "config.json").read_text()) == {"a": 1, "global_id": "g1"}
    ((name, stored),) = run["experiment"]["sources"]
    assert name == "m_x.py" and (store / stored).read_text() == "print('model')\n"


def test_run_json_has_every_key_sacred_writes(tmp_path, model):
    """A sacred FileStorageObserver run and a sem run carry the same run.json keys."""
    from sacred import Experiment as SacredExperiment
    from sacred.observers import FileStorageObserver as SacredFileObserver

    sacred_ex = SacredExperiment("m_x", save_git_info=False)
    sacred_ex.observers.append(SacredFileObserver(str(tmp_path / "sacred")))
    sacred_ex.main(lambda: 1)
    sacred_ex.run()
    sacred_run = json.loads((tmp_path / "sacred" / "1" / "run.json").read_text())

    obs = FileStorageObserver(tmp_path / "sem")
    start(obs, model)
    obs.completed_event(T0, 1)
    sem_run = json.loads((tmp_path / "sem" / "g1" / "run.json").read_text())
    assert set(sacred_run) <= set(sem_run)
    assert set(sacred_run["experiment"]) <= set(sem_run["experiment"])
    assert set(sacred_run["host"]) - {"gpus"} <= set(sem_run["host"])


def test_failed_and_interrupted(tmp_path, model):
    obs = FileStorageObserver(tmp_path)
    start(obs, model, "f")
    obs.failed_event(T0, ["Traceback\n", "ValueError: x\n"])
    run = records.read_json(tmp_path / "f" / "run.json")
    assert run["status"] == "FAILED" and run["fail_trace"][-1] == "ValueError: x\n"
    obs = FileStorageObserver(tmp_path)
    start(obs, model, "i")
    obs.interrupted_event(T0, "INTERRUPTED")
    assert records.read_json(tmp_path / "i" / "run.json")["status"] == "INTERRUPTED"


def test_a_finished_run_is_never_overwritten(tmp_path, model):
    obs = FileStorageObserver(tmp_path)
    start(obs, model, "done")
    obs.completed_event(T0, 1)
    with pytest.raises(FileExistsError, match="already holds a COMPLETED run"):
        start(FileStorageObserver(tmp_path), model, "done")
    assert records.read_json(tmp_path / "done" / "run.json")["status"] == "COMPLETED"


def test_artifacts_resources_and_sources_are_stored_once(tmp_path, model):
    data = tmp_path / "data.csv"
    data.write_text("1,2\n")
    art = tmp_path / "w.bin"
    art.write_bytes(b"\x00\x01")
    for gid in ("a", "b"):
        obs = FileStorageObserver(tmp_path / "runs")
        start(obs, model, gid)
        obs.resource_event(str(data))
        obs.artifact_event("weights.bin", str(art))
        with pytest.raises(FileExistsError, match="give it another name"):
            obs.artifact_event("weights.bin", str(art))
        obs.completed_event(T0, None)
        assert (tmp_path / "runs" / gid / "weights.bin").read_bytes() == b"\x00\x01"
    assert len(list((tmp_path / "runs" / "_sources").iterdir())) == 1
    assert len(list((tmp_path / "runs" / "_resources").iterdir())) == 1


def test_journal_survives_a_kill_and_a_torn_line(tmp_path, model):
    obs = FileStorageObserver(tmp_path)
    start(obs, model, "k")
    obs.log_metrics({"v": {"steps": [0], "values": [1], "timestamps": ["t"]}}, {})
    with open(tmp_path / "k" / "metrics.jsonl", "a") as fh:
        fh.write('{"v": {"steps": [1')  # the process died mid-write
    assert records.read_metrics(tmp_path / "k") == {"v": {"steps": [0], "values": [1], "timestamps": ["t"]}}


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "x.json"
    records.atomic_write_json(target, {"ok": 1})

    class Boom:
        pass

    # the write itself fails (not the encoding before it): the temporary file must go too
    with pytest.raises(TypeError):
        records.atomic_write_bytes(target, Boom())  # type: ignore[arg-type]
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_host_info_matches_sacreds():
    from sacred.host_info import get_host_info

    theirs = get_host_info()
    ours = host_info()
    for key in ("hostname", "os", "python_version", "cpu"):
        assert ours[key] == theirs[key]


def test_metric_timestamps_are_sacreds_naive_utc_isoformat():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from sem_core.run import _utc_isoformat_many

    # epoch microseconds as log_scalar takes them, in order or not (a clock set back), some in
    # the same second, before and after the epoch's first second
    micros = st.floats(min_value=0, max_value=4e15)
    near = st.tuples(st.integers(min_value=0, max_value=4_000_000_000), st.lists(st.floats(0, 999_999.75), min_size=1))

    @settings(max_examples=300)
    @given(st.lists(micros, min_size=1, max_size=20) | near.map(lambda t: [t[0] * 1e6 + us for us in t[1]]))
    def check(stamps):
        texts = _utc_isoformat_many(stamps)
        assert len(texts) == len(stamps)
        for us, text in zip(stamps, texts):
            expected = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(us))
            assert dt.datetime.fromisoformat(text) == expected
            assert len(text) == 26

    check()


def test_last_metrics_summarise_the_run(tmp_path, model):
    obs = FileStorageObserver(tmp_path)
    start(obs, model, "s")
    obs.log_metrics({"a": {"steps": [0, 1], "values": [3, 2], "timestamps": ["t", "t"]}}, {})
    obs.log_metrics(
        {
            "a": {"steps": [2], "values": [1.5], "timestamps": ["t"]},
            "b": {"steps": [0], "values": [7], "timestamps": ["t"]},
        },
        {},
    )
    obs.completed_event(T0, None)
    run = records.read_json(tmp_path / "s" / "run.json")
    assert run["last_metrics"] == {"a": 1.5, "b": 7}


def test_metric_columns_are_encoded_as_json_encodes_them():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    scalars = st.one_of(st.integers(), st.floats(), st.booleans(), st.none(), st.text())
    columns = st.lists(scalars) | st.lists(st.text()) | st.lists(st.integers()) | st.lists(st.floats())

    @settings(max_examples=300)
    @given(st.dictionaries(st.text(), st.fixed_dictionaries(dict.fromkeys(records.SERIES_KEYS, columns))))
    def check(metrics):
        encoded = {name: {k: records.encode_column(v) for k, v in s.items()} for name, s in metrics.items()}
        assert records.encode_metrics(encoded) == json.dumps(metrics, sort_keys=True)

    check()


def test_metrics_of_several_batches_are_written_whole_and_in_order(tmp_path, model):
    obs = FileStorageObserver(tmp_path)
    start(obs, model, "b")
    nan, inf = float("nan"), float("inf")
    obs.log_metrics({"a": {"steps": [0, 1], "values": [nan, inf], "timestamps": ["t0", "t1"]}}, {})
    obs.log_metrics({"z": {"steps": [], "values": [], "timestamps": []}}, {})
    obs.log_metrics(
        {
            "a": {"steps": [2], "values": [-inf], "timestamps": ['t"2']},
            "b": {"steps": [5], "values": [1], "timestamps": ["t"]},
        },
        {},
    )
    journal = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert records.read_metrics(tmp_path / "b")["a"]["timestamps"] == ["t0", "t1", 't"2']  # a live run: the journal
    obs.completed_event(T0, None)
    text = (tmp_path / "b" / "metrics.json").read_text()
    written = json.loads(text)
    assert written["a"]["steps"] == [0, 1, 2] and written["a"]["timestamps"] == ["t0", "t1", 't"2']
    assert math.isnan(written["a"]["values"][0]) and written["a"]["values"][1:] == [inf, -inf]
    assert written["b"] == {"steps": [5], "timestamps": ["t"], "values": [1]} and written["z"]["steps"] == []
    assert text == json.dumps(written, sort_keys=True)  # the same text as json writes
    assert len(journal) == 3 and not (tmp_path / "b" / "metrics.jsonl").exists()


def test_queued_runs_written_together_are_the_records_queued_event_writes(tmp_path, model):
    """A submission's QUEUED records (shared parts encoded once, sacred numbers linked in a go,
    each folder created whole) hold what queued_event writes for each, and each run then starts
    from its record as any queued run does, keeping its sacred number."""
    from sem_core.observers.file import SACRED_INDEX_DIR, QueuedRuns, index_for_sacred

    alone, together = tmp_path / "alone", tmp_path / "together"
    host = host_info()
    # values that are the stand-ins QueuedRuns encodes in place of the shared parts stay as they are
    meta = {"command": "main", "options": {}, "sem": {"overrides": ["+order_id=0", "\x00host", "\x00experiment"]}}
    runs = QueuedRuns(together, ex_info(model), "main", host, T0)
    numbers = runs.link(["g1", "g2"])
    # a value every record shares, encoded once, stands in the meta in place of the value
    meta["sem"]["capture"] = {"mode": "fd", "files": ["cout.txt"]}
    FileStorageObserver(alone).queued_event(ex_info(model), "main", host, T0, {"a": 1, "global_id": "g1"}, meta, "g1")
    meta_shared = {**meta, "sem": {**meta["sem"], "capture": runs.shared(meta["sem"]["capture"])}}
    runs.write("g1", {"a": 1, "global_id": "g1"}, meta_shared, numbers[0])
    runs.write("g2", {"a": 2, "global_id": "g2"}, meta_shared, numbers[1])

    assert numbers == [1, 2]
    for name in records.RUN_FILE, records.CONFIG_FILE:
        assert json.loads((together / "g1" / name).read_text()) == json.loads((alone / "g1" / name).read_text())
    assert records.read_run(together / "g2").run["status"] == "QUEUED"
    assert [d.name for d in records.iter_run_dirs(together)] == ["g1", "g2"]
    assert sorted(p.name for p in (together / SACRED_INDEX_DIR).iterdir() if not p.name.startswith(".")) == ["1", "2"]
    with pytest.raises(FileExistsError):  # a global id is minted once per job
        runs.write("g1", {"a": 1, "global_id": "g1"}, meta, 3)

    started = FileStorageObserver(together)
    started.started_event(ex_info(model), "main", host, T0, {"a": 2, "global_id": "g2"}, meta, "g2")
    assert started.run_entry["sacred_id"] == 2
    started.completed_event(T0, 5)
    assert records.read_run(together / "g2").run["status"] == "COMPLETED"
    # the view is complete: nothing left to link
    assert sorted(p.name for p in index_for_sacred(together).iterdir() if not p.name.startswith(".")) == ["1", "2"]


def test_a_new_run_folder_appears_whole_or_not_at_all(tmp_path):
    """A folder written by write_new_folder is staged under a hidden name: a write that fails
    leaves nothing, and a staging folder a killed writer left behind is no run to any reader."""
    store = tmp_path / "runs"
    store.mkdir()

    class Unwritable:
        pass

    with pytest.raises(TypeError):
        records.write_new_folder(store / "g1", {"config.json": b"{}", "run.json": Unwritable()})  # type: ignore[dict-item]
    assert list(store.iterdir()) == []

    (store / ".new-g2").mkdir()  # what a writer killed halfway leaves
    (store / ".new-g2" / "run.json").write_text('{"status": "QUE')
    records.write_new_folder(store / "g3", {"run.json": b'{"status": "QUEUED"}'})
    assert [d.name for d in records.iter_run_dirs(store)] == ["g3"]
    assert [r.run["status"] for r in records.iter_runs(store)] == ["QUEUED"]
