"""``sem show --repro``: the shell commands that check out a run's code and data and rerun
exactly its row, from what ``sem_core.capture`` recorded."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sem_core.capture import CaptureError
from sem_core.plan import format_key, split_key, split_quoted_override


def _override_value(value: Any) -> str | None:
    """A row value as Hydra override text, or None when it has no safe spelling."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list):
        parts = [_override_value(v) for v in value]
        spelled = [p for p in parts if p is not None]
        return "[" + ",".join(spelled) + "]" if len(spelled) == len(parts) else None
    return None


def replay_overrides(argv: Sequence[str], config: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The row overrides of a sweep's command line that shaped this run's row (``++K=``, ``+K=``,
    ``~K``), with sweeps replaced by the run's own value. Selections (``K=v``, ``order_id=``),
    ``sem.*``, ``hydra.*`` and flags are dropped: ``order_id=N`` selects the row itself.
    Returns (overrides, keys that could not be spelled)."""
    out, unspellable = [], []
    for text in argv:
        if text.startswith("-") or "=" not in text and not text.startswith("~"):
            continue
        if text.startswith("~"):
            out.append(text)
            continue
        quoted = split_quoted_override(text)  # a quoted key part ("a.b") may hold dots and '='
        key = text.split("=", 1)[0] if quoted is None else quoted[0] + format_key(quoted[1])
        bare = key.lstrip("+")
        if bare == key or bare.split(".")[0] in ("hydra", "sem") or "/" in bare or bare == "order_id":
            continue  # +order_id=N selects, like order_id=N
        node: Any = config
        for part in split_key(bare):
            node = node.get(part) if isinstance(node, Mapping) else None
        spelled = _override_value(node)
        if spelled is None:
            unspellable.append(bare)
        else:
            out.append(f"++{bare}={spelled}")
    return out, unspellable


def repro_commands(record: Any) -> list[str]:
    """Shell commands that check out the code and data of a run and rerun exactly its row.

    ``record``: a ``records.RunRecord`` (read from a run store: the stored diff is found beside it).
    Raises CaptureError when the run has no git capture."""
    run, config = record.run, record.config
    meta = run.get("meta") or {}
    capture = (meta.get("sem") or {}).get("capture") or meta.get("capture") or {}
    git = capture.get("git")
    if not git or not git.get("commit"):
        raise CaptureError(
            f"run {record.global_id} has no git capture (it was not run inside a git repository with at "
            "least one commit): its code version is unknown"
        )
    workdir = f"sem-repro-{record.global_id}"
    source = git.get("remote") or git["root"]
    commands = [f"git clone {shlex.quote(source)} {workdir}", f"cd {workdir}", f"git checkout --detach {git['commit']}"]
    if git.get("dirty"):
        location = Path(str(record.location))
        diff_path = location.parent / git["diff_file"] if git.get("diff_file") else None
        if diff_path is not None and diff_path.exists():
            commands.append(f"git apply {shlex.quote(str(diff_path.resolve()))}")
        else:
            commands.append(
                "# WARNING: the run had uncommitted changes and its diff file is not here: the code may differ"
            )
    data = [d for d in capture.get("dvc") or [] if d.get("source")]
    if data:
        commands.append("dvc pull " + " ".join(shlex.quote(s) for s in sorted({d["source"] for d in data})))
        for d in data:
            if d.get("state") not in ("match", None):
                commands.append(
                    f"# WARNING: {d['path']} was {d['state']} in the workspace of the run: the data may differ"
                )
    model = Path(git["model_file"])
    # sources that were not in git (untracked sibling modules) are missing after the checkout:
    # the run store holds the exact bytes the run imported
    store_dir = Path(str(record.location)).parent
    for name, stored in (run.get("experiment") or {}).get("sources") or []:
        target = (model.parent / name).as_posix()
        if (store_dir / stored).exists():
            source = shlex.quote(str((store_dir / stored).resolve()))
            commands.append(f"test -e {shlex.quote(target)} || cp {source} {shlex.quote(target)}")
    # run from the experiment folder, as sem's relative settings (sem.storage) expect
    experiment_rel = model.parent.parent if model.parent.name == "models" else model.parent
    model_in_experiment = model.relative_to(experiment_rel)
    if str(experiment_rel) not in ("", "."):
        commands.append(f"cd {shlex.quote(experiment_rel.as_posix())}")
    sem_meta = meta.get("sem") or {}
    typed = sem_meta.get("row_overrides")
    if typed is None:
        typed = (sem_meta.get("argv") or [])[1:]
    overrides, unspellable = replay_overrides(typed, config)
    for key in unspellable:
        commands.append(f"# WARNING: the command line set {key} to a value sem cannot spell: set it by hand")
    line = ["python", model_in_experiment.as_posix(), "-m", f"order_id={config.get('order_id')}", *overrides]
    commands.append(" ".join(shlex.quote(a) for a in line) + f"  # expect experiment_id {config.get('experiment_id')}")
    return commands
