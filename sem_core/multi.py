"""Every model file of an experiment in one command (``sem run``, ``sem plan``): the command's
side. What each model file's process does under ``sem run`` is in ``sem_core.run_gate``.

How ``sem run`` works, and why:

- **Planned first.** The command imports every model file and plans its sweep in this
  process (the rows, the row overrides, ``sem.skip_completed``/``sem.rerun``), so a bad
  selection in any file stops the command before any job. It then starts each model file as
  its own ``python m_x.py ARGS`` process: each file stays its own Hydra multirun, exactly as
  when it is run alone (its own sweep folder, launcher, Slurm arrays, summary).
- **A gate.** Each of those processes plans again inside Hydra, where the launcher and
  ``hydra.*``/``sem.*`` options are checked, then waits at a gate (a folder: it writes
  ``<model file>.ready`` and waits for ``go``). Only when every file is ready does the command
  open the gate; if any process fails before it, the others are told to stop (``abort``) and
  no job of any file starts.
- **One job budget.** On the local launchers the budget is the launcher's own: ``n_jobs``
  (1 for the default sequential launcher, one per CPU for ``local`` without ``n_jobs``) jobs
  at a time across all the files, not per file. Each job takes one of ``n_jobs`` slots (a
  lock file under the gate, ``flock``) before its run starts and gives it back when the run
  ends; the kernel frees the slot of a process that dies, so a crash never shrinks the
  budget. Slurm has its own scheduler: each file's arrays are submitted at once, without
  waiting for the other files, and the command waits for every file (or, with
  ``hydra.launcher.wait=false``, each file submits and exits and so does the command).
- **One summary.** The processes write their outcomes next to their sweep
  (``sem_outcomes.json``) instead of printing a table; the command prints one table with a
  model column and exits 1 if any job of any file did not complete.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sem_core.errors import ConfigError
from sem_core.run_gate import GATE_ENV, GATE_POLL_S, NAME_ENV, OUTCOMES_FILE, SLOTS_ENV


@dataclass
class FilePlan:
    path: Path
    jobs: list  # PlannedJob, to run
    skipped: list  # resume.Skipped
    hydra_argv: list = field(default_factory=list)


def experiment_of(target: str | None) -> Path:
    """The experiment folder named by ``target`` (the experiment folder, its ``models``
    folder, or None: the one around the working directory)."""
    from sem_core.settings import experiment_dir_of

    start = Path(target).expanduser().resolve() if target else Path.cwd().resolve()
    if not start.is_dir():
        raise ConfigError(f"{start}: not a folder; give the experiment folder (the one holding models/)")
    for folder in [start, *start.parents]:
        if folder.name == "models" and any(folder.glob("m_*.py")):
            return experiment_dir_of(folder / "x.py")
        if (folder / "models").is_dir() and any((folder / "models").glob("m_*.py")):
            return folder
        if target:
            break  # an explicit folder is that folder, not one of its parents
    raise ConfigError(f"{start}: no models/m_*.py here; give the experiment folder (the one holding models/)")


def model_files(experiment_dir: Path, names: Sequence[str] | None = None) -> list[Path]:
    """The experiment's model files (``models/m_*.py``), or those named (``m_gd``, ``m_gd.py``)."""
    models = experiment_dir / "models"
    found = sorted(models.glob("m_*.py"))
    if not names:
        if not found:
            raise ConfigError(f"{models}: no model files (m_*.py)")
        return found
    by_name = {p.name: p for p in found}
    out, unknown = [], []
    for name in names:
        key = Path(name).name
        key = key if key.endswith(".py") else key + ".py"
        if key in by_name:
            if by_name[key] not in out:
                out.append(by_name[key])
        else:
            unknown.append(name)
    if unknown:
        raise ConfigError(
            f"--models: no model file {', '.join(unknown)} in {models} "
            f"(there: {', '.join(p.stem for p in found) or 'none'})"
        )
    return out


