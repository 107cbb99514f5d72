"""Two users, two clones, one git origin and one DVC remote (a local folder): split a sweep,
share with `sem dvc push/pull`, resume with skip_completed, reproduce a run with `--repro`.

Real git, real DVC, the real example (examples/regression), the real `sem` command."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, load_store, run_model

pytestmark = pytest.mark.slow


def sh(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def sem(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return sh(sys.executable, "-m", "sem_core.cli", *args, cwd=cwd, check=check)


def configure_user(repo: Path, name: str) -> None:
    sh("git", "config", "user.name", name, cwd=repo)
    sh("git", "config", "user.email", f"{name.lower()}@example.org", cwd=repo)


def runs_by_eid(store: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in load_store(store):
        out.setdefault(r["config"]["experiment_id"], []).append(r)
    return out


@pytest.fixture
def team(tmp_path: Path):
    """origin (bare git), DVC remote folder, and user A's clone holding the example."""
    origin = tmp_path / "origin.git"
    sh("git", "init", "-q", "--bare", "-b", "main", str(origin), cwd=tmp_path)
    a = tmp_path / "alice"
    sh("git", "clone", "-q", str(origin), str(a), cwd=tmp_path)
    configure_user(a, "Alice")
    shutil.copytree(
        EXAMPLE, a / "regression", ignore=shutil.ignore_patterns("runs", "multirun", "results", "__pycache__")
    )
    (a / ".gitignore").write_text("__pycache__/\nmultirun/\noutputs/\n")
    sh("git", "add", ".", cwd=a)
    sh("git", "commit", "-qm", "example", cwd=a)
    sh("git", "push", "-q", "origin", "HEAD:main", cwd=a)
    remote = tmp_path / "dvc-remote"
    return {"origin": origin, "a": a, "remote": remote, "tmp": tmp_path}


