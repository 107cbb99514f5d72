"""experiment_manager's ``run.py`` (``from experiment_manager import main; main.run()``) on sem's commands:

    python run.py [ARGS]      sem run <experiment> [ARGS]   (every model file, ARGS as for sem run)
    python run.py --sync      sem sync <experiment>
    python run.py --omniboard sem board <experiment>

The experiment is the folder holding ``run.py``, as in experiment_manager's layout; the model files run
from its ``models/`` folder, as experiment_manager ran them."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path


def command_for(argv: Sequence[str], experiment: Path) -> list[str]:
    """The ``sem`` command line an experiment_manager ``run.py`` invocation stands for."""
    argv = list(argv)
    for flag, command in (("--sync", "sync"), ("--omniboard", "board")):
        if flag in argv:
            argv.remove(flag)
            return [command, *argv, str(experiment)]
    if argv[:1] in (["-h"], ["--help"]):
        return ["run", "--help"]
    return ["run", str(experiment), *argv]


def run(argv: Sequence[str] | None = None) -> None:
    from sem_core import cli

    argv = sys.argv[1:] if argv is None else argv
    script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    experiment = script.parent if script is not None and script.is_file() else Path.cwd()
    command = command_for(argv, experiment)
    if command[-1:] == ["--help"]:
        print("python run.py [OVERRIDES] is `sem run`, --sync is `sem sync`, --omniboard is `sem board`\n")
    elif command[0] == "run" and (experiment / "models").is_dir():
        # experiment_manager ran its model files from models/: their own paths (open("../results/x.pickle"),
        # ex.add_artifact("../results/...")) are relative to it
        os.chdir(experiment / "models")
    sys.exit(cli.main(command))
