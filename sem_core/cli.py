"""The ``sem`` command. Each subcommand lives in ``sem_core/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (a callable taking the parsed
args and returning an exit code). Modules import heavy dependencies inside ``func`` so that
``sem --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sem_core.errors import SemError, install_hooks

# One line per subcommand module; add yours here.
COMMAND_MODULES = [
    "sem_core.commands.init",
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


# Shown under every command's --help: one command a user would type, run from the experiment
# folder (examples/regression) unless it says otherwise.
EXAMPLES = {
    "init": ["sem init my_experiment", "sem init . --model ridge"],
    "plan": ["sem plan models/m_linear.py fold=0,1", "sem plan models/m_linear.py --json"],
    "run": ["sem run models/m_linear.py fold=0"],
    "results": [
        "sem results",
        "sem results --metric test_rmse --metric test_r2 --format latex -o table.tex",
        "sem results --by fold --where noise=0.5",
        "sem results --all-metrics --format csv > results.csv",
    ],
    "ls": ["sem ls", "sem ls --status FAILED", "sem ls --where noise=0.5 --metric test_rmse"],
    "show": ["sem show 20261130T101500-3f9a", "sem show 3f9a --tail 100", "sem show 3f9a --repro"],
    "plot": ["sem plot train_mse", "sem plot test_rmse --group-by noise -o rmse.pdf"],
    "report": ["sem report", "sem report -o results/report.html --title 'Regression, noise study'"],
    "dvc": ["sem dvc init --remote /mnt/shared/dvc-store", "sem dvc push", "sem dvc pull"],
    "clean": ["sem clean", "sem clean --yes", "sem clean --restore"],
    "sync": ["sem sync", "sem sync --dry-run", "SEM_MONGO_URL=mongodb://db.example.org/lab sem sync"],
    "board": ["sem board", "sem board --port 9001"],
    "status": ["sem status", "sem status multirun/2026-11-30/10-15-00-ab12 --no-update"],
    "cancel": ["sem cancel", "sem cancel multirun/2026-11-30/10-15-00-ab12"],
}


class HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions to the terminal, paragraph by paragraph; keeps the examples as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return text
        return "\n\n".join(super(HelpFormatter, self)._fill_text(p, width, indent) for p in text.split("\n\n"))


def _version() -> str:
    from sem_core import __version__

    return f"sem {__version__}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sem",
        formatter_class=HelpFormatter,
        description="Sacred Experiment Manager: look at, share and tidy the runs of Hydra sweeps over "
        "model files. `sem COMMAND --help` explains a command.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    # Every command's help starts with the line of what it does and ends with examples.
    summaries = {action.dest: action.help for action in sub._choices_actions}
    for name, command in sub.choices.items():
        command.formatter_class = HelpFormatter
        summary = summaries.get(name)
        if not command.description and summary:
            command.description = summary[0].upper() + summary[1:] + "."
        if name in EXAMPLES and not command.epilog:
            command.epilog = "examples:\n" + "\n".join(f"  {e}" for e in EXAMPLES[name])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    install_hooks()
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
