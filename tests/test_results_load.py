"""load_runs / get_runs over run stores written by sem's FileStorageObserver."""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
from pathlib import Path

import pytest

from sem_core import cli, records
from sem_core.errors import SemError
from sem_core.results import NoRunsFound, get_runs, load_runs
from sem_core.results.load import _read_cache, cache_path
from tests.results_store import T0, write_run


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEM_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def experiment(tmp_path) -> Path:
    exp = tmp_path / "exp"
    (exp / "models").mkdir(parents=True)
    return exp


def test_one_row_per_run_with_ids_config_keys_and_last_metric_values(experiment):
    store = experiment / "models" / "runs"
    run = write_run(
        store,
        {"name": "gd", "opt": {"lr": 0.1, "layers": [64, 32]}, "fold": 0},
        3,
        {"loss": [3.0, 2.0, 1.5], "test_rmse": [0.7]},
        seconds=42,
        hostname="node7",
    )
    write_run(
        store,
        {"name": "gd", "opt": {"lr": 0.1, "layers": [64, 32]}, "fold": 1},
        4,
        {"loss": [9.0]},
        status="FAILED",
        start=T0 + dt.timedelta(minutes=1),
    )
    runs = load_runs(experiment)
    assert len(runs) == 2
    first = runs.iloc[0]
    config = json.loads((run / "config.json").read_text())
    assert first["global_id"] == run.name == config["global_id"]
    assert (first["experiment_id"], first["config_id"], first["order_id"]) == (
        config["experiment_id"],
        config["config_id"],
        3,
    )
    assert (first["model"], first["status"], first["host"], first["duration"]) == (
        "m_linear.py",
        "COMPLETED",
        "node7",
        42.0,
    )
    assert first["opt.lr"] == 0.1 and first["opt.layers"] == "[64, 32]" and first["fold"] == 0
    assert first["loss"] == 1.5 and first["test_rmse"] == 0.7
    assert first["path"] == str(run)
    assert runs.iloc[1]["status"] == "FAILED" and runs.iloc[1]["loss"] == 9.0
    assert str(first["start_time"]) == "2026-01-01 12:00:00+00:00"


def test_config_keys_clashing_with_run_columns_are_prefixed(tmp_path):
    store = tmp_path / "runs"
    write_run(store, {"status": "draft", "fold": 0}, 0, {"fold": [1.0]})
    runs = load_runs(store)
    assert runs.iloc[0]["status"] == "COMPLETED"
    assert runs.iloc[0]["config.status"] == "draft"
    assert runs.iloc[0]["fold"] == 0 and runs.iloc[0]["metric.fold"] == 1.0


def test_cache_sees_a_run_finish_and_new_runs_appear(tmp_path):
    store = tmp_path / "runs"
    live = write_run(store, {"fold": 0}, 0, {"loss": [5.0, 4.0]}, status="RUNNING")
    runs = load_runs(store)
    assert (runs.iloc[0]["status"], runs.iloc[0]["loss"]) == ("RUNNING", 4.0)  # read from metrics.jsonl
    assert cache_path(store).exists()
    # the run ends: run.json and metrics.json are rewritten atomically
    entry = records.read_json(live / "run.json")
    entry.update(status="COMPLETED", stop_time=(T0 + dt.timedelta(seconds=9)).isoformat())
    records.atomic_write_json(live / "run.json", entry)
    records.atomic_write_json(
        live / "metrics.json", {"loss": {"steps": [0, 1, 2], "values": [5.0, 4.0, 3.0], "timestamps": ["a", "b", "c"]}}
    )
    write_run(store, {"fold": 1}, 1, {"loss": [7.0]}, start=T0 + dt.timedelta(minutes=1))
    runs = load_runs(store)
    assert list(runs["status"]) == ["COMPLETED", "COMPLETED"]
    assert list(runs["loss"]) == [3.0, 7.0]
    assert runs.iloc[0]["duration"] == 9.0
    assert load_runs(store, use_cache=False).equals(runs)


def test_a_corrupt_cache_is_rebuilt_from_the_records(tmp_path):
    store = tmp_path / "runs"
    run = write_run(store, {"fold": 0}, 0, {"loss": [1.0]})
    load_runs(store)
    cache = cache_path(store)
    header, _, payload = cache.read_bytes().partition(b"\n")
    cache.write_bytes(header + b"\n" + payload[:-1] + bytes([payload[-1] ^ 1]))  # one bit flipped on disk
    assert list(load_runs(store)["loss"]) == [1.0]
    cache.write_text("{not json")
    assert list(load_runs(store)["loss"]) == [1.0]
    rebuilt = _read_cache(cache, store)  # rebuilt, readable again
    assert rebuilt is not None and rebuilt.names == [run.name]


