"""What a user sees of the example's results: terminal tables that fit 80, 100 and 120 columns
(in a real terminal and piped with COLUMNS), the words, a failed run shown once, the plots, and
the HTML report as Chromium renders it at 1280 px and prints it to PDF.

Screenshots and the PDF go to tests/artifacts/ (or $SEM_TEST_ARTIFACTS) for people to look at.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import dump_dom, png_size, print_pdf, screenshot
from tests.conftest import EXAMPLE, REPO, run_model
from tests.test_results_example import FLAKY_MODEL

WIDTHS = (80, 100, 120)
ARTIFACTS = Path(os.environ.get("SEM_TEST_ARTIFACTS", REPO / "tests" / "artifacts"))


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Iterator[Path]:
    """The example after sweeps of both its models (m_gd logs a curve, m_linear final values)
    and of a model that fails on one fold."""
    root = tmp_path_factory.mktemp("results-display")
    exp = root / "regression"
    shutil.copytree(EXAMPLE, exp, ignore=shutil.ignore_patterns("runs", "multirun", "results", "sem", "__pycache__"))
    models = exp / "models"
    (models / "m_flaky.py").write_text(FLAKY_MODEL)
    env = {"SEM_CACHE_DIR": str(root / "cache")}
    for model in ("m_linear.py", "m_gd.py", "m_flaky.py"):
        proc = run_model(models / model, env=env)
        assert proc.returncode == (1 if model == "m_flaky.py" else 0), proc.stderr[-3000:]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEM_CACHE_DIR", str(root / "cache"))
        yield exp


def sem_piped(*args: str, cwd: Path, columns: int | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("COLUMNS", None)
    if columns:
        env["COLUMNS"] = str(columns)
    return subprocess.run(
        [sys.executable, "-m", "sem_core.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def sem_in_terminal(*args: str, cwd: Path, columns: int) -> str:
    """stdout+stderr of ``sem ARGS`` run in a pseudo-terminal ``columns`` wide (COLUMNS unset:
    the width comes from the terminal itself), without its colour codes."""
    env = dict(os.environ)
    env.pop("COLUMNS", None)
    env["TERM"] = "xterm"
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "sem_core.cli", *args],
        cwd=cwd,
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        if not ready:
            proc.kill()
            raise AssertionError(f"sem {' '.join(args)} wrote nothing for 120 s")
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed: the command has exited
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=60) == 0
    text = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def widest(text: str) -> int:
    from rich.cells import cell_len

    return max(cell_len(line) for line in text.splitlines())


@pytest.mark.parametrize("columns", WIDTHS)
def test_results_and_ls_fit_the_terminal(example, columns):
    for command in ("results", "ls"):
        text = sem_in_terminal(command, cwd=example, columns=columns)
        assert widest(text) <= columns, f"sem {command} at {columns} columns:\n{text}"
        (ARTIFACTS / f"terminal-{command}-{columns}.txt").parent.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"terminal-{command}-{columns}.txt").write_text(text)
        piped = sem_piped(command, cwd=example, columns=columns)
        assert piped.returncode == 0, piped.stderr
        assert widest(piped.stdout) <= columns, f"sem {command} | cat with COLUMNS={columns}:\n{piped.stdout}"
    # the metrics that matter are all there from 100 columns on, each cell on one line or two
    text = sem_in_terminal("results", cwd=example, columns=columns)
    shown = [m for m in ("test_mae", "test_mse", "test_r2", "test_rmse") if f"{m} " in text]
    assert len(shown) == 4 or (columns < 100 and "Not shown, to fit" in text)
    words = " ".join(text.split())
    assert "Also logged: train_mae, train_mse, train_r2, train_rmse (--all-metrics shows every metric" in words
    # each cell is "mean ± std" on one line, or the mean with "± std" under it: never cut mid-number
    assert re.search(r"\b0\.4\d{3} ± 0\.0\d{3}\b", text) or re.search(r"\b0\.4\d{3}\b[^\n]*\n[^\n]*± 0\.0\d{3}\b", text)


def test_piped_without_columns_prints_every_column_in_full(example):
    proc = sem_piped("results", "--all-metrics", cwd=example)
    lines = proc.stdout.splitlines()
    header = lines[0].split()
    for metric in ("test_rmse", "train_mae", "train_r2", "train_rmse"):
        assert metric in header
    row = next(line for line in lines if line.startswith("m_linear.py: name=linear, noise=0.5 "))
    assert re.search(r"\b5\s+0\.4\d{3} ± 0\.0\d{3}\s", row), row  # one line per configuration
    assert "Not shown" not in proc.stdout
    ls = sem_piped("ls", cwd=example)
    assert "experiment" in ls.stdout.splitlines()[0] and "test_r2" in ls.stdout.splitlines()[0]


def test_words_plurals_and_durations(example):
    ls = sem_piped("ls", "--where", "status=FAILED", cwd=example).stdout
    assert ls.splitlines()[-1] == "1 run: 1 FAILED"
    failed = ls.splitlines()[1].split()[0]
    durations = re.findall(r"\s(\d+\.\d+s|\d+m\d\ds)\s", sem_piped("ls", cwd=example).stdout)
    assert durations and all(not d.startswith("0.0s") for d in durations)  # a short run is not "0.0s"
    show = sem_piped("show", failed, cwd=example).stdout
    assert "(1 point)" in show and "(1 points)" not in show
    assert re.search(r"duration\s+\d+\.\d{3}s", show)


def test_a_failed_run_shows_the_users_frames_and_its_output_once(example):
    failed = sem_piped("ls", "--where", "status=FAILED", cwd=example).stdout.splitlines()[1].split()[0]
    out = sem_piped("show", failed, cwd=example).stdout
    trace = out.split("traceback:")[1].split("output (last")[0]
    assert 'm_flaky.py", line' in trace and "ValueError: diverged on fold 2" in trace
    assert "hydra" not in trace.replace("Hydra", "") and "sem_core" not in trace
    assert "frames of sem and Hydra left out" in trace
    assert out.count("ValueError: diverged on fold 2") == 1  # not again in the output tail
    assert "fitting fold 2" in out.split("output (last")[1]
    full = sem_piped("show", failed, "--full-trace", cwd=example).stdout
    assert "sem_core/launch/job.py" in full  # the record keeps every frame, sem's too


def test_plot_keeps_curves_and_final_values_apart_and_writes_into_the_sem_folder(example):
    proc = sem_piped("plot", "train_mse", cwd=example)
    assert proc.returncode == 0, proc.stderr
    png = example / "sem" / "plots" / "train_mse.png"
    assert f"wrote {png}" in proc.stderr
    assert not (example / "train_mse.png").exists()
    width, height = png_size(png)
    assert width > height * 2  # m_gd's curve and m_linear's final values: two panels side by side
    assert (example / "sem" / ".gitignore").read_text().splitlines()[-1] == "*"
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "sem"], cwd=example, capture_output=True, text=True
    )
    assert "?? " not in status.stdout  # never offered to git as an untracked file
    shutil.copy(png, ARTIFACTS / "plot-train_mse.png")


@pytest.mark.browser
def test_report_every_column_readable_at_1280px_and_in_print(example, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = ARTIFACTS / "report.html"
    proc = sem_piped("report", "-o", str(report), cwd=example)
    assert proc.returncode == 0, proc.stderr
    text = report.read_text()
    assert "`" not in re.sub(r"<pre>.*?</pre>", "", text, flags=re.S)  # no markdown left raw
    assert "<code>sem ls</code>" in text
    # measure in Chromium: a copy of the report with a script that records every table's overflow
    probe = tmp_path / "probe.html"
    probe.write_text(
        text.replace(
            "</body>",
            """<script>
      const over = [...document.querySelectorAll('table')].map(t => {
        const box = t.parentElement;
        return [t.scrollWidth, box.clientWidth, t.getBoundingClientRect().right, box.getBoundingClientRect().right];
      });
      document.body.setAttribute('data-overflow', JSON.stringify(over));
    </script></body>""",
        )
    )
    dom = dump_dom(probe, window_size=(1280, 900))
    measured = eval(re.search(r'data-overflow="([^"]+)"', dom).group(1).replace("&quot;", '"'))
    assert measured
    for scroll, client, right, box_right in measured:
        assert scroll <= client and right <= box_right + 0.5, measured
    assert png_size(screenshot(report, ARTIFACTS / "report-1280.png", size=(1280, 2600))) == (1280, 2600)
    # print: every metric header is in the PDF's text
    pdf = ARTIFACTS / "report.pdf"
    print_pdf(report, pdf)
    pdf_text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    for metric in ("test_mae", "test_mse", "test_r2", "test_rmse", "train_mae", "train_mse", "train_r2", "train_rmse"):
        assert re.search(rf"{metric} [↓↑]", pdf_text), f"{metric} header missing from the printed report"
    assert "diverged on fold 2" in pdf_text


def test_a_sweep_piped_into_head_runs_and_records_every_job_quietly(tmp_path):
    exp = tmp_path / "regression"
    shutil.copytree(EXAMPLE, exp, ignore=shutil.ignore_patterns("runs", "multirun", "results", "sem", "__pycache__"))
    for launcher in ("hydra/launcher=sequential", "hydra/launcher=local hydra.launcher.n_jobs=2"):
        proc = subprocess.run(
            [
                "bash",
                "-c",
                f"{sys.executable} m_linear.py {launcher} 2>err.txt | head -1; echo ${{PIPESTATUS[0]}} >rc.txt",
            ],
            cwd=exp / "models",
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert len(proc.stdout.splitlines()) == 1
        err = (exp / "models" / "err.txt").read_text()
        assert (exp / "models" / "rc.txt").read_text().strip() == "0", err[-3000:]
        assert "Traceback" not in err and "Logging error" not in err and "BrokenPipeError" not in err, err[-3000:]
    ls = sem_piped("ls", cwd=exp).stdout
    assert ls.splitlines()[-1] == "20 runs: 20 COMPLETED"


def test_mongo_settings_warnings_are_in_sems_own_one_line_format():
    # with sem's hooks installed, as every entry point (sem, a model file, a worker) does
    code = (
        "from sem_core.errors import install_hooks; install_hooks(); "
        "from sem_core.mongo.connection import resolve_settings; "
        "resolve_settings('mongodb://user:pw@db.example.org/lab', env={})"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sem: warning: sem.mongo.url=") and "UserWarning" not in lines[0]