def split_target(args: Sequence[str]) -> tuple[str | None, list[str]]:
    """``[EXPERIMENT] [OVERRIDES...]``: the first argument is the experiment when it is an
    existing folder (or a model file, for ``sem plan m_x.py``) and not an override."""
    args = list(args)
    if args and "=" not in args[0] and not args[0].startswith(("+", "~", "-")) and Path(args[0]).expanduser().exists():
        return args[0], args[1:]
    return None, args


def sem_settings(experiment: Any, hydra_argv: Sequence[str]) -> Any:
    """The ``sem`` settings a sweep of ``experiment`` would have: the defaults, the file's
    ``sem:`` section, the ``sem.*`` overrides of the command line (for planning only)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from sem_core import settings

    section = dict(settings.load_experiment_config(experiment.experiment_dir).get("sem") or {})
    storage = section.get("storage")
    if storage and not Path(storage).expanduser().is_absolute():
        section["storage"] = str((experiment.experiment_dir / storage).resolve())
    cfg = OmegaConf.merge(OmegaConf.structured(settings.SemConf), section)
    parser = OverridesParser.create()
    for text in hydra_argv:
        if not text.lstrip("+~").startswith("sem."):
            continue
        (ov,) = parser.parse_overrides([text])
        key = ov.key_or_group[len("sem.") :]
        OmegaConf.update(cfg, key, None if ov.type.name == "DEL" else ov.value(), merge=True)
    return cfg


def plan_files(files: Sequence[Path], argv: Sequence[str], resume: bool = True) -> list[FilePlan]:
    """Plan every file's sweep as ``python m_x.py ARGV`` would, rows that
    ``sem.skip_completed``/``sem.rerun`` would skip included. Every file's error is collected
    and raised together (one ConfigError)."""
    from sem_core.argv import split_argv
    from sem_core.errors import SemError
    from sem_core.experiment import load_model_file
    from sem_core.resume import resume_sweep
    from sem_core.sweep_plan import plan_experiment

    plans, errors = [], []
    for path in files:
        try:
            experiment = load_model_file(path)
            hydra_argv, row_overrides = split_argv(list(argv))
            jobs = plan_experiment(experiment, row_overrides)
            skipped: list = []
            if resume:
                cfg = sem_settings(experiment, hydra_argv)
                selection = resume_sweep(
                    jobs, experiment.store_dir(cfg.storage), cfg, experiment.path.name, experiment.experiment_dir
                )
                jobs, skipped = selection.to_run, selection.skipped
            plans.append(FilePlan(Path(path), jobs, skipped, hydra_argv))
        except SemError as exc:
            text = str(exc)
            errors.append(text if Path(path).name in text else f"{Path(path).name}: {text}")
    if errors:
        raise ConfigError("\n  ".join(["nothing was started:"] + errors) if len(errors) > 1 else errors[0])
    return plans


def new_run_root(argv: Sequence[str]) -> tuple[Path, list[str]]:
    """The folder holding each file's sweep folder, and ``argv`` without ``hydra.sweep.dir``
    (given: it is the root; else ``multirun/<date>/<time>-<token>``)."""
    root = None
    rest = []
    for text in argv:
        if text.startswith("hydra.sweep.dir="):
            root = Path(text.split("=", 1)[1].strip("'\""))
        else:
            rest.append(text)
    if root is None:
        now = dt.datetime.now()
        root = Path("multirun") / now.strftime("%Y-%m-%d") / f"{now.strftime('%H-%M-%S')}-{secrets.token_hex(3)}"
    return root, rest


def run_files(plans: Sequence[FilePlan], argv: Sequence[str], stream: TextIO = sys.stdout) -> int:
    """Start every planned file as its own ``python m_x.py`` (its own Hydra multirun) behind
    the gate, wait for all of them, print one summary; return the exit code."""
    root, argv = new_run_root(argv)
    root = root if root.is_absolute() else Path.cwd() / root
    gate = root / ".sem-run"
    gate.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, **{GATE_ENV: str(gate), SLOTS_ENV: str(gate / "slots")})
    procs: list[subprocess.Popen] = []
    for plan in plans:
        child_env = dict(env, **{NAME_ENV: plan.path.name})
        child_argv = [*argv, f"hydra.sweep.dir={root / plan.path.stem}"]
        procs.append(subprocess.Popen([sys.executable, str(plan.path), *child_argv], env=child_env))

    stop_signal = [0]

    def forward(signum: int, _frame: Any) -> None:
        # SIGTERM/SIGHUP reach this process only (kill, timeout): each file's sweep gets it and
        # ends its runs INTERRUPTED; a Ctrl-C reaches every process of the terminal already
        stop_signal[0] = stop_signal[0] or signum
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        opened = _open_gate(plans, procs, gate)
        codes = _wait_all(procs, stop_signal)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    import shutil

    shutil.rmtree(gate, ignore_errors=True)  # the gate and the slots served their purpose
    if not opened:
        try:
            root.rmdir()  # no sweep started: no output folder is left behind
        except OSError:
            pass
        print("sem run: no job was started (every model file is planned before any job starts)", file=sys.stderr)
        return 1 if not stop_signal[0] else 128 + stop_signal[0]
    failed = print_run_summary(plans, root, stream)
    if stop_signal[0]:
        return 128 + stop_signal[0]
    if any(c == 130 for c in codes):
        return 130
    return 1 if failed or any(c != 0 for c in codes) else 0


def _open_gate(plans: Sequence[FilePlan], procs: Sequence[subprocess.Popen], gate: Path) -> bool:
    while True:
        waiting = False
        for plan, proc in zip(plans, procs):
            if (gate / f"{plan.path.name}.ready").exists():
                continue
            code = proc.poll()
            if code is None:
                waiting = True
            elif code != 0:  # failed before its sweep could start: nothing starts anywhere
                (gate / "abort").touch()
                return False
        if not waiting:
            (gate / "go").touch()
            return True
        time.sleep(GATE_POLL_S)


def _wait_all(procs: Sequence[subprocess.Popen], stop_signal: list[int]) -> list[int]:
    codes = []
    for proc in procs:
        while True:
            try:
                codes.append(proc.wait())
                break
            except KeyboardInterrupt:
                # Ctrl-C: every file's sweep got it too and ends its runs; wait for them
                stop_signal[0] = stop_signal[0] or signal.SIGINT
    return codes


def print_run_summary(plans: Sequence[FilePlan], root: Path, stream: TextIO = sys.stdout) -> bool:
    """One table for every file's sweep: model, order_id, ... from the outcomes each wrote
    (from the records when a file's process ended without writing them); True if any job of
    any file did not complete."""
    from sem_core.sweep_folder import SWEEP_MANIFEST
    from sem_core.sweep_summary import format_summary, summary_rows

    rows: list[dict] = []
    skipped_lines: list[str] = []
    stores = []
    for plan in plans:
        sweep_dir = root / plan.path.stem
        manifest_path = sweep_dir / SWEEP_MANIFEST
        if not manifest_path.exists():
            continue  # e.g. --cfg job, --help: the file ran no sweep
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        store = manifest["store"]
        if store not in stores:
            stores.append(store)
        for s in manifest.get("skipped", []):
            skipped_lines.append(f"  {plan.path.stem}  order_id {s['order_id']}  {s['experiment_id']}  {s['reason']}")
        outcomes_path = sweep_dir / OUTCOMES_FILE
        if outcomes_path.exists():
            file_rows = json.loads(outcomes_path.read_text(encoding="utf-8"))["rows"]
        else:
            file_rows = summary_rows(manifest["jobs"], [None] * len(manifest["jobs"]), Path(store))
        rows += [{**r, "model": plan.path.stem} for r in file_rows]
    if skipped_lines:
        print(f"skipped {len(skipped_lines)} row(s) (sem.skip_completed / sem.rerun):", file=stream)
        print("\n".join(skipped_lines), file=stream)
    where = ", ".join(stores) if stores else str(root)
    print(format_summary(rows, where, model_column=True, skipped=len(skipped_lines)), file=stream, flush=True)
    return any(r["state"] == "failed" for r in rows)