def test_a_corrupt_run_json_is_skipped_and_named(tmp_path, capsys):
    store = tmp_path / "runs"
    write_run(store, {"fold": 0}, 0, {"loss": [1.0]})
    bad = write_run(store, {"fold": 1}, 1, {"loss": [2.0]}, start=T0 + dt.timedelta(minutes=1))
    (bad / "run.json").write_text('{"status": "COMPLE')  # truncated by a full disk or a bad copy
    with pytest.warns(records.RecordWarning, match=r"run\.json: not valid JSON"):
        assert list(load_runs(store, use_cache=False)["loss"]) == [1.0]
    with pytest.raises(SemError, match=r"run\.json: not valid JSON"):
        load_runs(store, use_cache=False, on_problem=records.raise_problem)
    with pytest.raises(SemError, match=r"run\.json: not valid JSON"):
        list(records.iter_runs(store))
    assert cli.main(["ls", str(store)]) == 0
    assert f"{bad / 'run.json'}: not valid JSON" in capsys.readouterr().err
    assert cli.main(["ls", "--strict", str(store)]) == 1


def test_storage_setting_of_experiment_config_moves_the_store(experiment):
    (experiment / "experiment_config.yaml").write_text("sem:\n  storage: elsewhere/runs\n")
    write_run(experiment / "elsewhere" / "runs", {"fold": 0}, 0, {"loss": [1.0]})
    assert len(load_runs(experiment)) == 1


def test_default_source_is_the_experiment_around_the_current_directory(experiment, monkeypatch):
    write_run(experiment / "models" / "runs", {"fold": 0}, 0, {"loss": [1.0]})
    monkeypatch.chdir(experiment / "models")
    assert len(load_runs()) == 1


def test_several_sources_are_concatenated(tmp_path):
    write_run(tmp_path / "a" / "runs", {"fold": 0}, 0, {"loss": [1.0]})
    write_run(tmp_path / "b" / "runs", {"fold": 1}, 0, {"acc": [0.5]})
    runs = load_runs([tmp_path / "a" / "runs", tmp_path / "b" / "runs"])
    assert list(runs["fold"]) == [0, 1] and runs["acc"].isna().tolist() == [True, False]


def test_no_runs_says_where_it_looked(experiment, tmp_path, monkeypatch):
    with pytest.raises(NoRunsFound, match=f"no runs found in {experiment / 'models' / 'runs'}"):
        load_runs(experiment)
    with pytest.raises(NoRunsFound, match="no such file or folder"):
        load_runs(tmp_path / "nope")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NoRunsFound, match="no experiment folder around"):
        load_runs()


def test_get_runs_matches_nested_config_and_loads_pickled_artifacts(tmp_path):
    store = tmp_path / "runs"
    for fold in range(3):
        art = tmp_path / f"pred{fold}.pkl"
        art.write_bytes(pickle.dumps({"fold": fold, "pred": [fold] * 3}))
        write_run(
            store,
            {"opt": {"lr": 0.1}, "fold": fold},
            fold,
            {"rmse": [fold / 10]},
            artifacts={"pred.pkl": art},
            start=T0 + dt.timedelta(minutes=fold),
        )
    write_run(store, {"opt": {"lr": 0.2}, "fold": 1}, 9, {"rmse": [0.9]}, start=T0 + dt.timedelta(minutes=9))
    (hit,) = get_runs(store, match={"opt": {"lr": 0.1}, "fold": 1}, load_artifacts=True)
    assert hit.config["opt"] == {"lr": 0.1} and hit.config["fold"] == 1 and hit.order_id == 1
    assert hit.metrics == {"rmse": 0.1}
    assert hit.artifacts["pred.pkl"] == Path(hit.path) / "pred.pkl"
    assert hit.loaded["pred.pkl"] == {"fold": 1, "pred": [1, 1, 1]}
    assert [r.config["fold"] for r in get_runs(store, match={"opt.lr": 0.1})] == [0, 1, 2]
    assert get_runs(store, match={"opt.lr": 0.1})[0].loaded == {}
    with pytest.raises(SemError, match=r"has no artifact \['model.pkl'\]; its artifacts: \['pred.pkl'\]"):
        get_runs(store, match={"fold": 0}, load_artifacts=["model.pkl"])


