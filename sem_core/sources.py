"""Which source files belong to a run, and their content hashes (cached per process)."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

_md5_cache: dict[tuple[str, int, int], str] = {}


def file_md5(path: os.PathLike | str) -> str:
    """MD5 of a file's bytes, cached on (path, mtime, size): jobs of one sweep hash each file once."""
    st = os.stat(path)
    key = (os.fspath(path), st.st_mtime_ns, st.st_size)
    digest = _md5_cache.get(key)
    if digest is None:
        digest = hashlib.md5(Path(path).read_bytes()).hexdigest()
        _md5_cache[key] = digest
    return digest


def model_sources(model_file: os.PathLike | str) -> list[list[str]]:
    """``[[name relative to the model folder, md5], ...]``: the model file and every module
    imported from its folder (its sibling sources), as sacred's ``ex_info["sources"]``."""
    model_file = Path(model_file).resolve()
    base = model_file.parent
    found = {model_file}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path or not path.endswith(".py"):
            continue
        p = Path(path)
        try:
            if p.parent == base or base in p.resolve().parents:
                found.add(p.resolve())
        except OSError:
            continue
    return sorted([str(p.relative_to(base)), file_md5(p)] for p in found if p.exists())
