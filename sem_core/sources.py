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


_sources_cache: dict[tuple[str, int], list[list[str]]] = {}


def model_sources(model_file: os.PathLike | str) -> list[list[str]]:
    """``[[name relative to the model folder, md5], ...]``: the model file and every module
    imported from its folder or below (its sibling sources), as sacred's ``ex_info["sources"]``.

    Cached per process on the number of loaded modules: jobs of one sweep scan once."""
    model_file = os.path.abspath(model_file)
    key = (model_file, len(sys.modules))
    cached = _sources_cache.get(key)
    if cached is not None:
        return cached
    base = os.path.dirname(model_file)
    prefix = base + os.sep
    found = {model_file}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and path.endswith(".py"):
            path = os.path.abspath(path)
            if path.startswith(prefix):
                found.add(path)
    result = sorted([os.path.relpath(p, base), file_md5(p)] for p in found if os.path.exists(p))
    _sources_cache[key] = result
    return result