def test_unchanged_finished_runs_are_not_read_again(tmp_path, monkeypatch):
    from sem_core.results import load as load_module

    store = tmp_path / "runs"
    for fold in range(4):
        write_run(store, {"fold": fold}, fold, {"loss": [float(fold)]}, start=T0 + dt.timedelta(minutes=fold))
    live = write_run(store, {"fold": 9}, 9, {"loss": [1.0]}, status="RUNNING", start=T0 + dt.timedelta(hours=1))
    finished_earlier(store)
    reads = []
    real = load_module.summarise_folder
    monkeypatch.setattr(load_module, "summarise_folder", lambda d, *a: reads.append(os.path.basename(d)) or real(d, *a))
    load_runs(store)
    assert len(reads) == 5
    reads.clear()
    load_runs(store)
    assert reads == [live.name]  # only the live run
    finished = sorted(p for p in store.iterdir() if p.name != live.name and not p.name.startswith("_"))[1]
    entry = records.read_json(finished / "run.json")
    records.atomic_write_json(finished / "run.json", dict(entry, status="KILLED"))
    reads.clear()
    assert "KILLED" in set(load_runs(store)["status"])
    assert sorted(reads) == sorted([live.name, finished.name])


def finished_earlier(store: Path) -> None:
    """Date every run folder of ``store`` a minute back, as if its runs ended then: a change
    made right after a load then gets a newer mtime even where the clock ticks coarsely."""
    for folder in store.iterdir():
        st = folder.stat()
        os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns - 60 * 10**9))


def test_a_replaced_config_json_is_read_again(tmp_path):
    """sem (and most editors) write a record to a new file renamed over the old one: the folder's
    mtime changes, and that is all a finished run written by sem costs per load (one stat)."""
    store = tmp_path / "runs"
    run = write_run(store, {"lr": 0.1, "fold": 0}, 0, {"loss": [1.0]})
    finished_earlier(store)
    assert list(load_runs(store)["lr"]) == [0.1]
    config = records.read_json(run / "config.json")
    records.atomic_write_json(run / "config.json", dict(config, lr=0.5))
    assert list(load_runs(store)["lr"]) == [0.5]


def test_a_run_json_rewritten_in_place_is_read_again(tmp_path):
    """sacred's own observer rewrites run.json in place, which leaves the folder's mtime as it
    was: for such runs run.json's own stat counts too."""
    store = tmp_path / "runs"
    run = write_run(store, {"fold": 0}, 0, {"loss": [1.0]})
    entry = records.read_json(run / "run.json")
    del entry["last_metrics"]  # as sacred writes it
    records.atomic_write_json(run / "run.json", entry)
    assert list(load_runs(store)["status"]) == ["COMPLETED"]
    folder = os.stat(run)
    with open(run / "run.json", "r+") as fh:
        fh.write(json.dumps(dict(entry, status="FAILED")))
        fh.truncate()
    os.utime(run, ns=(folder.st_atime_ns, folder.st_mtime_ns))
    assert list(load_runs(store)["status"]) == ["FAILED"]


def test_half_written_and_deleted_runs_and_their_columns(tmp_path):
    """A folder without run.json (a job killed before writing it) is no run until it has one; a
    deleted run goes, and with it the columns only it had: the cached load equals a fresh one,
    column order included."""
    import shutil

    store = tmp_path / "runs"
    first = write_run(store, {"a": 1, "z": 1}, 0, {"loss": [1.0]})
    write_run(store, {"b": 2, "z": 2}, 1, {"acc": [0.5]}, start=T0 + dt.timedelta(minutes=1))
    half = store / "20260101T130000-half"
    half.mkdir()
    records.atomic_write_json(half / "config.json", {"c": 3})
    runs = load_runs(store)
    assert len(runs) == 2 and list(runs.columns[-5:]) == ["a", "z", "b", "acc", "loss"]  # metrics by name
    records.atomic_write_json(half / "run.json", {"status": "RUNNING", "start_time": "2026-01-01T13:00:00"})
    assert list(load_runs(store)["global_id"])[-1] == half.name
    shutil.rmtree(first)
    runs = load_runs(store)
    assert "a" not in runs.columns and "loss" not in runs.columns
    fresh = load_runs(store, use_cache=False)
    assert list(runs.columns) == list(fresh.columns) and runs.equals(fresh)


