"""A damaged record never stops the tools: every command skips what it cannot read, names it on
one warning line (path and reason) and goes on. Stores written by a real sweep, damaged here;
the real `sem` command line. Also: one rule for the newest run of a row, in every command."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sem_core import records
from sem_core.clean import StoreEntry, plan_clean
from sem_core.results.load import summaries_to_frame, summarise
from sem_core.results.table import counted_runs
from sem_core.resume import ExistingRun, select_jobs
from tests.conftest import run_model

MODEL = """
from sem_core import Experiment
ex = Experiment(__file__)

@ex.configs
def get_config():
    return [{"name": "m", "fold": f} for f in range(3)]

@ex.automain
def main(config):
    for step in range(3):
        ex.log_scalar("score", config["fold"] * 10 + step)
    return config["fold"]
"""


def sem(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "sem_core.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=dict(os.environ, **(env or {})),
        timeout=300,
    )


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    """An experiment folder whose store holds the 3 runs of a real sweep (folds 0, 1, 2)."""
    exp = tmp_path_factory.mktemp("swept") / "exp"
    (exp / "models").mkdir(parents=True)
    model = exp / "models" / "m_test.py"
    model.write_text(MODEL)
    result = run_model(model, "-m")
    assert result.returncode == 0, result.stdout + result.stderr
    return exp


@pytest.fixture
def experiment(swept, tmp_path, monkeypatch) -> Path:
    """A private copy of the swept experiment (and a private summary cache)."""
    monkeypatch.setenv("SEM_CACHE_DIR", str(tmp_path / "cache"))
    target = tmp_path / "exp"
    shutil.copytree(swept, target, symlinks=True)
    return target


def run_dirs(exp: Path) -> dict[int, Path]:
    """fold -> run folder."""
    store = exp / "models" / "runs"
    return {records.read_run(d).config["fold"]: d for d in records.iter_run_dirs(store)}


# -- the damage ------------------------------------------------------------------------------
def write(name: str, data: bytes):
    def damage(run_dir: Path) -> Path:
        (run_dir / name).write_bytes(data)
        return run_dir / name

    return damage


def run_json_is_a_folder(run_dir: Path) -> Path:
    (run_dir / "run.json").unlink()
    (run_dir / "run.json").mkdir()
    return run_dir / "run.json"


def bad_journal_line(run_dir: Path) -> Path:
    """A run that ended without metrics.json (killed): its journal, with a bad line in the middle."""
    (run_dir / "metrics.json").unlink()
    run = json.loads((run_dir / "run.json").read_text())
    run.pop("last_metrics", None)
    (run_dir / "run.json").write_text(json.dumps(run))
    point = lambda step, value: json.dumps({"score": {"steps": [step], "values": [value], "timestamps": ["t"]}})
    (run_dir / "metrics.jsonl").write_text(f'{point(0, 1.0)}\n{{"score": garbage\n{point(2, 7.0)}\n')
    return run_dir / "metrics.jsonl"


# name -> (damage, reason in the warning, the record is left out (True) or shown without what is bad)
RECORD_CASES = {
    "truncated run.json": (write("run.json", b'{"status": "COMPLE'), r"not valid JSON"),
    "empty run.json": (write("run.json", b""), r"not valid JSON"),
    "garbage config.json": (write("config.json", b"\xff\xfe\x00garbage"), r"not valid JSON"),
    "run.json is a folder": (run_json_is_a_folder, r"cannot be read \(Is a directory\)"),
    "run.json holds a list": (write("run.json", b"[1, 2]"), r"holds a JSON list, not an object"),
    "config.json holds a list": (write("config.json", b'["fold", 1]'), r"holds a JSON list, not an object"),
}
METRICS_CASES = {
    "metrics.json of the wrong shape": (
        write("metrics.json", b'{"score": [1, 2, 3]}'),
        r"metric 'score' is not \{steps, values, timestamps\} lists",
    ),
    "metrics.json of unequal lists": (
        write("metrics.json", b'{"score": {"steps": [0], "values": [1, 2], "timestamps": []}}'),
        r"metric 'score' has .* different lengths",
    ),
    "garbage metrics.json": (write("metrics.json", b"{{{"), r"not valid JSON"),
    "metrics.json holds a list": (write("metrics.json", b"[]"), r"holds a JSON list"),
}


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "warning: unreadable record" in line]


def assert_one_warning(result: subprocess.CompletedProcess, path: Path, reason: str) -> None:
    lines = warnings_in(result.stderr)
    assert len(lines) == 1, result.stderr
    assert re.search(re.escape(f"unreadable record {path}: ") + reason, lines[0]), lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("case", list(RECORD_CASES))
def test_an_unreadable_record_is_named_and_the_others_are_shown(experiment, case):
    damage, reason = RECORD_CASES[case]
    dirs = run_dirs(experiment)
    bad = damage(dirs[1])
    good = [dirs[0].name, dirs[2].name]

    for args in (["ls"], ["results", "--by", "fold"], ["show", good[0]], ["report", "-o", "r.html"], ["status"]):
        result = sem(*args, cwd=experiment)
        assert result.returncode == 0, (args, result.stderr)
        assert_one_warning(result, bad, reason)
        strict = sem(*args, "--strict", cwd=experiment)
        assert strict.returncode == 1, (args, strict.stderr)
        assert_one_warning(strict, bad, reason)

    listed = sem("ls", cwd=experiment).stdout
    assert all(g in listed for g in good) and dirs[1].name not in listed and "2 runs: 2 COMPLETED" in listed
    table = sem("results", "--by", "fold", "--format", "csv", cwd=experiment).stdout
    assert [row["fold"] for row in csv.DictReader(io.StringIO(table))] == ["0", "2"]
    assert f"run {good[0]}  [COMPLETED]" in sem("show", good[0], cwd=experiment).stdout
    report = (experiment / "r.html").read_text()
    assert "2 runs" in report and "<img" in report


@pytest.mark.parametrize("case", list(RECORD_CASES))
def test_a_skip_completed_sweep_reruns_only_the_unreadable_row(experiment, case):
    damage, reason = RECORD_CASES[case]
    bad = damage(run_dirs(experiment)[1])
    result = run_model(experiment / "models" / "m_test.py", "-m", "sem.skip_completed=true")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert_one_warning(subprocess.CompletedProcess([], 0, "", out), bad, reason)
    assert "skipped 2 row(s)" in out
    completed = [
        r for r in records.iter_runs(experiment / "models" / "runs", lambda p: None) if r.status == "COMPLETED"
    ]
    assert sorted(r.config["fold"] for r in completed) == [0, 1, 2]


@pytest.mark.parametrize("case", list(METRICS_CASES))
def test_unreadable_metrics_cost_only_the_metrics_of_that_run(experiment, case):
    damage, reason = METRICS_CASES[case]
    dirs = run_dirs(experiment)
    bad = damage(dirs[1])

    # the table and the listing take the last values recorded in run.json: nothing is missing
    for args in (["ls"], ["results"], ["status"]):
        result = sem(*args, cwd=experiment)
        assert result.returncode == 0 and not warnings_in(result.stderr), (args, result.stderr)
    for args in (["report", "-o", "r.html"], ["show", dirs[1].name]):
        result = sem(*args, cwd=experiment)
        assert result.returncode == 0, (args, result.stderr)
        assert_one_warning(result, bad, reason)
        assert sem(*args, "--strict", cwd=experiment).returncode == 1
    shown = sem("show", dirs[1].name, cwd=experiment).stdout
    assert f"run {dirs[1].name}  [COMPLETED]" in shown and "(none logged)" in shown
    assert "<img" in (experiment / "r.html").read_text()  # the plots of the other runs


def test_a_bad_journal_line_costs_that_line_only(experiment):
    dirs = run_dirs(experiment)
    journal = bad_journal_line(dirs[1])
    reason = r"line\(s\) 2 not valid metric points, skipped"
    assert records.read_metrics(dirs[1], lambda p: None)["score"]["values"] == [1.0, 7.0]
    for args in (["ls"], ["results"], ["show", dirs[1].name], ["report", "-o", "r.html"]):
        result = sem(*args, cwd=experiment)
        assert result.returncode == 0, (args, result.stderr)
        assert_one_warning(result, journal, reason)
    shown = sem("show", dirs[1].name, cwd=experiment).stdout
    assert re.search(r"score\s+last 7\s+min 1\s+max 7\s+\(2 points\)", shown), shown
    listed = sem("ls", "--where", "fold=1", cwd=experiment).stdout
    assert re.search(rf"{dirs[1].name}.*COMPLETED.*\s7\s*$", listed, re.M), listed


@pytest.mark.parametrize("case", list(RECORD_CASES))
def test_clean_lists_unreadable_records_at_once_and_bins_them(experiment, case):
    damage, reason = RECORD_CASES[case]
    dirs = run_dirs(experiment)
    damage(dirs[1])
    dry = sem("clean", "--force", cwd=experiment)
    assert dry.returncode == 1, dry.stderr  # the store still holds a record no other command can read
    assert re.search(rf"would move  {dirs[1].name}  \(unreadable record: (run|config)\.json: {reason}", dry.stdout), (
        dry.stdout
    )
    assert "1 unreadable record(s) remain" in dry.stderr
    moved = sem("clean", "--force", "--yes", cwd=experiment)
    assert moved.returncode == 0, moved.stderr
    assert not dirs[1].exists() and dirs[0].exists() and dirs[2].exists()
    assert sem("clean", "--restore", cwd=experiment).returncode == 0
    assert dirs[1].exists()


@pytest.mark.parametrize("case", list(RECORD_CASES) + list(METRICS_CASES))
def test_sync_uploads_the_readable_runs_and_fails_on_the_other(experiment, case, mongo_url, mongo_db, isolated_home):
    damage, reason = {**RECORD_CASES, **METRICS_CASES}[case]
    dirs = run_dirs(experiment)
    bad = damage(dirs[1])
    env = {"SEM_MONGO_URL": mongo_url, "HOME": str(isolated_home)}
    dry = sem("sync", "--dry-run", cwd=experiment, env=env)
    assert dry.returncode == 1, dry.stdout + dry.stderr
    assert re.search(re.escape(f"would fail  {dirs[1]}: {bad}: ") + reason, dry.stdout), dry.stdout
    assert "2 to upload" in dry.stdout
    real = sem("sync", cwd=experiment, env=env)
    assert real.returncode == 1 and "Traceback" not in real.stderr, real.stdout + real.stderr
    assert re.search(re.escape(f"failed  {dirs[1]}: {bad}: ") + reason, real.stdout), real.stdout
    assert "uploaded 2, updated 0, unchanged 0, failed 1" in real.stdout
    assert sorted(d["config"]["fold"] for d in mongo_db.runs.find()) == [0, 2]


def test_no_metric_logged_is_a_clear_message(experiment):
    model = experiment / "models" / "m_quiet.py"
    model.write_text(MODEL.replace('ex.log_scalar("score", config["fold"] * 10 + step)', "pass"))
    shutil.rmtree(experiment / "models" / "runs")
    assert run_model(model, "-m").returncode == 0
    result = sem("results", cwd=experiment)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "No run logged a metric." in result.stderr
    report = sem("report", "-o", "r.html", cwd=experiment)  # the page still has the status counts
    assert report.returncode == 0 and "Traceback" not in report.stderr, report.stderr
    assert "No run logged a metric." in (experiment / "r.html").read_text()


def test_an_unreachable_database_is_one_clear_line(experiment):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = sem("ls", f"mongodb://127.0.0.1:{port}/sem", cwd=experiment)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"sem ls: error: cannot read the runs in MongoDB mongodb://127.0.0.1:{port}/sem: "), line


# -- one rule for the newest run of a row ----------------------------------------------------
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
run_st = st.builds(
    lambda second, micro, suffix, status, no_time: (
        None if no_time else (T0 + dt.timedelta(seconds=second, microseconds=micro)).isoformat(),
        f"{(T0 + dt.timedelta(seconds=second)).strftime('%Y%m%dT%H%M%S')}-{suffix}",
        status,
    ),
    second=st.integers(0, 2),
    micro=st.sampled_from([0, 250_000, 999_999]),
    suffix=st.from_regex(r"[a-f0-9]{4}", fullmatch=True),
    status=st.sampled_from(["COMPLETED", "FAILED"]),
    no_time=st.booleans(),
)


@settings(deadline=None, max_examples=200)
@given(st.lists(run_st, min_size=1, max_size=8, unique_by=lambda r: r[1]))
def test_clean_results_and_resume_agree_on_the_newest_run_of_a_row(runs):
    """Runs of one row, some started in the same second (folder names then disagree with start
    times): `sem results` counts the run that `sem clean` keeps and that a resumed sweep sees as the
    latest."""
    completed = [r for r in runs if r[2] == "COMPLETED"]
    expected = max(runs, key=lambda r: records.recency(r[0], r[1]))

    summaries = [
        summarise(
            f"/store/{gid}",
            {"status": status, "start_time": start, "experiment": {"mainfile": "m.py"}},
            {"experiment_id": "e1", "config_id": "c1", "order_id": 0, "global_id": gid},
        )
        for start, gid, status in runs
    ]
    included, _ = counted_runs(summaries_to_frame(summaries), statuses=None)
    assert list(included["global_id"]) == [expected[1]]

    class Job:
        order_id, experiment_id = 0, "e1"

    existing = [ExistingRun("e1", "m.py", status, gid, start_time=start) for start, gid, status in runs]
    rerun_failed = select_jobs([Job()], existing, "m.py", rerun="failed")
    assert bool(rerun_failed.to_run) == (expected[2] == "FAILED")

    if completed:
        newest_completed = max(completed, key=lambda r: records.recency(r[0], r[1]))
        counted, _ = counted_runs(summaries_to_frame(summaries))
        assert list(counted["global_id"]) == [newest_completed[1]]
        entries = [StoreEntry(gid, status, "e1", "m.py", 0.0, start) for start, gid, status in runs]
        plan = plan_clean(entries, shared=(), force=True)
        binned = {i.name for i in plan.move}
        assert newest_completed[1] not in binned
        assert binned == {gid for _, gid, _ in runs} - {newest_completed[1]}


def test_runs_started_in_the_same_second_go_by_start_time_not_folder_name():
    started_first = ("2026-01-01T00:00:00.100000+00:00", "20260101T000000-ffff")
    started_last = ("2026-01-01T00:00:00.900000+00:00", "20260101T000000-0000")
    assert max([started_first, started_last], key=lambda r: records.recency(*r)) == started_last
    # equal start times: the greater global_id is the newer; no start time: older than any
    assert records.recency("2026-01-01T00:00:00", "b") > records.recency("2026-01-01T00:00:00", "a")
    assert records.recency(None, "z") < records.recency("2020-01-01T00:00:00", "a")
