"""The ``sem`` command. Each subcommand lives in ``sem_core/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (a callable taking the parsed
args and returning an exit code). Modules import heavy dependencies inside ``func`` so that
``sem --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from sem_core.errors import SemError

# One line per subcommand module; add yours here.
COMMAND_MODULES = [
    "sem_core.commands.plan",
    "sem_core.commands.run",
    "sem_core.commands.results",
    "sem_core.commands.ls",
    "sem_core.commands.show",
    "sem_core.commands.plot",
    "sem_core.commands.report",
    "sem_core.commands.dvc",
    "sem_core.commands.clean",
    "sem_core.commands.sync",
    "sem_core.commands.board",
    "sem_core.commands.status",
    "sem_core.commands.cancel",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sem", description="Sacred Experiment Manager")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe raises here, not at interpreter exit
        return code
    except SemError as exc:
        from sem_core.mongo.connection import redact_uri

        print(f"sem {args.command}: error: {redact_uri(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`sem ls | head`): stop quietly like other Unix tools
        from sem_core.pipes import stdout_to_devnull

        stdout_to_devnull()
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
