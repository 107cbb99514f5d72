"""The docs' commands and outputs are real: every ```console block of docs/*.md is run and compared.

Convention (also in docs/contributing.md):

- A ```console block holds commands, each on a line starting with ``$ ``, each followed by the output it
  prints (stdout and stderr together). A line ``...`` in an output stands for any number of lines.
- The blocks of one page run in order, in one fresh copy of ``examples/`` (as ``/home/you``), from one
  experiment folder (``regression`` unless the page says ``<!-- docs-example: NAME -->``), with a 100-column
  terminal and an empty user cache, so one page's commands may build on the ones above them.
- Before comparing, both sides are normalised: global ids, dates, times, durations and multirun folder
  names become placeholders, runs of spaces become one, and the temporary folder reads ``/home/you``.
- ``python tests/test_docs.py --update [PAGE...]`` runs the pages and writes the fresh output into them
  (keeping each ``...`` with as many lines around it as before); review the diff before committing.

Model files shown in the docs are included from examples/ (pymdownx.snippets), so they cannot drift; the
README's example is checked against its file here.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
EXAMPLES = REPO / "examples"
# What the temporary folder reads as in the pages.
SHOWN_HOME = "/home/you"
SHOWN_HOST = "laptop"
ELLIPSIS = "..."

FENCE = re.compile(r"^( *)```console[^\n]*\n(.*?)^\1```", re.S | re.M)
EXAMPLE_MARK = re.compile(r"<!-- docs-example: (\w+) -->")
# Values that differ between two runs of the same command, most specific first.
VOLATILE = [
    (re.compile(r"\d{8}T\d{6}-[0-9a-f]{12}"), "<global_id>"),
    (re.compile(r"\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d-[0-9a-z]+"), "<date>/<time>-<token>"),
    (re.compile(r"\b\d{8}T\d{6,}\b"), "<time>"),
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:[+-]\d\d:?\d\d|Z)?"), "<time>"),
    (re.compile(r"(?<![\w.])(?:\d+m)?\d+(?:\.\d+)?s\b"), "<duration>"),
    (re.compile(r"\bpid \d+"), "pid <pid>"),
    (re.compile(r"(?<![0-9a-f])[0-9a-f]{40}(?![0-9a-f])"), "<commit>"),
    (re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])"), "<md5>"),  # also inside names: m_x_<md5>.py
    (re.compile(r"\b\d+(?:\.\d+)? (?:bytes|KiB|MiB)\b"), "<size>"),  # pickles and PNGs differ across versions
]


@dataclass
class Command:
    line: str
    expected: list[str] = field(default_factory=list)


@dataclass
class Block:
    start: int  # offset of the block's body in the page
    end: int
    indent: str  # a block inside a list item is indented
    commands: list[Command]


def parse_blocks(text: str) -> list[Block]:
    blocks = []
    for m in FENCE.finditer(text):
        commands: list[Command] = []
        indent = m.group(1)
        for line in m.group(2).splitlines():
            line = line[len(indent) :] if line.startswith(indent) else line.lstrip()
            if line.startswith("$ "):
                commands.append(Command(line[2:]))
            elif commands:
                commands[-1].expected.append(line)
            elif line.strip():
                raise ValueError(f"console block at offset {m.start()}: output before any `$ ` command: {line!r}")
        blocks.append(Block(m.start(2), m.end(2), indent, commands))
    return blocks


def normalise(line: str) -> str:
    for pattern, placeholder in VOLATILE:
        line = pattern.sub(placeholder, line)
    return " ".join(line.split())


def matches(expected: list[str], actual: list[str]) -> bool:
    """Line-by-line comparison after normalising; an ``...`` line matches any number of lines."""
    exp = [normalise(x) for x in expected]
    act = [normalise(x) for x in actual]
    while exp and not exp[-1]:
        exp.pop()
    while act and not act[-1]:
        act.pop()

    def match(i: int, j: int) -> bool:
        if i == len(exp):
            return j == len(act)
        if exp[i] == ELLIPSIS:
            return any(match(i + 1, k) for k in range(j, len(act) + 1))
        return j < len(act) and exp[i] == act[j] and match(i + 1, j + 1)

    return match(0, 0)


def shown(output: str, home: Path) -> list[str]:
    """The output as a page shows it: the temporary folder as /home/you, the host as laptop."""
    output = output.replace(str(home), SHOWN_HOME).replace(socket.gethostname(), SHOWN_HOST)
    return [line.rstrip() for line in output.splitlines()]


def page_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEM_", "HYDRA_"))}
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"),
        COLUMNS="100",
        LINES="40",
        NO_COLOR="1",
        TERM="dumb",
        TZ="UTC",
        GIT_AUTHOR_NAME="you",
        GIT_AUTHOR_EMAIL="you@example.org",
        GIT_COMMITTER_NAME="you",
        GIT_COMMITTER_EMAIL="you@example.org",
        # `python` and `sem` are those of the interpreter running the tests (a virtualenv's too).
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        PYTHONPATH=os.pathsep.join(p for p in [env.get("PYTHONPATH", ""), str(REPO)] if p),
    )
    return env


def example_of(text: str) -> str:
    m = EXAMPLE_MARK.search(text)
    return m.group(1) if m else "regression"


def run_page(page: Path, home: Path) -> list[tuple[Command, list[str]]]:
    """Run every console command of a page in a fresh example; return each command with its output."""
    text = page.read_text(encoding="utf-8")
    example = example_of(text)
    # The whole examples/ folder, so a page can also run examples/load_results.py as ../load_results.py.
    shutil.copytree(
        EXAMPLES,
        home,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("runs", "multirun", "outputs", "results", "__pycache__", "sem"),
    )
    experiment = home / example
    env = page_env(home)
    out = []
    for block in parse_blocks(text):
        for cmd in block.commands:
            proc = subprocess.run(
                ["bash", "-c", cmd.line],
                cwd=experiment,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=120,
            )
            out.append((cmd, shown(proc.stdout, home)))
    return out


def console_pages() -> list[Path]:
    return sorted(p for p in DOCS.glob("*.md") if FENCE.search(p.read_text(encoding="utf-8")))


@pytest.mark.slow
@pytest.mark.parametrize("page", console_pages(), ids=lambda p: p.name)
def test_console_blocks_print_what_the_page_shows(page: Path, tmp_path: Path) -> None:
    failures = []
    for cmd, actual in run_page(page, tmp_path):
        if not matches(cmd.expected, actual):
            failures.append(
                f"$ {cmd.line}\n--- the page shows:\n"
                + "\n".join(cmd.expected)
                + "\n--- it prints:\n"
                + "\n".join(actual)
            )
    assert not failures, (
        f"{page.relative_to(REPO)}: the output changed (`python tests/test_docs.py --update {page.relative_to(REPO)}` "
        "rewrites it; check the diff):\n\n" + "\n\n".join(failures)
    )


README_EXAMPLE = EXAMPLES / "quickstart" / "models" / "m_ridge.py"


def test_readme_example_is_the_file_its_command_runs() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", readme, re.S | re.M)
    assert blocks, "README.md shows no python block"
    assert blocks[0] == README_EXAMPLE.read_text(encoding="utf-8"), f"README.md's example differs from {README_EXAMPLE}"
    assert f"python {README_EXAMPLE.relative_to(REPO)}" in readme


def test_parser_reads_commands_outputs_and_ellipsis() -> None:
    page = "text\n```console\n$ sem ls\na   b\n...\n$ echo 2\n2\n```\n"
    (block,) = parse_blocks(page)
    assert [c.line for c in block.commands] == ["sem ls", "echo 2"]
    assert block.commands[0].expected == ["a   b", "..."]
    assert matches(["a b", "..."], ["a  b", "x", "y"])
    assert not matches(["a b"], ["a b", "x"])
    assert matches(["run 20261201T184943-668b0f96d4c1 took 0.019s"], ["run 20990101T000000-000000000000 took 3m05s"])
    assert matches(
        ["cp _sources/m_x_77531ff3b3f19780ade963596592cb2d.py"], ["cp _sources/m_x_5c03a8e0a0a5d59783f5fd7444eae0da.py"]
    )


# A measured figure in prose: milliseconds, a throughput, a speed-up. Settings and defaults ("10 s") are not.
FIGURE = re.compile(r"\b\d+(?:[.,]\d+)?\s?(?:ms|µs|MB/s|×)(?!\w)|\b\d+(?:\.\d+)?\s?(?:x|times) (?:faster|slower)")


def test_figures_only_on_the_generated_performance_page() -> None:
    """Measured figures live in docs/performance.md, generated from benchmarks/results/; a page that
    quotes one by hand goes stale the day the code changes."""
    found = []
    for page in sorted([*DOCS.glob("*.md"), REPO / "README.md"]):
        if page.name == "performance.md":
            continue
        prose = re.sub(r"(?ms)^\s*```.*?^\s*```", "", page.read_text(encoding="utf-8"))
        prose = re.sub(r"`[^`\n]*`", "", prose)
        found += [
            f"{page.relative_to(REPO)}: {m.group(0)!r} in {line.strip()[:100]!r}"
            for line in prose.splitlines()
            for m in FIGURE.finditer(line)
        ]
    assert not found, "a figure typed by hand (link to performance.md instead):\n" + "\n".join(found)


def test_built_pages_show_no_markdown_source(tmp_path: Path) -> None:
    """What `mkdocs build --strict` lets through: a list item or fence that Python-Markdown read as text
    (a missing blank line, a 2-space indent) shows its raw `- ` or backticks on the page."""
    pytest.importorskip("mkdocs")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    build = [sys.executable, "-m", "mkdocs", "build", "--quiet", "--site-dir", str(site)]
    subprocess.run(build, cwd=REPO, env=env, check=True, capture_output=True, text=True)
    raw = re.compile(r"(?:^|\n)\s*(?:- |\* |\d+\. )|```|--8<--")
    found = []
    for page in sorted(site.rglob("*.html")):
        for m in re.finditer(r"<p>(.*?)</p>", page.read_text(encoding="utf-8"), re.S):
            text = html.unescape(re.sub(r"<[^>]+>", "", m.group(1)))
            if raw.search(text):
                found.append(f"{page.relative_to(site)}: {text[:120]!r}")
    assert not found, "Markdown shown as text (add a blank line before the list, indent by 4):\n" + "\n".join(found)


def update(pages: list[Path]) -> None:
    """Write each command's fresh output into its page where it changed, keeping the lines around each ``...``."""
    import tempfile

    for page in pages:
        with tempfile.TemporaryDirectory() as tmp:
            results = iter(run_page(page, Path(tmp)))
        text = page.read_text(encoding="utf-8")
        pieces, last = [], 0
        for block in parse_blocks(text):
            lines = []
            for cmd in block.commands:
                _, actual = next(results)
                if matches(cmd.expected, actual):
                    actual = cmd.expected  # unchanged but for ids and times: keep the diff to what changed
                elif ELLIPSIS in cmd.expected:
                    k = cmd.expected.index(ELLIPSIS)
                    tail = len(cmd.expected) - k - 1
                    if len(actual) > k + tail:
                        actual = actual[:k] + [ELLIPSIS] + (actual[len(actual) - tail :] if tail else [])
                lines += [f"$ {cmd.line}", *actual]
            pieces += [text[last : block.start], "".join(f"{block.indent}{x}".rstrip() + "\n" for x in lines)]
            last = block.end
        page.write_text("".join(pieces) + text[last:], encoding="utf-8")
        print(f"updated {page.relative_to(REPO)}")


if __name__ == "__main__":
    if sys.argv[1:2] != ["--update"]:
        sys.exit("usage: python tests/test_docs.py --update [docs/PAGE.md ...]")
    update([Path(p).resolve() for p in sys.argv[2:]] or console_pages())
