"""Results of REAL sweeps of the example (examples/regression), run as a user runs them.

One module-level store: ``m_linear.py -m`` twice (every run has an older duplicate) and a model
file that fails on one fold. Every number is checked against values computed here, independently,
from the run folders' JSON files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from sem_core import cli
from sem_core.results import load_runs, results_table
from tests.browser import dump_dom, png_size, screenshot
from tests.conftest import EXAMPLE, run_model

GOLDEN = Path(__file__).parent / "golden"
FLAKY_MODEL = '''\
"""Fails on fold 2 (for the results tests)."""
from sem_core import Experiment, grid

ex = Experiment(__file__)


@ex.configs
def get_config():
    return grid(name="flaky", fold=range(3))


@ex.automain
def main(config):
    print(f"fitting fold {config['fold']}")
    ex.log_scalar("test_rmse", 1.0 + config["fold"])
    if config["fold"] == 2:
        raise ValueError("diverged on fold 2")
    return 1.0
'''


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Iterator[Path]:
    """The experiment folder after the three sweeps (results caches kept in the test's folder)."""
    root = tmp_path_factory.mktemp("results-example")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEM_CACHE_DIR", str(root / "cache"))
        yield _sweep(root)


def _sweep(root: Path) -> Path:
    exp = root / "regression"
    shutil.copytree(EXAMPLE, exp, ignore=shutil.ignore_patterns("runs", "multirun", "results", "__pycache__"))
    models = exp / "models"
    for attempt in range(2):  # the second sweep reruns every row: each run gets an older duplicate
        proc = run_model(models / "m_linear.py", "-m", "sem.skip_completed=false")
        assert proc.returncode == 0, proc.stderr[-3000:]
    (models / "m_flaky.py").write_text(FLAKY_MODEL)
    proc = run_model(models / "m_flaky.py", "-m")
    assert proc.returncode != 0, "a sweep with a failed job must exit non-zero"
    return exp


def store_runs(store: Path) -> list[dict]:
    """Every run folder as plain JSON, read without sem."""
    out = []
    for d in sorted(store.iterdir()):
        if d.is_dir() and (d / "run.json").exists():
            run = json.loads((d / "run.json").read_text())
            config = json.loads((d / "config.json").read_text())
            metrics = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").exists() else {}
            out.append({"dir": d, "run": run, "config": config, "metrics": metrics})
    return out


def expected_stats(store: Path, metric: str) -> dict[tuple[str, str], tuple[float, float, int]]:
    """(model, config_id) -> (mean, std, n) of the last value of ``metric`` over the newest
    COMPLETED run of every experiment_id: the documented rule, computed independently."""
    newest: dict[tuple[str, str], dict] = {}
    for r in store_runs(store):
        if r["run"]["status"] != "COMPLETED":
            continue
        key = (r["run"]["experiment"]["mainfile"], r["config"]["experiment_id"])
        if key not in newest or r["run"]["start_time"] > newest[key]["run"]["start_time"]:
            newest[key] = r
    values = defaultdict(list)
    for (model, _), r in newest.items():
        if metric in r["metrics"]:
            values[(model, r["config"]["config_id"])].append(r["metrics"][metric]["values"][-1])
    return {
        k: (statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else float("nan"), len(v)) for k, v in values.items()
    }


def sem(*args: str, capsys) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_mean_std_per_config_match_the_metrics_files(swept):
    store = swept / "models" / "runs"
    runs = load_runs(swept)
    for metric in ("test_rmse", "test_r2", "train_rmse"):
        table = results_table(runs, metrics=[metric])
        expected = expected_stats(store, metric)
        got = {}
        for i, key in enumerate(zip(table.keys["model"], table.keys["config_id"])):
            got[key] = table.cell(i, (), metric)
        assert set(got) == set(expected)
        for key, (mean, std, n) in expected.items():
            assert got[key][0] == pytest.approx(mean, rel=1e-12)
            assert got[key][2] == n
            if n > 1:
                assert got[key][1] == pytest.approx(std, rel=1e-9)
    table = results_table(runs, metrics=["test_rmse"])
    assert [r[0] for r in table.row_labels()] == [
        "m_flaky.py: name=flaky",
        "m_linear.py: name=linear, noise=0.1",
        "m_linear.py: name=linear, noise=0.5",
    ]
    assert table.runs_per_row == [2, 5, 5]


def test_duplicates_and_failed_runs_are_excluded_and_reported(swept):
    runs = load_runs(swept)
    assert len(runs) == 23
    table = results_table(runs, metrics=["test_rmse"])
    reasons = table.excluded["reason"].tolist()
    assert reasons.count("FAILED") == 1
    assert sum(r.startswith("older duplicate of ") for r in reasons) == 10
    failed = table.excluded[table.excluded["reason"] == "FAILED"].iloc[0]
    assert failed["fold"] == 2 and failed["model"] == "m_flaky.py"
    # every excluded duplicate is older than the run that replaced it
    by_id = runs.set_index("global_id")
    for _, row in table.excluded[table.excluded["reason"] != "FAILED"].iterrows():
        newer = row["reason"].removeprefix("older duplicate of ")
        assert by_id.loc[newer, "experiment_id"] == row["experiment_id"]
        assert by_id.loc[newer, "start_time"] >= row["start_time"]
    assert table.footnote.startswith("Excluded: 10 older duplicate runs, 1 failed run")


def test_latex_matches_the_golden_file(swept, capsys):
    code, out, err = sem(
        "results", str(swept), "--format", "latex", "--metric", "test_rmse", "--metric", "test_r2", capsys=capsys
    )
    assert code == 0, err
    golden = GOLDEN / "results_example.tex"
    if os.environ.get("SEM_UPDATE_GOLDEN"):
        golden.write_text(out)
    assert out == golden.read_text()
    assert out.count(r"\toprule") == out.count(r"\midrule") == out.count(r"\bottomrule") == 1
    for line in out.splitlines():
        if line.endswith(r"\\") and "&" in line:
            assert line.count("&") == 2


def test_csv_round_trips_through_the_command(swept, capsys, tmp_path):
    out_file = tmp_path / "results.csv"
    code, _, err = sem("results", str(swept), "--format", "csv", "-o", str(out_file), capsys=capsys)
    assert code == 0, err
    back = pd.read_csv(out_file)
    table = results_table(load_runs(swept))
    assert list(back["configuration"]) == [r[0] for r in table.row_labels()]
    for i in range(len(back)):
        for metric in table.metrics:
            mean, std, count = table.cell(i, (), metric)
            assert back[f"{metric}_mean"][i] == pytest.approx(mean, rel=0, abs=0) or (
                pd.isna(mean) and pd.isna(back[f"{metric}_mean"][i])
            )
            assert back[f"{metric}_count"][i] == count


def test_results_by_fold_where_and_markdown(swept, capsys):
    code, out, _ = sem(
        "results",
        str(swept),
        "--format",
        "md",
        "--metric",
        "test_rmse",
        "--by",
        "fold",
        "--where",
        "noise=0.5",
        capsys=capsys,
    )
    assert code == 0
    # one configuration is left, so its label is the model's name
    rows = [line for line in out.splitlines() if line.startswith("| m_linear.py |")]
    assert [row.split(" | ")[1] for row in rows] == ["0", "1", "2", "3", "4"]
    assert not any(" ± " in line for line in rows)  # one run per fold: no std
    newest = load_runs(swept).query("noise == 0.5").sort_values("start_time").groupby("fold").tail(1)
    by_fold = dict(zip(newest["fold"], newest["test_rmse"]))
    assert [row.split(" | ")[3].strip(" |*") for row in rows] == [f"{by_fold[f]:.4f}" for f in range(5)]


def test_bad_metric_and_key_list_the_available_ones(swept, capsys):
    code, _, err = sem("results", str(swept), "--metric", "test_rsme", capsys=capsys)
    assert code == 2 and "unknown metric 'test_rsme'; available metrics: test_mae, test_mse, test_r2, test_rmse" in err
    code, _, err = sem("results", str(swept), "--group-by", "nosie", capsys=capsys)
    assert code == 2 and "unknown key 'nosie'; available keys:" in err and "noise" in err
    code, _, err = sem("ls", str(swept), "--where", "noise=0.3", capsys=capsys)
    assert code == 2 and "no run has noise=0.3; noise takes: 0.1, 0.5, None" in err


def test_no_runs_says_where_it_looked(tmp_path, capsys):
    (tmp_path / "exp" / "models").mkdir(parents=True)
    code, _, err = sem("results", str(tmp_path / "exp"), capsys=capsys)
    assert code == 2 and f"no runs found in {tmp_path / 'exp' / 'models' / 'runs'}" in err


def test_ls_lists_every_run_with_its_status(swept, capsys):
    code, out, _ = sem("ls", str(swept), capsys=capsys)
    assert code == 0
    assert out.count("COMPLETED") == 22 + 1 and out.count("FAILED") == 1 + 1  # 22 rows + summary line
    assert out.strip().splitlines()[-1] == "23 runs: 22 COMPLETED, 1 FAILED"
    code, out, _ = sem("ls", str(swept), "--where", "status=FAILED", capsys=capsys)
    assert out.strip().splitlines()[-1] == "1 run: 1 FAILED"


def test_show_a_failed_run_by_prefix_prints_traceback_and_output_tail(swept, capsys):
    runs = load_runs(swept)
    failed = runs[runs["status"] == "FAILED"].iloc[0]
    code, out, _ = sem("show", failed["global_id"][:-4], str(swept), capsys=capsys)
    assert code == 0
    assert f"run {failed['global_id']}  [FAILED]" in out
    assert "ValueError: diverged on fold 2" in out
    assert "fitting fold 2" in out.split("output (last")[1]
    assert "fold: 2" in out
    code, out, _ = sem("show", failed["experiment_id"][:6], str(swept), capsys=capsys)
    assert f"experiment_id  {failed['experiment_id']}" in out


def test_show_an_ambiguous_prefix_lists_the_candidates(swept, capsys):
    code, _, err = sem("show", "2", str(swept), capsys=capsys)
    assert code == 2 and "'2' is a prefix of" in err and "give more characters" in err


def test_plot_writes_a_png_with_one_band_per_configuration(swept, capsys, tmp_path):
    out = tmp_path / "rmse.png"
    code, _, err = sem("plot", "test_rmse", str(swept), "-o", str(out), capsys=capsys)
    assert code == 0, err
    width, height = png_size(out)
    assert width > 400 and height > 200


def test_console_script_finds_the_experiment_from_the_current_directory(swept):
    proc = subprocess.run(
        [sys.executable, "-m", "sem_core.cli", "results", "--format", "md", "--metric", "test_rmse"],
        cwd=swept / "models",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| m_linear.py: name=linear, noise=0.1 | 5 |" in proc.stdout


def test_output_piped_into_a_closed_reader_ends_without_a_traceback(swept):
    # `sem show CONFIG_ID | head -1`: the reader exits before sem has written everything
    config_id = next(
        r["config"]["config_id"] for r in store_runs(swept / "models" / "runs") if "config_id" in r["config"]
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "sem_core.cli", "show", config_id],
        cwd=swept,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


@pytest.mark.browser
def test_html_report_renders_in_chromium_with_the_table_numbers(swept, capsys, tmp_path):
    report = tmp_path / "report.html"
    code, _, err = sem("report", str(swept), "-o", str(report), capsys=capsys)
    assert code == 0, err
    text = report.read_text()
    # self-contained: no scripts, no external stylesheets or images
    assert "<script" not in text and not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    dom = dump_dom(report)
    cells = re.findall(r'data-metric="test_rmse" data-mean="([^"]+)" data-std="([^"]+)" data-count="(\d+)"', dom)
    expected = expected_stats(swept / "models" / "runs", "test_rmse")
    table = results_table(load_runs(swept), metrics=["test_rmse"])
    order = list(zip(table.keys["model"], table.keys["config_id"]))
    assert len(cells) == len(order) == 3
    for (mean, std, count), key in zip(cells, order):
        assert float(mean) == pytest.approx(expected[key][0], rel=1e-12) and int(count) == expected[key][2]
    assert "diverged on fold 2" in dom  # the failed run's error
    assert dom.count("data:image/png;base64,") >= 4  # one plot per metric
    png = screenshot(report, Path(os.environ.get("SEM_TEST_ARTIFACTS", tmp_path)) / "results-report.png")
    assert png_size(png) == (1400, 900)
