"""``sem init [EXPERIMENT] [--model NAME]``: a new experiment folder with a commented
``experiment_config.yaml`` and a starter model file that runs as it is (``sem_core.starter``)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "init",
        help="create an experiment folder: experiment_config.yaml and a starter models/m_<name>.py",
        description="Create an experiment folder holding experiment_config.yaml (every sem setting, "
        "commented, with its default) and models/m_<name>.py, a model file that runs as it is. "
        "Existing files are never overwritten.",
    )
    p.add_argument(
        "experiment",
        nargs="?",
        default=".",
        metavar="EXPERIMENT",
        help="the folder to create or fill (default: the current directory)",
    )
    p.add_argument(
        "--model",
        default="example",
        metavar="NAME",
        help="name of the starter model file: models/m_NAME.py (default: example)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sem_core.starter import create_experiment

    folder = Path(args.experiment)
    written = create_experiment(folder, args.model)
    for path in written:
        print(f"wrote {path}")
    model = written[-1].relative_to(folder).as_posix()
    cd = "" if folder == Path(".") else f"cd {shlex.quote(str(folder))} && "
    print(f"next: {cd}python {model} -m   (then: sem results)")
    return 0
