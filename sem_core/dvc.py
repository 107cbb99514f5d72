"""Sharing run stores and results with DVC: ``sem dvc init / push / pull``.

Uses the real ``dvc`` command (of the running Python, ``python -m dvc``) and ``git``.

- ``init``: ``dvc init`` at the top of the git repository when needed, a default remote (local
  folder, ``s3://``, ``gdrive://`` ...); the DVC files and the remote are committed so that every
  clone shares them (secrets, e.g. a Google Drive client secret, go to the git-ignored
  ``.dvc/config.local``).
- ``push``: ``dvc add`` the run store and the results folder, commit ONLY the ``.dvc`` and
  ``.gitignore`` files this changed (other staged changes stay staged, uncommitted), ``dvc push``.
- ``pull``: ``dvc fetch`` and then a MERGING checkout: ``dvc checkout`` would make the folder
  equal to the pulled version and so delete runs made here since the last push. Run folders are
  named by globally unique ids, so the union of both sides has no conflicts: sem copies in what is
  missing locally and keeps everything else (a file that differs on both sides is kept as it is
  here and reported).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from sem_core.errors import SemError
from sem_core.run_status import ACTIVE_STATUSES
from sem_core.sources import file_md5

DEFAULT_REMOTE_NAME = "storage"
# URL scheme -> (python module of the DVC plugin, pip package)
REMOTE_PLUGINS = {
    "s3": ("dvc_s3", "dvc-s3"),  # also sem's s3 extra
    "gs": ("dvc_gs", "dvc-gs"),
    "gdrive": ("dvc_gdrive", "dvc-gdrive"),  # also sem's gdrive extra
    "azure": ("dvc_azure", "dvc-azure"),
    "ssh": ("dvc_ssh", "dvc-ssh"),
    "http": ("dvc_http", "dvc-http"),
    "https": ("dvc_http", "dvc-http"),
}


class DvcError(SemError):
    """git or DVC refused; the message says what to do."""


# ------------------------------------------------------------------------------ processes
def _run(args: Sequence[str], cwd: Path, what: str) -> str:
    result = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise DvcError(f"{what} failed in {cwd} (exit code {result.returncode}): {' | '.join(detail[-5:])}")
    return result.stdout


def git(cwd: Path, *args: str) -> str:
    return _run(["git", *args], cwd, "git " + " ".join(args[:2]))


def dvc(cwd: Path, *args: str) -> str:
    return _run([sys.executable, "-m", "dvc", *args], cwd, "dvc " + " ".join(args[:2]))


def git_root(path: Path) -> Path:
    path = Path(path).resolve()
    probe = path if path.is_dir() else path.parent
    result = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=probe, capture_output=True, text=True)
    if result.returncode != 0:
        raise DvcError(
            f"{path} is not inside a git repository: DVC records data versions in git; "
            "run `git init` (or clone the project) first"
        )
    return Path(result.stdout.strip())


def require_dvc_installed() -> None:
    """DVC is an optional dependency (the ``dvc`` extra): say how to get it before anything changes."""
    import importlib.util

    if importlib.util.find_spec("dvc") is None or importlib.util.find_spec("configobj") is None:
        raise DvcError(f"DVC is not installed for {sys.executable}: pip install dvc")


def require_dvc_repo(root: Path) -> None:
    if not (root / ".dvc").is_dir():
        raise DvcError(f"{root} has no DVC set-up: run `sem dvc init --remote URL` first")


def repo_config(root: Path) -> dict:
    """The repository's DVC settings: ``.dvc/config`` overlaid with ``.dvc/config.local`` (read
    directly: each ``dvc config`` call costs a ~0.6 s interpreter start-up)."""
    require_dvc_installed()
    import configobj

    merged: dict = {}
    for name in ("config", "config.local"):
        path = root / ".dvc" / name
        if path.exists():
            for section, values in configobj.ConfigObj(str(path)).items():
                if isinstance(values, dict):
                    merged.setdefault(section, {}).update(values)
    return merged


def default_remote_name(root: Path) -> str | None:
    """The default remote's name, None when there is none."""
    name = repo_config(root).get("core", {}).get("remote")
    if name:
        return name
    # set in the user's or the system's DVC config, which only dvc itself knows where to find
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "remote", "default"], cwd=root, capture_output=True, text=True
    )
    return (result.stdout.strip() or None) if result.returncode == 0 else None