def test_dvc_commands_give_clear_errors(tmp_path):
    plain = tmp_path / "plain" / "exp"
    (plain / "models").mkdir(parents=True)
    result = sem("dvc", "push", str(plain), cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert "not inside a git repository" in result.stderr and "git init" in result.stderr

    repo = tmp_path / "repo"
    (repo / "exp" / "models" / "runs" / "r1").mkdir(parents=True)
    sh("git", "init", "-q", cwd=repo)
    result = sem("dvc", "push", "exp", cwd=repo, check=False)
    assert result.returncode == 2 and "sem dvc init --remote URL" in result.stderr

    configure_user(repo, "Carol")
    assert "no remote yet" in sem("dvc", "init", cwd=repo).stdout
    # Hydra's sweep folders are ignored by git and DVC, and that is committed
    (repo / "exp" / "models" / "multirun" / "2026-01-01").mkdir(parents=True)
    assert "multirun/" in (repo / ".gitignore").read_text().splitlines()
    assert "multirun/" in (repo / ".dvcignore").read_text().splitlines()
    assert sh("git", "status", "--porcelain", "--untracked-files=all", cwd=repo).stdout.count("multirun") == 0
    result = sem("dvc", "push", "exp", cwd=repo, check=False)
    assert result.returncode == 2 and "no default DVC remote" in result.stderr

    # a merge conflict must be resolved before anything is committed or pushed
    sem("dvc", "init", "--remote", str(tmp_path / "remote"), cwd=repo)
    (repo / "notes.txt").write_text("base\n")
    sh("git", "add", "notes.txt", cwd=repo)
    sh("git", "commit", "-qm", "base", cwd=repo)
    sh("git", "checkout", "-qb", "other", cwd=repo)
    (repo / "notes.txt").write_text("theirs\n")
    sh("git", "commit", "-qam", "theirs", cwd=repo)
    sh("git", "checkout", "-q", "-", cwd=repo)
    (repo / "notes.txt").write_text("ours\n")
    sh("git", "commit", "-qam", "ours", cwd=repo)
    assert sh("git", "merge", "other", cwd=repo, check=False).returncode != 0
    result = sem("dvc", "push", "exp", cwd=repo, check=False)
    assert result.returncode == 2 and "unresolved merge conflicts in notes.txt" in result.stderr
    assert not (repo / "exp" / "models" / "runs.dvc").exists()


def test_cloud_remote_without_its_plugin_names_the_package(tmp_path):
    import importlib.util

    if importlib.util.find_spec("dvc_s3") is not None:
        pytest.skip("dvc-s3 is installed here: the missing-plugin message cannot occur")
    sh("git", "init", "-q", cwd=tmp_path)
    result = sem("dvc", "init", "--remote", "s3://bucket/runs", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "pip install dvc-s3" in result.stderr
    assert not (tmp_path / ".dvc").exists()  # nothing was set up half-way


# `sem` in a Python where DVC cannot be imported, as when the dvc extra is not installed
WITHOUT_DVC = "import runpy, sys; sys.modules['dvc'] = None; runpy.run_module('sem_core.cli', run_name='__main__')"


@pytest.mark.parametrize("action", ["init", "push", "pull"])
def test_sem_dvc_without_dvc_says_how_to_install_it(tmp_path, action):
    sh("git", "init", "-q", cwd=tmp_path)
    shutil.copytree(
        EXAMPLE, tmp_path / "exp", ignore=shutil.ignore_patterns("runs", "multirun", "results", "__pycache__")
    )
    args = ["--remote", str(tmp_path / "remote")] if action == "init" else [str(tmp_path / "exp")]
    result = sh(sys.executable, "-c", WITHOUT_DVC, "dvc", action, *args, cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"sem dvc: error: DVC is not installed for {sys.executable}: pip install dvc"
    ]
    assert not (tmp_path / ".dvc").exists()  # nothing was set up half-way


def test_two_users_split_share_and_resume_a_sweep(team):
    a, remote, tmp = team["a"], team["remote"], team["tmp"]
    a_exp = a / "regression"
    model_a = a_exp / "models" / "m_linear.py"

    # A sets up DVC with a shared remote; the set-up is committed for everyone
    out = sem("dvc", "init", "--remote", str(remote), cwd=a).stdout
    assert "dvc init" in out and str(remote) in out
    assert str(remote) in sh("git", "show", "HEAD:.dvc/config", cwd=a).stdout

    # A runs folds 0-2 (2 noise levels x 3 folds)
    result = run_model(model_a, "-m", "fold=0,1,2", cwd=a_exp)
    assert result.returncode == 0, result.stderr
    store_a = a_exp / "models" / "runs"
    assert sorted(r["config"]["fold"] for r in load_store(store_a)) == [0, 0, 1, 1, 2, 2]

    # an unrelated staged change must stay staged and out of sem's commit
    (a / "NOTES.md").write_text("work in progress\n")
    sh("git", "add", "NOTES.md", cwd=a)
    out = sem("dvc", "push", cwd=a_exp).stdout
    assert "pushed regression/models/runs" in out
    committed = sh("git", "show", "--name-only", "--format=", "HEAD", cwd=a).stdout.split()
    assert set(committed) == {
        "regression/models/runs.dvc",
        "regression/results.dvc",
        "regression/models/.gitignore",
        "regression/.gitignore",
    }
    assert sh("git", "diff", "--cached", "--name-only", cwd=a).stdout.split() == ["NOTES.md"]
    sh("git", "push", "-q", "origin", "HEAD:main", cwd=a)

    # B clones and pulls the runs
    b = tmp / "bob"
    sh("git", "clone", "-q", str(team["origin"]), str(b), cwd=tmp)
    configure_user(b, "Bob")
    b_exp = b / "regression"
    store_b = b_exp / "models" / "runs"
    out = sem("dvc", "pull", cwd=b_exp).stdout
    assert "file(s) restored" in out
    for run_a in load_store(store_a):
        twin = store_b / run_a["dir"].name
        for name in ("run.json", "config.json", "metrics.json"):
            assert (twin / name).read_bytes() == (run_a["dir"] / name).read_bytes()
    assert len(list((b_exp / "results").glob("*.pickle"))) == 6

    # B runs the whole list, skipping what A completed: only folds 3 and 4 run
    result = run_model(b_exp / "models" / "m_linear.py", "-m", "sem.skip_completed=true", cwd=b_exp)
    assert result.returncode == 0, result.stderr
    assert "skipped 6 row(s)" in result.stdout
    by_eid = runs_by_eid(store_b)
    assert len(by_eid) == 10 and all(len(v) == 1 for v in by_eid.values())  # no duplicates
    new = [r for r in load_store(store_b) if not (store_a / r["dir"].name).exists()]
    assert sorted(r["config"]["fold"] for r in new) == [3, 3, 4, 4]

    # capture: B's runs know B's code version, once per sweep, in every run
    head_b = sh("git", "rev-parse", "HEAD", cwd=b).stdout.strip()
    captures = [r["run"]["meta"]["sem"]["capture"] for r in new]
    assert all(c == captures[0] for c in captures)
    git = captures[0]["git"]
    assert git["commit"] == head_b and git["branch"] == "main" and git["remote"] == str(team["origin"])
    assert git["user_name"] == "Bob" and git["dirty"] is False and git["model_file"] == "regression/models/m_linear.py"
    assert captures[0]["packages"]["numpy"] and captures[0]["python"]["version"]
    assert captures[0]["dvc"] == []  # the run store and results/ are outputs, not input data

    # sem results in B: all five folds of both configurations
    table = sem("results", "--by", "fold", "--format", "csv", cwd=b_exp).stdout
    rows = list(csv.DictReader(io.StringIO(table)))
    assert sorted(int(float(r["fold"])) for r in rows) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]

    # B shares back; A pulls and keeps a run it has not pushed yet (a merging pull)
    sem("dvc", "push", cwd=b_exp)
    sh("git", "push", "-q", "origin", "HEAD:main", cwd=b)
    result = run_model(model_a, "-m", "order_id=0", "++noise=0.3", cwd=a_exp)
    assert result.returncode == 0, result.stderr
    (unpushed,) = [r for r in load_store(store_a) if r["config"]["noise"] == 0.3]
    sh("git", "commit", "-qm", "notes", "--", "NOTES.md", cwd=a)
    sh("git", "pull", "-q", "--no-rebase", "origin", "main", cwd=a)
    out = sem("dvc", "pull", cwd=a_exp).stdout
    assert "not pushed yet kept" in out
    assert unpushed["dir"].exists()
    assert len(runs_by_eid(store_a)) == 11


def test_repro_commands_rerun_a_dirty_run_with_identical_metrics(team):
    a, tmp = team["a"], team["tmp"]
    a_exp = a / "regression"
    model = a_exp / "models" / "m_linear.py"
    # a local edit that changes the results, using a new module git does not know: the run is
    # dirty, only the stored diff and the stored sources have the code
    source = model.read_text()
    helper = model.parent / "shrink.py"
    helper.write_text("FACTOR = 0.9\n")
    edited = source.replace("import numpy as np\n", "import numpy as np\nimport shrink\n", 1)
    model.write_text(edited.replace("rcond=None)", "rcond=None)\n    w = w * shrink.FACTOR  # shrinkage"))
    result = run_model(model, "-m", "order_id=3", "++noise=0.25", cwd=a_exp)
    assert result.returncode == 0, result.stderr
    (run,) = load_store(a_exp / "models" / "runs")
    git = run["run"]["meta"]["sem"]["capture"]["git"]
    assert git["dirty"] is True and git["changed"] == ["regression/models/m_linear.py"]
    assert "+    w = w * shrink.FACTOR  # shrinkage" in git["diff_excerpt"]
    assert git["untracked"] == ["regression/models/shrink.py"]
    assert (a_exp / "models" / "runs" / git["diff_file"]).is_file()
    model.write_text(source)  # the edit is gone from the work tree
    helper.unlink()

    commands = sem("show", run["dir"].name, "--repro", cwd=a_exp).stdout
    assert f"git checkout --detach {git['commit']}" in commands and "git apply" in commands
    assert "order_id=3" in commands and "++noise=0.25" in commands
    workspace = tmp / "elsewhere"
    workspace.mkdir()
    sh("bash", "-ec", commands, cwd=workspace)
    (clone,) = workspace.iterdir()
    (rerun,) = load_store(clone / "regression" / "models" / "runs")
    assert rerun["config"]["experiment_id"] == run["config"]["experiment_id"]
    original = json.loads((run["dir"] / "metrics.json").read_text())
    again = json.loads((rerun["dir"] / "metrics.json").read_text())
    assert original and {k: v["values"] for k, v in again.items()} == {k: v["values"] for k, v in original.items()}


def test_concurrent_pushes_conflict_and_sem_dvc_pull_merges_both_sides(team):
    a, remote, tmp = team["a"], team["remote"], team["tmp"]
    a_exp = a / "regression"
    sem("dvc", "init", "--remote", str(remote), cwd=a)
    assert run_model(a_exp / "models" / "m_linear.py", "-m", "fold=0", cwd=a_exp).returncode == 0
    sem("dvc", "push", cwd=a_exp)
    sh("git", "push", "-q", "origin", "HEAD:main", cwd=a)

    b = tmp / "bob"
    sh("git", "clone", "-q", str(team["origin"]), str(b), cwd=tmp)
    configure_user(b, "Bob")
    b_exp = b / "regression"
    sem("dvc", "pull", cwd=b_exp)

    # both run different folds and push at the same time: A wins the git push
    assert run_model(a_exp / "models" / "m_linear.py", "-m", "fold=1", cwd=a_exp).returncode == 0
    assert run_model(b_exp / "models" / "m_linear.py", "-m", "fold=2", cwd=b_exp).returncode == 0
    sem("dvc", "push", cwd=a_exp)
    sh("git", "push", "-q", "origin", "HEAD:main", cwd=a)
    sem("dvc", "push", cwd=b_exp)
    assert sh("git", "push", "-q", "origin", "HEAD:main", cwd=b, check=False).returncode != 0
    assert sh("git", "pull", "-q", "--no-rebase", "origin", "main", cwd=b, check=False).returncode != 0
    assert "regression/models/runs.dvc" in sh("git", "diff", "--name-only", "--diff-filter=U", cwd=b).stdout

    # push refuses, pull resolves by merging both sides' runs
    refused = sem("dvc", "push", cwd=b_exp, check=False)
    assert refused.returncode == 2 and "resolved by `sem dvc pull`" in refused.stderr
    out = sem("dvc", "pull", cwd=b_exp).stdout
    assert "merge conflict resolved" in out
    sh("git", "commit", "-qm", "merge", cwd=b)
    sem("dvc", "push", cwd=b_exp)
    sh("git", "push", "-q", "origin", "HEAD:main", cwd=b)
    folds_b = sorted(r["config"]["fold"] for r in load_store(b_exp / "models" / "runs"))
    assert folds_b == [0, 0, 1, 1, 2, 2]

    # A gets everything through git + DVC alone
    sh("git", "pull", "-q", "--no-rebase", "origin", "main", cwd=a)
    sem("dvc", "pull", cwd=a_exp)
    assert sorted(r["config"]["fold"] for r in load_store(a_exp / "models" / "runs")) == folds_b
