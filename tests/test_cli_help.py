"""`sem --help`, `sem COMMAND --help` and `sem --version` as a user reads them in an 80-column terminal."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from sem_core import __version__
from sem_core.cli import build_parser


def sem_help(*args: str) -> str:
    env = dict(os.environ, COLUMNS="80")
    proc = subprocess.run(
        [sys.executable, "-m", "sem_core.cli", *args], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


COMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)


def test_version():
    assert sem_help("--version").strip() == f"sem {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_says_what_it_does_explains_its_arguments_and_shows_an_example(command):
    text = sem_help(command, "--help")
    description = text.split("\n\n")[1]
    assert description[0].isupper() and not description.startswith(("usage", "positional", "options")), text
    assert "``" not in text and "sem_core." not in text, text  # no reStructuredText, no module names
    lines = text.split("examples:")[0].splitlines()  # examples keep their own layout
    for line in lines:
        assert len(line) <= 80, line
    # every argument has a help text: in argparse's layout a name alone on its line is explained
    # on the lines below it (or, for a command with actions, lists them there)
    for i, line in enumerate(lines):
        if re.match(r"^  (-|[A-Z_]+\b|\{)", line) and len(line.strip().split("  ")) < 2:
            following = lines[i + 1] if i + 1 < len(lines) else ""
            assert following.startswith(" " * 4) and following.strip(), (
                f"{command}: no help for {line.strip()!r}\n{text}"
            )
    assert "\nexamples:\n  sem " in text, text