def default_remote(root: Path) -> str:
    name = default_remote_name(root)
    if not name:
        listed = dvc(root, "remote", "list").strip()
        hint = (
            f" (remotes: {listed.splitlines()[0].split()[0]} ...; make one the default with `dvc remote default NAME`)"
            if listed
            else ""
        )
        raise DvcError(f"{root}: no default DVC remote{hint}; run `sem dvc init --remote URL`")
    return name


def unmerged_paths(root: Path) -> list[str]:
    return sorted({line.split("\t", 1)[1] for line in git(root, "ls-files", "-u").splitlines() if "\t" in line})


def require_no_conflicts(root: Path, resolvable: Sequence[str] = ()) -> None:
    """Refuse to work on a repository with unresolved conflicts, except in ``resolvable`` paths
    (the .dvc files of run stores, which ``sem dvc pull`` merges)."""
    unmerged = [p for p in unmerged_paths(root) if p not in set(resolvable)]
    if unmerged:
        hint = (
            "; a conflict in the .dvc file of a run store is resolved by `sem dvc pull`"
            if any(p.endswith(".dvc") for p in unmerged)
            else ""
        )
        raise DvcError(
            f"{root} has unresolved merge conflicts in {', '.join(unmerged[:10])}: resolve them and commit first{hint}"
        )


def require_no_merge_in_progress(root: Path) -> None:
    probe = subprocess.run(
        ["git", "rev-parse", "-q", "--verify", "MERGE_HEAD"], cwd=root, capture_output=True, text=True
    )
    if probe.returncode == 0:
        raise DvcError(f"{root}: a git merge is in progress: finish it with `git commit` first, then run this again")


# ------------------------------------------------------------------------------ init
def check_remote_plugin(url: str) -> None:
    scheme = urlsplit(url).scheme if "://" in url else ""
    plugin = REMOTE_PLUGINS.get(scheme)
    if plugin is None:
        return
    module, package = plugin
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise DvcError(f"a {scheme}:// remote needs the DVC plugin {package}: pip install {package}")


def init(
    start: Path,
    remote_url: str | None = None,
    remote_name: str = DEFAULT_REMOTE_NAME,
    gdrive_client_id: str | None = None,
    gdrive_client_secret: str | None = None,
) -> list[str]:
    """Set up DVC (where needed) and a default remote; return what was done, one line each."""
    require_dvc_installed()
    root = git_root(start)
    if remote_url:
        check_remote_plugin(remote_url)  # before changing anything
    done = []
    committed: list[str] = []
    if not (root / ".dvc").is_dir():
        dvc(root, "init", "-q")
        done.append(f"dvc init in {root}")
        committed += [".dvc/config", ".dvc/.gitignore", ".dvcignore"]
    if remote_url:
        url = remote_url
        if "://" not in url and not os.path.isabs(os.path.expanduser(url)):
            # a relative path would be read relative to .dvc/ in each clone: pin it
            url = str((Path.cwd() / url).resolve())
        dvc(root, "remote", "add", "--default", "--force", remote_name, url)
        if gdrive_client_id:
            dvc(root, "remote", "modify", remote_name, "gdrive_client_id", gdrive_client_id)
        if gdrive_client_secret:
            # never into the committed .dvc/config
            dvc(root, "remote", "modify", "--local", remote_name, "gdrive_client_secret", gdrive_client_secret)
        done.append(f"default remote {remote_name!r} -> {url}")
        committed.append(".dvc/config")
    elif not default_remote_name(root):
        done.append("no remote yet: add one with `sem dvc init --remote URL` before `sem dvc push`")
    for name in GENERATED_IGNORES:
        if _ensure_line(root / name, GENERATED_PATTERN):
            done.append(f"{name}: ignores {GENERATED_PATTERN} (Hydra's per-sweep output folders)")
            committed.append(name)
    if committed:
        paths = sorted({p for p in committed if (root / p).exists()})
        if commit_paths(root, paths, "sem dvc init: DVC set-up and default remote"):
            done.append(f"committed {', '.join(paths)}")
    return done