def test_a_store_written_by_sacreds_own_file_observer_loads(tmp_path):
    """sacred's FileStorageObserver (numbered folders, no sem ids, naive times, in-place writes)."""
    from sacred import Experiment
    from sacred.observers import FileStorageObserver

    store = tmp_path / "sacred_runs"
    ex = Experiment("plain_sacred", save_git_info=False)
    ex.observers.append(FileStorageObserver(str(store)))

    @ex.config
    def cfg():
        lr = 0.1
        fold = 0

    @ex.main
    def main(lr, fold, _run):
        _run.log_scalar("rmse", lr + fold / 10)
        return lr

    for lr in (0.1, 0.2):
        for fold in range(2):
            ex.run(config_updates={"lr": lr, "fold": fold})
    runs = load_runs(store)
    assert list(runs["global_id"]) == ["1", "2", "3", "4"]
    assert set(runs["status"]) == {"COMPLETED"}
    assert runs["start_time"].notna().all() and (runs["duration"] >= 0).all()
    assert list(runs["rmse"]) == pytest.approx([0.1, 0.2, 0.2, 0.3])
    from sem_core.results import results_table

    table = results_table(runs, metrics=["rmse"], group_by=["lr"])
    assert [r[0] for r in table.row_labels()] == ["lr=0.1", "lr=0.2"]
    assert table.cell(1, (), "rmse")[:1] == (pytest.approx(0.25),)


def test_sem_results_without_completed_runs_exits_1_and_says_why(tmp_path, capsys):
    from sem_core import cli

    store = tmp_path / "runs"
    write_run(store, {"fold": 0}, 0, {"loss": [1.0]}, status="FAILED")
    assert cli.main(["results", str(store)]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == (
        f"no runs to aggregate in {store}. Excluded: 1 failed run (not averaged; `sem ls` lists them)."
        " Use --all-status to count runs of every status.\n"
    )
    assert cli.main(["results", str(store), "--all-status", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("m_linear.py,m_linear.py,")


def test_plot_band_is_mean_and_std_per_step_over_the_runs_that_logged_it(tmp_path):
    from sem_core.results import results_table
    from sem_core.results.plot import curves, plot_metric

    store = tmp_path / "runs"
    write_run(store, {"lr": 0.1, "fold": 0}, 0, {"loss": [4.0, 2.0, 1.0]})
    write_run(store, {"lr": 0.1, "fold": 1}, 1, {"loss": [6.0, 4.0]}, start=T0 + dt.timedelta(minutes=1))
    runs = load_runs(store)
    ((label, band),) = curves(results_table(runs, metrics=["loss"]), "loss").items()
    assert list(band.index) == [0, 1, 2]
    assert list(band["mean"]) == [5.0, 3.0, 1.0] and list(band["count"]) == [2, 2, 1]
    assert band["std"].iloc[0] == pytest.approx(2**0.5)
    fig = plot_metric(runs, "loss")
    (line,) = fig.axes[0].get_lines()
    assert list(line.get_ydata()) == [5.0, 3.0, 1.0]


def test_report_escapes_tracebacks_and_output(tmp_path):
    from sem_core.results.report import build_report

    store = tmp_path / "runs"
    write_run(store, {"fold": 0}, 0, {"loss": [1.0]})
    write_run(
        store,
        {"fold": 1},
        1,
        {"loss": [2.0]},
        status="FAILED",
        start=T0 + dt.timedelta(minutes=1),
        output="<img src=x onerror=alert(1)>\n",
        fail_trace=["ValueError: <script>alert(1)</script>\n"],
    )
    html_text = build_report(load_runs(store))
    assert "<script" not in html_text and "<img src=x" not in html_text
    assert "ValueError: &lt;script&gt;alert(1)&lt;/script&gt;" in html_text
    assert "&lt;img src=x onerror=alert(1)&gt;" in html_text


def test_an_unwritable_cache_folder_warns_once_and_results_still_load(tmp_path, monkeypatch):
    from sem_core import settings

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("SEM_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr(settings, "_said", set())  # the note starts unsaid
    monkeypatch.setenv(settings.SAID_ENV, "")
    store = tmp_path / "runs"
    write_run(store, {"fold": 0}, 0, {"loss": [1.0]})
    with pytest.warns(UserWarning, match="cannot write the summary cache"):
        assert list(load_runs(store)["loss"]) == [1.0]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(load_runs(store)["loss"]) == [1.0]
