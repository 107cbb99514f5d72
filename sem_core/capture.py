"""What a run needs to be reproduced, captured ONCE per sweep in the launching process.

sacred asks git for the state of the repository again for every run and every source file
(sacred #850: ~150 ``is_dirty`` calls, minutes at start-up). sem captures once per sweep with
at most five git subprocesses in total and hands the same dict to every job:

- ``git``: commit, branch, remote URLs (credentials stripped), dirty flag, changed and untracked
  files, an excerpt of ``git diff HEAD`` (bounded) and the full diff stored once, content-addressed,
  as ``<run store>/_diffs/<sha256>.diff``;
- ``python``: version, implementation, executable; ``packages``: every installed distribution;
- ``dvc``: for every DVC-tracked output (``*.dvc`` files, ``dvc.lock``): the recorded hash and
  whether the workspace matches it;
- ``user``: the login name (and git ``user.name``; never the e-mail).

Per job, only the random seed is derived (``sem_core.seeding``); ``sem_core.repro`` turns a
capture back into commands.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sem_core.errors import SemError
from sem_core.sources import file_md5

CAPTURE_VERSION = 1
DIFFS_DIR = "_diffs"
# run.json holds at most this much of the diff; the whole diff is in the _diffs file
DIFF_EXCERPT_CHARS = 20_000
# lists of file names in run.json are cut to this many entries (the count is kept)
MAX_LISTED_FILES = 200
# DVC outputs larger than this are not re-hashed at capture time (hashing GBs per sweep is
# slower than the sweep); their workspace state is reported as "not-checked"
DVC_HASH_LIMIT_BYTES = 1 << 30


class CaptureError(SemError):
    """git or the file system refused a capture the user asked for."""


# --------------------------------------------------------------------------------- pure parts
def strip_credentials(url: str) -> str:
    """A remote URL without user name, password or token.

    ``https://user:tok@host/x`` -> ``https://host/x``. scp-like ``git@host:x`` keeps its user
    (``git`` is an account name, no secret fits there); local paths are returned unchanged.
    """
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        # unparsable: keep only what follows the last '@' of the authority, never a secret
        scheme, _, rest = url.partition("://")
        return f"{scheme}://{rest.rsplit('@', 1)[-1]}"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def parse_status_v2(text: str) -> dict:
    """Parse ``git status --porcelain=v2 --branch -z`` output.

    Returns ``{"commit", "branch", "upstream", "changed": [...], "untracked": [...]}``;
    ``commit`` is None before the first commit, ``branch`` None on a detached HEAD.
    """
    commit: str | None = None
    branch: str | None = None
    upstream: str | None = None
    changed: list[str] = []
    untracked: list[str] = []
    fields = text.split("\0")
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if not entry:
            continue
        if entry.startswith("# branch.oid "):
            value = entry[len("# branch.oid ") :]
            commit = None if value == "(initial)" else value
        elif entry.startswith("# branch.head "):
            value = entry[len("# branch.head ") :]
            branch = None if value == "(detached)" else value
        elif entry.startswith("# branch.upstream "):
            upstream = entry[len("# branch.upstream ") :]
        elif entry.startswith("1 "):
            changed.append(entry.split(" ", 8)[8])
        elif entry.startswith("2 "):
            changed.append(entry.split(" ", 9)[9])
            i += 1  # -z puts the original path of a rename/copy in the next field
        elif entry.startswith("u "):
            changed.append(entry.split(" ", 10)[10])
        elif entry.startswith("? "):
            untracked.append(entry[2:])
    return {"commit": commit, "branch": branch, "upstream": upstream, "changed": changed, "untracked": untracked}


def parse_git_config(text: str) -> dict:
    """``git config -z --get-regexp`` output -> ``{"remotes": {name: url}, "user_name": str|None}``.
    Remote URLs come back with credentials stripped."""
    remotes: dict[str, str] = {}
    user_name: str | None = None
    for item in text.split("\0"):
        if not item:
            continue
        key, _, value = item.partition("\n")
        key_lower = key.lower()
        if key_lower == "user.name":
            user_name = value
        elif key_lower.startswith("remote.") and key_lower.endswith(".url"):
            remotes.setdefault(key[len("remote.") : -len(".url")], strip_credentials(value))
    return {"remotes": remotes, "user_name": user_name}


def bounded_list(items: list[str], limit: int = MAX_LISTED_FILES) -> list[str]:
    return items if len(items) <= limit else items[:limit] + [f"... and {len(items) - limit} more"]


def dvc_dir_hash(entries: Iterable[tuple[str, str]]) -> str:
    """DVC 3's hash of a directory: md5 over the JSON list of ``{"md5", "relpath"}`` sorted by
    relpath (dvc_data ``Tree.as_bytes``), with the ``.dir`` suffix. ``entries``: (posix relpath, md5)."""
    listing = sorted(({"md5": md5, "relpath": rel} for rel, md5 in entries), key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(listing, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"


# --------------------------------------------------------------------------------- git
def _git(args: list[str], cwd: Path, binary: bool = False) -> subprocess.CompletedProcess:
    """Run git; text output is decoded with replacement characters (run.json and MongoDB need
    valid UTF-8), ``binary=True`` keeps the exact bytes (the diff that must apply)."""
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
        )
    except FileNotFoundError:
        raise CaptureError("git is not installed: sem records the code version of every run with git") from None
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout if binary else result.stdout.decode("utf-8", errors="replace"),
        result.stderr.decode("utf-8", errors="replace"),
    )


def git_state(start_dir: Path) -> dict | None:
    """The repository holding ``start_dir``, or None when it is not inside a git work tree.

    Four git calls at most: rev-parse, status, config, diff (only when dirty)."""
    start_dir = Path(start_dir)
    top = _git(["rev-parse", "--show-toplevel"], start_dir)
    if top.returncode != 0:
        if "not a git repository" in top.stderr:
            return None
        # e.g. "detected dubious ownership": the code version would silently go unrecorded
        raise CaptureError(f"git cannot read the repository around {start_dir}: {top.stderr.strip()}")
    root = Path(top.stdout.strip())
    status = _git(["status", "--porcelain=v2", "--branch", "-z", "--untracked-files=normal"], root)
    if status.returncode != 0:
        raise CaptureError(f"git status failed in {root}: {status.stderr.strip()}")
    parsed = parse_status_v2(status.stdout)
    config = _git(["config", "-z", "--get-regexp", r"^(remote\..*\.url|user\.name)$"], root)
    cfg = parse_git_config(config.stdout if config.returncode == 0 else "")
    dirty = bool(parsed["changed"])
    diff = b""
    if dirty and parsed["commit"]:
        result = _git(["diff", "HEAD", "--binary", "--no-color", "--no-ext-diff"], root, binary=True)
        if result.returncode != 0:
            raise CaptureError(f"git diff HEAD failed in {root}: {result.stderr.strip()}")
        diff = result.stdout
    remote = cfg["remotes"].get("origin") or next(iter(cfg["remotes"].values()), None)
    return {
        "root": str(root),
        "commit": parsed["commit"],
        "branch": parsed["branch"],
        "upstream": parsed["upstream"],
        "remote": remote,
        "remotes": cfg["remotes"],
        "user_name": cfg["user_name"],
        "dirty": dirty,
        "changed": parsed["changed"],
        "untracked": parsed["untracked"],
        "diff": diff,
    }


def store_diff(store: Path, data: bytes) -> str:
    """Write the diff once per content into ``<store>/_diffs/``; return its path relative to the store."""
    name = hashlib.sha256(data).hexdigest()[:16] + ".diff"
    target = Path(store) / DIFFS_DIR / name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return f"{DIFFS_DIR}/{name}"


# --------------------------------------------------------------------------------- python
def installed_packages() -> dict[str, str]:
    """``{distribution name: version}`` of everything importable, first on sys.path wins.

    Read from the ``<name>-<version>.dist-info`` folder names (the standard wheel layout) and
    only otherwise from the metadata file: parsing 200 METADATA files costs ~200 ms, the folder
    names ~1 ms, and this runs once per sweep in the launching process."""
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                stem = name[: -len(".dist-info")]
            elif name.endswith(".egg-info"):
                stem = name[: -len(".egg-info")]
            else:
                continue
            dist, sep, version = stem.partition("-")
            key = dist.lower().replace("_", "-").replace(".", "-")
            if key in found:
                continue
            if sep and version:
                found[key] = version.split("-")[0]
            else:
                try:
                    found[key] = metadata_version(Path(entry or ".") / name)
                except Exception as exc:  # a broken install must not stop the sweep, but is recorded
                    found[key] = f"unknown ({type(exc).__name__})"
    return dict(sorted(found.items()))


def metadata_version(path: Path) -> str:
    """The ``Version:`` of a distribution from its metadata headers: ``path`` is a ``.dist-info``
    or ``.egg-info`` folder (METADATA / PKG-INFO) or an ``.egg-info`` file. The headers are read
    directly: importlib.metadata and the email package it parses them with take longer to import
    than the whole scan of ``installed_packages``."""
    files = [path] if path.is_file() else [path / "METADATA", path / "PKG-INFO"]
    for file in files:
        try:
            with open(file, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if not line.strip():
                        break  # the headers end at the first empty line
                    if line[:8].lower() == "version:":
                        return line[8:].strip()
        except FileNotFoundError:
            continue
    raise ValueError(f"{path}: no Version in its metadata")


def python_info() -> dict:
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
    }


def user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # container without a passwd entry and no USER variable
        return f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown"


# --------------------------------------------------------------------------------- DVC
def _workspace_state(base: Path, out: dict) -> dict:
    """One DVC output -> {path, md5, state}; state is match / modified / missing / not-checked."""
    rel = out.get("path", "")
    recorded = out.get("md5")
    target = base / rel
    info = {"path": rel, "md5": recorded, "size": out.get("size")}
    if recorded is None:
        return {**info, "state": "not-checked", "reason": "no md5 recorded (cloud/etag hash)"}
    if out.get("hash") != "md5":
        return {**info, "state": "not-checked", "reason": "DVC 2 (md5-dos2unix) hash; run `dvc status`"}
    if not target.exists():
        return {**info, "state": "missing"}
    if target.is_dir():
        if not recorded.endswith(".dir"):
            return {**info, "state": "modified"}
        files = [p for p in sorted(target.rglob("*")) if p.is_file()]
        if out.get("nfiles") is not None and len(files) != out["nfiles"]:
            return {**info, "state": "modified"}
        total = sum(p.stat().st_size for p in files)
        if out.get("size") is not None and total != out["size"]:
            return {**info, "state": "modified"}
        if total > DVC_HASH_LIMIT_BYTES:
            return {**info, "state": "not-checked", "reason": f"{total} bytes; run `dvc status`"}
        current = dvc_dir_hash((p.relative_to(target).as_posix(), file_md5(p)) for p in files)
    else:
        size = target.stat().st_size
        if out.get("size") is not None and size != out["size"]:
            return {**info, "state": "modified"}
        if size > DVC_HASH_LIMIT_BYTES:
            return {**info, "state": "not-checked", "reason": f"{size} bytes; run `dvc status`"}
        current = file_md5(target)
    return {**info, "state": "match" if current == recorded else "modified"}


def dvc_state(git_root: Path, files: Iterable[str]) -> list[dict]:
    """Every output recorded in the given ``*.dvc`` / ``dvc.lock`` files (paths relative to
    ``git_root``), with the workspace state of each."""
    from sem_core.settings import read_yaml

    result = []
    for rel in files:
        path = Path(git_root) / rel
        if not path.is_file():
            continue
        data = read_yaml(path) or {}
        base = path.parent
        if path.name == "dvc.lock":
            for stage, spec in (data.get("stages") or {}).items():
                for out in spec.get("outs") or []:
                    entry = _workspace_state(base, out)
                    entry["path"] = (Path(rel).parent / entry["path"]).as_posix()
                    result.append({**entry, "source": rel, "stage": stage})
        else:
            for out in data.get("outs") or []:
                entry = _workspace_state(base, out)
                entry["path"] = (Path(rel).parent / entry["path"]).as_posix()
                result.append({**entry, "source": rel})
    return result


def dvc_files(git_root: Path) -> list[str]:
    """``*.dvc`` and ``dvc.lock`` files of the work tree (tracked or not, ignored files excluded).
    No git call at all unless the repository was set up with ``dvc init``."""
    git_root = Path(git_root)
    if not (git_root / ".dvc").is_dir():
        return []
    listing = _git(["ls-files", "-z", "-c", "-o", "--exclude-standard", "--", "*.dvc", "*dvc.lock"], git_root)
    if listing.returncode != 0:
        raise CaptureError(f"git ls-files failed in {git_root}: {listing.stderr.strip()}")
    names = {n for n in listing.stdout.split("\0") if n}
    return sorted(n for n in names if n.endswith(".dvc") or Path(n).name == "dvc.lock")


# --------------------------------------------------------------------------------- capture
def capture_sweep(model_file: os.PathLike | str, store: os.PathLike | str | None) -> dict:
    """Everything ``meta["capture"]`` of a run holds; call once per sweep in the launching process.

    ``store``: the run store; the full diff goes to ``<store>/_diffs/`` (skipped when None)."""
    model_file = Path(model_file).resolve()
    capture: dict[str, Any] = {
        "version": CAPTURE_VERSION,
        "user": user_name(),
        "python": python_info(),
        "packages": installed_packages(),
        "git": None,
        "dvc": [],
    }
    if shutil.which("git") is None:
        # recorded and said once per sweep; not a reason to refuse to run on a machine without git
        capture["git_error"] = "git is not installed: the code version of these runs is unknown"
        warnings.warn(f"sem: {capture['git_error']}", stacklevel=2)
        return capture
    git = git_state(model_file.parent)
    if git is None:
        return capture
    root = Path(git["root"])
    diff = git.pop("diff")
    git["model_file"] = model_file.relative_to(root).as_posix() if root in model_file.parents else str(model_file)
    text = diff.decode("utf-8", errors="replace")
    git["diff_bytes"] = len(diff)
    git["diff_excerpt"] = text[:DIFF_EXCERPT_CHARS]
    git["diff_truncated"] = len(text) > DIFF_EXCERPT_CHARS
    git["diff_file"] = store_diff(Path(store), diff) if (diff and store is not None) else None
    git["changed"] = bounded_list(git["changed"])
    git["untracked"] = bounded_list(git["untracked"])
    capture["git"] = git
    # the run store and results/ are what the sweep writes, not data it uses
    from sem_core.settings import experiment_dir_of

    outputs = [Path(store).resolve()] if store is not None else []
    outputs.append(experiment_dir_of(model_file) / "results")
    capture["dvc"] = [
        entry
        for entry in dvc_state(root, dvc_files(root))
        if not any(_inside(root / entry["path"], out) for out in outputs)
    ]
    return capture


def _inside(path: Path, folder: Path) -> bool:
    path = Path(os.path.abspath(path))
    return path == folder or folder in path.parents