# sem's own output folders: a sweep's Hydra folder holds logs and saved configs, not results
GENERATED_PATTERN = "multirun/"
GENERATED_IGNORES = (".gitignore", ".dvcignore")


def _ensure_line(path: Path, line: str) -> bool:
    """Append ``line`` to the file unless it already holds it; True when the file changed."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if line in text.splitlines():
        return False
    path.write_text(text + ("" if not text or text.endswith("\n") else "\n") + line + "\n", encoding="utf-8")
    return True


def commit_paths(root: Path, paths: Sequence[str], message: str) -> bool:
    """Commit exactly ``paths`` (``git commit --only``): changes staged for other files stay
    staged and out of this commit. Returns False when there was nothing to commit."""
    paths = list(paths)
    if not paths:
        return False
    git(root, "add", "--", *paths)
    if not git(root, "diff", "--cached", "--name-only", "--", *paths).strip():
        return False
    git(root, "commit", "-q", "--only", "-m", message, "--", *paths)
    return True


# ------------------------------------------------------------------------------ push / pull
@dataclass
class Targets:
    root: Path  # git root
    paths: list[Path]  # folders to track: the run store, the results folder

    def dvc_files(self) -> list[Path]:
        return [p.with_name(p.name + ".dvc") for p in self.paths]


def targets_of(experiment_dir: Path, store: Path) -> Targets:
    root = git_root(experiment_dir)
    paths = [Path(store).resolve()]
    results = Path(experiment_dir).resolve() / "results"
    if results.is_dir() or results.with_name("results.dvc").exists():
        paths.append(results)
    for p in paths:
        if root not in p.parents:
            raise DvcError(f"{p} is outside the git repository {root}: DVC can only track folders inside it")
    return Targets(root=root, paths=paths)


def push(targets: Targets) -> list[str]:
    require_dvc_installed()
    root = targets.root
    require_dvc_repo(root)
    remote = default_remote(root)
    require_no_conflicts(root)
    require_no_merge_in_progress(root)  # git refuses partial commits during a merge
    present = [p for p in targets.paths if p.exists()]
    if not present:
        raise DvcError(f"nothing to push: {', '.join(map(str, targets.paths))} do not exist yet (run some experiments)")
    rel = [str(p.relative_to(root)) for p in present]
    live = _live_runs(present[0])
    dvc(root, "add", *rel)
    changed = []
    for p in present:
        for candidate in (p.with_name(p.name + ".dvc"), p.parent / ".gitignore"):
            if candidate.exists():
                changed.append(str(candidate.relative_to(root)))
    changed = sorted(set(changed))
    done = []
    if commit_paths(root, changed, f"sem dvc push: {', '.join(rel)}"):
        done.append(f"committed {', '.join(changed)}")
    else:
        done.append("the .dvc files were already committed (no change since the last push)")
    dvc(root, "push", *[str(Path(r + ".dvc")) for r in rel])
    done.append(f"pushed {', '.join(rel)} to DVC remote {remote!r}")
    if live:
        done.append(
            f"{len(live)} run(s) still QUEUED/RUNNING were pushed as they are now ({', '.join(live[:5])}"
            f"{' ...' if len(live) > 5 else ''}): push again when they have finished"
        )
    done.append("share the .dvc files with your team: git push")
    return done


def _live_runs(store: Path) -> list[str]:
    from sem_core import records

    # a damaged record is not a live run: it is named and pushed like any file
    return [r.global_id for r in records.iter_runs(store, records.warn_problem) if r.status in ACTIVE_STATUSES]


@dataclass
class MergeReport:
    copied: int = 0
    kept_local: int = 0  # files here that the pulled version does not have
    conflicts: list[str] = field(default_factory=list)  # same path, different content: kept as here


def _cache_dir(root: Path) -> Path:
    configured = repo_config(root).get("cache", {}).get("dir")
    if configured:
        return (root / ".dvc" / os.path.expanduser(configured)).resolve()
    if (root / ".dvc" / "cache").is_dir():
        return root / ".dvc" / "cache"
    text = dvc(root, "cache", "dir").strip()  # a cache set in the user's or the system's config
    return Path(text) if text else root / ".dvc" / "cache"


def _cache_object(cache: Path, md5: str) -> Path:
    return cache / "files" / "md5" / md5[:2] / md5[2:]


def merge_checkout(cache: Path, target: Path, dir_md5: str) -> MergeReport:
    """Bring ``target`` up to the union of itself and the tracked version ``dir_md5``."""
    listing_file = _cache_object(cache, dir_md5)
    if not listing_file.exists():
        raise DvcError(f"{target}: the DVC cache has no listing {dir_md5} (the fetch did not complete)")
    listing = json.loads(listing_file.read_text(encoding="utf-8"))
    report = MergeReport()
    wanted = set()
    for entry in listing:
        rel = entry["relpath"]
        wanted.add(rel)
        dest = target / rel
        if dest.exists():
            if file_md5(dest) != entry["md5"]:
                report.conflicts.append(rel)
            continue
        source = _cache_object(cache, entry["md5"])
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.sem-pull.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
        report.copied += 1
    if target.is_dir():
        report.kept_local = sum(
            1 for p in target.rglob("*") if p.is_file() and p.relative_to(target).as_posix() not in wanted
        )
    return report


def _tracked_dir_md5(dvc_file: Path) -> str:
    from sem_core.settings import read_yaml

    data = read_yaml(dvc_file) or {}
    outs = data.get("outs") or []
    if len(outs) != 1 or not str(outs[0].get("md5", "")).endswith(".dir"):
        raise DvcError(
            f"{dvc_file}: expected one tracked folder (outs with a .dir md5); was it written by sem dvc push?"
        )
    return outs[0]["md5"]


def _stage_md5(root: Path, rel: str, stage: int) -> str | None:
    """The tracked folder hash in one side of a conflicted .dvc file (2 = ours, 3 = theirs)."""
    import yaml

    result = subprocess.run(["git", "show", f":{stage}:{rel}"], cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        return None  # the file does not exist on that side
    outs = (yaml.safe_load(result.stdout) or {}).get("outs") or []
    return outs[0].get("md5") if len(outs) == 1 else None


def _fetch_md5(root: Path, dvc_file: Path, md5: str) -> None:
    """Fetch one version of a tracked folder by writing a throw-away .dvc file that names it."""
    import yaml

    name = dvc_file.name[: -len(".dvc")]
    tmp = dvc_file.with_name(f"{name}.sem-merge-{md5[:8]}.dvc")
    tmp.write_text(yaml.safe_dump({"outs": [{"md5": md5, "hash": "md5", "path": name}]}), encoding="utf-8")
    try:
        dvc(root, "fetch", str(tmp.relative_to(root)))
    finally:
        tmp.unlink()


def _report_line(root: Path, target: Path, report: MergeReport) -> list[str]:
    line = f"{target.relative_to(root)}: {report.copied} file(s) restored"
    if report.kept_local:
        line += f", {report.kept_local} local file(s) not pushed yet kept (share them with `sem dvc push`)"
    lines = [line]
    if report.conflicts:
        lines.append(
            f"{target.relative_to(root)}: {len(report.conflicts)} file(s) differ from the pulled version and were "
            f"kept as they are here: {', '.join(report.conflicts[:10])}"
        )
    return lines


def pull(targets: Targets) -> list[str]:
    """Fetch and merge the tracked run store and results. A git conflict in their .dvc files (two
    users pushed at the same time) is resolved here: both sides are fetched and merged into the
    folder, and the .dvc file is rewritten for the union."""
    require_dvc_installed()
    root = targets.root
    require_dvc_repo(root)
    remote = default_remote(root)
    all_files = list(targets.dvc_files())
    all_rel = [str(f.relative_to(root)) for f in all_files]
    require_no_conflicts(root, resolvable=all_rel)
    conflicted = set(unmerged_paths(root)) & set(all_rel)
    files = [f for f in all_files if f.exists()]
    if not files:
        raise DvcError(
            f"nothing to pull: {', '.join(all_rel)} not found; "
            "`git pull` the project first (or `sem dvc push` to start sharing)"
        )
    cache = _cache_dir(root)
    done = []
    clean = [f for f in files if str(f.relative_to(root)) not in conflicted]
    if clean:
        rel = [str(f.relative_to(root)) for f in clean]
        dvc(root, "fetch", *rel)
        done.append(f"fetched {', '.join(rel)} from DVC remote {remote!r}")
        for dvc_file in clean:
            target = dvc_file.with_name(dvc_file.name[: -len(".dvc")])
            done += _report_line(root, target, merge_checkout(cache, target, _tracked_dir_md5(dvc_file)))
    merging = [f for f in files if str(f.relative_to(root)) in conflicted]
    sides = {f: [m for m in (_stage_md5(root, str(f.relative_to(root)), n) for n in (2, 3)) if m] for f in merging}
    # DVC reads every .dvc file of the repository: none may hold conflict markers from here on
    for dvc_file in merging:
        git(root, "checkout", "--theirs", "--", str(dvc_file.relative_to(root)))
    for dvc_file in merging:
        target = dvc_file.with_name(dvc_file.name[: -len(".dvc")])
        for md5 in sides[dvc_file]:
            _fetch_md5(root, dvc_file, md5)
            done += _report_line(root, target, merge_checkout(cache, target, md5))
    if merging:
        # record the union: fresh .dvc files for the merged folders resolve the conflicts
        dvc(root, "add", *[str(f.relative_to(root))[: -len(".dvc")] for f in merging])
        git(root, "add", "--", *[str(f.relative_to(root)) for f in merging])
        done.append(
            f"{', '.join(str(f.relative_to(root)) for f in merging)}: merge conflict resolved with the runs of both "
            "sides; finish the merge with `git commit`, then `sem dvc push`"
        )
    return done


def pushed_run_names(store: Path) -> set[str]:
    """Run folders whose every file is in the DVC-tracked version of the store (``<store>.dvc``)
    with the same content, and that version is in the local DVC cache (it was pushed or pulled)."""
    dvc_file = store.with_name(store.name + ".dvc")
    if not dvc_file.exists():
        return set()
    root = git_root(store)
    listing_file = _cache_object(_cache_dir(root), _tracked_dir_md5(dvc_file))
    if not listing_file.exists():
        return set()
    tracked: dict[str, dict[str, str]] = {}
    for entry in json.loads(listing_file.read_text(encoding="utf-8")):
        top, _, rest = entry["relpath"].partition("/")
        tracked.setdefault(top, {})[rest] = entry["md5"]
    pushed = set()
    for name, files in tracked.items():
        folder = store / name
        if not folder.is_dir():
            continue
        local = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
        if set(local) == set(files) and all(file_md5(local[rel]) == md5 for rel, md5 in files.items()):
            pushed.add(name)
    return pushed
