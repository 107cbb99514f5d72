"""Capture once per sweep: real git repositories and real DVC."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sem_core import capture, repro


def sh(*args: str, cwd: Path) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    sh("git", "init", "-q", "-b", "main", cwd=path)
    sh("git", "config", "user.name", "Ada Tester", cwd=path)
    sh("git", "config", "user.email", "ada@example.org", cwd=path)
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "proj")
    models = root / "exp" / "models"
    models.mkdir(parents=True)
    (models / "m_linear.py").write_text("LR = 0.1\n")
    (root / "README").write_text("hello\n")
    sh("git", "add", ".", cwd=root)
    sh("git", "commit", "-qm", "init", cwd=root)
    sh("git", "remote", "add", "origin", "https://alice:s3cr3t-token@git.example.org/team/proj.git", cwd=root)
    return root


# ------------------------------------------------------------------------------ pure parts
userinfo = st.text(
    st.characters(whitelist_categories=("L", "N"), whitelist_characters="-_.~%!$&'()*+,;="), min_size=1, max_size=20
)


@settings(deadline=None)  # no timing asserts: CI machines are shared
@given(userinfo, userinfo, st.sampled_from(["https", "http", "ssh", "git+ssh"]))
def test_strip_credentials_removes_user_and_password(user, password, scheme):
    url = f"{scheme}://{user}:{password}@host.example.org:8443/team/repo.git"
    stripped = capture.strip_credentials(url)
    assert stripped == f"{scheme}://host.example.org:8443/team/repo.git"


def test_strip_credentials_keeps_urls_without_secrets():
    for url in ["https://github.com/a/b.git", "git@github.com:a/b.git", "/srv/git/b.git", "file:///srv/b"]:
        assert capture.strip_credentials(url) == url
    assert capture.strip_credentials("https://ghp_TOKEN@github.com/a/b") == "https://github.com/a/b"
    # an unescaped '@' inside the password must not leak its first half
    assert capture.strip_credentials("https://u:p@ss@github.com/a") == "https://github.com/a"


def test_parse_status_handles_renames_untracked_and_initial():
    text = "\0".join(
        [
            "# branch.oid (initial)",
            "# branch.head (detached)",
            "1 .M N... 100644 100644 100644 abc abc a file.py",
            "2 R. N... 100644 100644 100644 abc abc R100 new name.py",
            "old name.py",
            "? notes.txt",
            "",
        ]
    )
    parsed = capture.parse_status_v2(text)
    assert parsed["commit"] is None and parsed["branch"] is None
    assert parsed["changed"] == ["a file.py", "new name.py"]
    assert parsed["untracked"] == ["notes.txt"]


# ------------------------------------------------------------------------------ real git
def test_capture_of_a_clean_repository(repo, tmp_path):
    store = tmp_path / "runs"
    cap = capture.capture_sweep(repo / "exp" / "models" / "m_linear.py", store)
    git = cap["git"]
    assert git["commit"] == sh("git", "rev-parse", "HEAD", cwd=repo).strip()
    assert git["branch"] == "main"
    assert git["remote"] == "https://git.example.org/team/proj.git"
    assert "s3cr3t-token" not in json.dumps(cap)
    assert git["dirty"] is False and git["diff_file"] is None and git["diff_excerpt"] == ""
    assert git["model_file"] == "exp/models/m_linear.py"
    assert git["user_name"] == "Ada Tester" and "ada@example.org" not in json.dumps(cap)
    assert cap["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert cap["packages"]["hydra-core"] == metadata.version("hydra-core")
    assert cap["packages"]["omegaconf"] == metadata.version("omegaconf")
    assert cap["user"]
    assert cap["dvc"] == []
    json.dumps(cap)  # it goes into run.json as is
    assert not (store / capture.DIFFS_DIR).exists()


def test_dirty_diff_is_captured_and_applies_to_a_clean_checkout(repo, tmp_path):
    model = repo / "exp" / "models" / "m_linear.py"
    model.write_text("LR = 0.5  # tuned\n")
    (repo / "scratch.txt").write_text("untracked\n")
    store = tmp_path / "runs"
    cap = capture.capture_sweep(model, store)
    git = cap["git"]
    assert git["dirty"] is True
    assert git["changed"] == ["exp/models/m_linear.py"]
    assert git["untracked"] == ["scratch.txt"]
    assert "+LR = 0.5  # tuned" in git["diff_excerpt"]
    diff_file = store / git["diff_file"]
    assert diff_file.read_text() == git["diff_excerpt"]
    # stored once per content: a second sweep on the same tree reuses the file
    assert capture.capture_sweep(model, store)["git"]["diff_file"] == git["diff_file"]
    assert len(list((store / capture.DIFFS_DIR).iterdir())) == 1
    # the stored diff rebuilds the dirty tree from the commit
    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(repo), str(clone), cwd=tmp_path)
    sh("git", "checkout", "-q", "--detach", git["commit"], cwd=clone)
    sh("git", "apply", str(diff_file), cwd=clone)
    assert (clone / "exp" / "models" / "m_linear.py").read_text() == "LR = 0.5  # tuned\n"


def test_long_diff_is_bounded_in_the_record_and_whole_in_the_file(repo, tmp_path):
    readme = repo / "README"
    readme.write_text("".join(f"line {i} of a long change\n" for i in range(5000)))
    cap = capture.capture_sweep(repo / "exp" / "models" / "m_linear.py", tmp_path / "runs")
    git = cap["git"]
    assert git["diff_truncated"] is True
    assert len(git["diff_excerpt"]) == capture.DIFF_EXCERPT_CHARS
    full = (tmp_path / "runs" / git["diff_file"]).read_text()
    assert len(full) == git["diff_bytes"] > capture.DIFF_EXCERPT_CHARS
    assert "+line 4999 of a long change" in full


def test_outside_git_there_is_no_git_capture(tmp_path):
    model = tmp_path / "plain" / "m_x.py"
    model.parent.mkdir()
    model.write_text("")
    cap = capture.capture_sweep(model, tmp_path / "runs")
    assert cap["git"] is None and cap["dvc"] == [] and cap["packages"]


def test_installed_packages_agree_with_importlib_metadata(tmp_path, monkeypatch):
    # what the interpreter would import (first on sys.path wins), as importlib.metadata sees it
    expected: dict[str, str] = {}
    for dist in metadata.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
        expected.setdefault(name, dist.version)
    assert capture.installed_packages() == dict(sorted(expected.items()))
    # the legacy layouts: an egg-info folder (PKG-INFO), an egg-info file, one without a version
    extra = tmp_path / "site"
    (extra / "Old_Pkg.egg-info").mkdir(parents=True)
    headers = "Metadata-Version: 1.1\nName: Old_Pkg\nVersion: 0.3.1\n\nVersion: the body, not a header\n"
    (extra / "Old_Pkg.egg-info" / "PKG-INFO").write_text(headers)
    (extra / "flat.egg-info").write_text("Metadata-Version: 1.0\nName: flat\nVersion: 2.0\n")
    (extra / "broken.egg-info").mkdir()
    monkeypatch.syspath_prepend(str(extra))
    found = capture.installed_packages()
    assert (found["old-pkg"], found["flat"], found["broken"]) == ("0.3.1", "2.0", "unknown (ValueError)")
    assert found["old-pkg"] == metadata.Distribution.at(extra / "Old_Pkg.egg-info").version


# ------------------------------------------------------------------------------ real DVC
def dvc(*args: str, cwd: Path) -> str:
    return sh(sys.executable, "-m", "dvc", *args, cwd=cwd)


def test_dvc_state_matches_dvc_and_sees_workspace_changes(repo, tmp_path):
    dvc("init", "-q", cwd=repo)
    data = repo / "exp" / "data"
    (data / "images").mkdir(parents=True)
    (data / "table.csv").write_text("x,y\n1,2\n")
    for i in range(3):
        (data / "images" / f"{i}.txt").write_text(f"image {i}\n")
    (data / "images" / "sub").mkdir()
    (data / "images" / "sub" / "deep.txt").write_text("deep\n")
    dvc("add", "-q", "exp/data/table.csv", "exp/data/images", cwd=repo)
    sh("git", "add", ".", cwd=repo)
    sh("git", "commit", "-qm", "data", cwd=repo)
    model = repo / "exp" / "models" / "m_linear.py"

    state = {e["path"]: e for e in capture.capture_sweep(model, tmp_path / "runs")["dvc"]}
    images_dvc = (data / "images.dvc").read_text()
    assert state["exp/data/images"]["md5"] in images_dvc
    assert state["exp/data/images"]["state"] == "match"
    assert state["exp/data/table.csv"]["state"] == "match"
    assert state["exp/data/table.csv"]["source"] == "exp/data/table.csv.dvc"

    (data / "images" / "sub" / "deep.txt").write_text("changed\n")
    (data / "table.csv").unlink()
    state = {e["path"]: e for e in capture.capture_sweep(model, tmp_path / "runs")["dvc"]}
    assert state["exp/data/images"]["state"] == "modified"
    assert state["exp/data/table.csv"]["state"] == "missing"
    # DVC agrees
    status = json.loads(dvc("status", "--json", cwd=repo))
    assert set(status) == {"exp/data/images.dvc", "exp/data/table.csv.dvc"}


def test_dvc_lock_outputs_are_captured(repo, tmp_path):
    dvc("init", "-q", cwd=repo)
    exp = repo / "exp"
    (exp / "prepare.py").write_text("open('prepared.txt', 'w').write('prepared\\n')\n")
    dvc("stage", "add", "-q", "-n", "prepare", "-d", "prepare.py", "-o", "prepared.txt", "python prepare.py", cwd=exp)
    dvc("repro", "-q", cwd=exp)
    (entry,) = capture.capture_sweep(exp / "models" / "m_linear.py", tmp_path / "runs")["dvc"]
    assert entry["path"] == "exp/prepared.txt"
    assert entry["source"] == "exp/dvc.lock" and entry["stage"] == "prepare"
    assert entry["state"] == "match"


def test_renames_and_names_with_spaces_in_a_real_repository(repo, tmp_path):
    (repo / "old name.txt").write_text("a\n")
    sh("git", "add", ".", cwd=repo)
    sh("git", "commit", "-qm", "file with a space", cwd=repo)
    sh("git", "mv", "old name.txt", "new name.txt", cwd=repo)
    (repo / "dir with space").mkdir()
    (repo / "dir with space" / "f.txt").write_text("x\n")
    git = capture.capture_sweep(repo / "exp" / "models" / "m_linear.py", tmp_path / "runs")["git"]
    assert git["dirty"] is True
    assert git["changed"] == ["new name.txt"]
    assert git["untracked"] == ["dir with space/"]
    assert "rename to new name.txt" in git["diff_excerpt"]


def test_a_repository_git_refuses_to_read_is_an_error_not_a_missing_capture(repo, tmp_path):
    # a repository git refuses to read (e.g. "dubious ownership" on shared cluster disks) must not
    # pass for "no repository": a config file git cannot parse takes the same path here
    (repo / ".git" / "config").write_text((repo / ".git" / "config").read_text() + "\n[broken\n")
    with pytest.raises(capture.CaptureError, match="git cannot read the repository"):
        capture.capture_sweep(repo / "exp" / "models" / "m_linear.py", tmp_path / "runs")


def test_without_git_installed_the_capture_says_so(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.warns(UserWarning, match="git is not installed"):
        cap = capture.capture_sweep(repo / "exp" / "models" / "m_linear.py", tmp_path / "runs")
    assert cap["git"] is None and "git is not installed" in cap["git_error"]


def test_a_non_utf8_change_is_recorded_as_valid_text_and_stored_byte_exact(repo, tmp_path):
    latin1 = "café = 1\n".encode("latin-1")
    (repo / "README").write_bytes(latin1)
    cap = capture.capture_sweep(repo / "exp" / "models" / "m_linear.py", tmp_path / "runs")
    json.dumps(cap, ensure_ascii=False).encode("utf-8")  # no lone surrogates: MongoDB accepts it
    git = cap["git"]
    assert "caf\ufffd = 1" in git["diff_excerpt"]
    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(repo), str(clone), cwd=tmp_path)
    sh("git", "apply", str(tmp_path / "runs" / git["diff_file"]), cwd=clone)
    assert (clone / "README").read_bytes() == latin1


def test_replayed_overrides_keep_row_changes_and_drop_selections():
    config = {"lr": 0.1, "seed": 2, "fold": 3, "order_id": 3}
    argv = ["+order_id=3", "fold=3", "++lr=0.1", "+seed=1,2", "~noise", "sem.skip_completed=true", "-m"]
    assert repro.replay_overrides(argv, config) == (["++lr=0.1", "++seed=2", "~noise"], [])
