"""sacred's readers on sem's records: incense's ``ExperimentLoader`` on sem's MongoDB runs, and
incense's ``FileSystemExperimentLoader`` on sem's file store through its ``_sacred`` index
(integer-named links to the collision-free run folders)."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from sem_core.observers.file import SACRED_INDEX_DIR, index_for_sacred, link_sacred_id
from tests.conftest import load_store, run_model

incense = pytest.importorskip("incense")

MODEL = """
from pathlib import Path
from sem_core import Experiment

ex = Experiment(__file__)

@ex.configs
def configs():
    return [{"lr": 0.1}, {"lr": 0.2}, {"lr": 0.3}]

@ex.automain
def main(config):
    for step in range(4):
        ex.log_scalar("loss", config["lr"] * (4 - step))
    ex.info["note"] = "row %d" % config["order_id"]
    out = Path("w_%d.txt" % config["order_id"])
    out.write_text("weights %d" % config["order_id"])
    ex.add_artifact(out, name="weights.txt")
    print("training row", config["order_id"])
    return config["lr"] * 10
"""


def check_same_run(exp, sem: dict) -> None:
    """What incense read (a FileSystemExperiment or a Mongo Experiment) against sem's record."""
    assert dict(exp.config) == sem["config"]
    assert exp.status == sem["run"]["status"] == "COMPLETED"
    assert exp.result == sem["run"]["result"]
    metrics = json.loads((sem["dir"] / "metrics.json").read_text())
    assert list(exp.metrics["loss"].values) == metrics["loss"]["values"]
    assert list(exp.metrics["loss"].index) == metrics["loss"]["steps"]
    assert exp.artifacts["weights.txt"].content == (sem["dir"] / "weights.txt").read_bytes()
    assert f"training row {sem['config']['order_id']}" in exp.captured_out


def test_incense_reads_sems_file_store_through_the_sacred_index(write_model):
    model = write_model(MODEL)
    proc = run_model(model, "hydra.job.chdir=true", "hydra/launcher=local", "hydra.launcher.n_jobs=2")
    assert proc.returncode == 0, proc.stderr
    store = model.parent / "runs"
    runs = load_store(store)
    assert len(runs) == 3
    # each run got its own number, recorded in its run.json, and the link names its folder
    numbers = sorted(r["run"]["sacred_id"] for r in runs)
    assert numbers == [1, 2, 3]
    loader = incense.FileSystemExperimentLoader(store / SACRED_INDEX_DIR)
    for sem in runs:
        exp = loader.find_by_id(sem["run"]["sacred_id"])
        assert exp.id == sem["run"]["sacred_id"]
        check_same_run(exp, sem)
        assert exp.info["note"] == f"row {sem['config']['order_id']}"


def test_a_store_without_its_view_gets_it_back_with_the_recorded_numbers(write_model, tmp_path):
    """A store copied without its links (sem dvc pull: DVC does not carry them, or runs recorded
    before the view existed): index_for_sacred links every run again, under its sacred_id."""
    import shutil

    model = write_model(MODEL)
    assert run_model(model, "hydra.job.chdir=true").returncode == 0
    store = model.parent / "runs"
    shutil.rmtree(store / SACRED_INDEX_DIR)
    (store / SACRED_INDEX_DIR).mkdir()
    # another run took number 2 on this machine meanwhile: the run recorded as 2 gets the next free one
    os.symlink(os.path.join(os.pardir, "elsewhere"), store / SACRED_INDEX_DIR / "2")
    index = index_for_sacred(store)
    assert index_for_sacred(store) == index  # a second call links nothing twice
    links = {os.path.basename(os.readlink(p)): int(p.name) for p in index.iterdir() if p.is_symlink()}
    runs = {r["dir"].name: r for r in load_store(store)}
    assert {name: links[name] for name in runs} == {
        name: (r["run"]["sacred_id"] if r["run"]["sacred_id"] != 2 else 4) for name, r in runs.items()
    }
    loader = incense.FileSystemExperimentLoader(index)
    for name, sem in runs.items():
        check_same_run(loader.find_by_id(links[name]), sem)


def test_a_requeued_run_keeps_its_number(tmp_path):
    import datetime as dt

    from sem_core.observers.file import FileStorageObserver

    store = tmp_path / "runs"
    model = tmp_path / "m.py"
    model.write_text("# model\n")
    ex_info = {
        "name": "m",
        "base_dir": str(tmp_path),
        "sources": [],
        "dependencies": [],
        "repositories": [],
        "mainfile": "m.py",
    }
    now = dt.datetime.now(dt.timezone.utc)
    first = FileStorageObserver(store)
    first.queued_event(ex_info, "main", {}, now, {"a": 1}, {}, "g1")
    FileStorageObserver(store).started_event(ex_info, "main", {}, now, {"a": 2}, {}, "g2")
    again = FileStorageObserver(store)  # the queued job starts (a requeue restarts it the same way)
    again.started_event(ex_info, "main", {}, now, {"a": 1}, {}, "g1")
    assert again.run_entry["sacred_id"] == 1
    assert os.readlink(store / SACRED_INDEX_DIR / "1") == os.path.join(os.pardir, "g1")
    assert sorted(p.name for p in (store / SACRED_INDEX_DIR).iterdir() if not p.name.startswith(".")) == ["1", "2"]


def _link_many(store: str, prefix: str, count: int, start, out) -> None:
    start.wait()
    out.put([(link_sacred_id(Path(store), f"{prefix}-{i}"), f"{prefix}-{i}") for i in range(count)])


def test_parallel_jobs_never_get_the_same_number(tmp_path):
    """Processes linking at once (the hint file racing behind them) still get distinct numbers,
    with no gap, each link naming its own run."""
    store = tmp_path / "runs"
    store.mkdir()
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_link_many, args=(str(store), f"p{k}", 40, start, out)) for k in range(4)]
    for p in procs:
        p.start()
    start.set()
    got = [pair for _ in procs for pair in out.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
    numbers = [n for n, _ in got]
    assert sorted(numbers) == list(range(1, 161))
    for n, name in got:
        assert os.readlink(store / SACRED_INDEX_DIR / str(n)) == os.path.join(os.pardir, name)


def test_incense_reads_sems_runs_in_mongodb(write_model, mongo_url, isolated_home):
    model = write_model(MODEL)
    proc = run_model(model, "hydra.job.chdir=true", env={"SEM_MONGO_URL": mongo_url, "HOME": str(isolated_home)})
    assert proc.returncode == 0, proc.stderr
    runs = {r["config"]["global_id"]: r for r in load_store(model.parent / "runs")}
    db_name = mongo_url.rsplit("/", 1)[1].split("?")[0]
    loader = incense.ExperimentLoader(mongo_uri=mongo_url, db_name=db_name)
    found = loader.find({"experiment.name": "m_test"})
    assert len(found) == 3
    for exp in found:
        check_same_run(exp, runs[exp.config["global_id"]])
        assert exp.info["note"] == f"row {exp.config['order_id']}"
