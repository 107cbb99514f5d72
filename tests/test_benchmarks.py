"""Every benchmark runs (``benchmarks/run_all.py --quick``, results in a temporary folder, never over
the committed ones) and writes the results file docs/performance.md is generated from: raw
samples, machine, versions, commit. No timing is asserted: speed is what the benchmarks report."""

from __future__ import annotations

import json
import math
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import missing_service

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
sys.path.insert(0, str(BENCH))

import render  # noqa: E402

# the figures each benchmark must measure side by side (keys of its "measurements")
EXPECTED = {
    "core": [
        "sem_sweep",
        "hydra_sweep",
        "sacred_loop",
        "sem_local_2",
        "sem_startup",
        "hydra_startup",
        "sem_peak_small",
        "sem_peak_big",
        "hydra_peak_small",
        "hydra_peak_big",
    ],
    "plan": ["sem_plan", "eager_configstore", "hydra_basic_sweeper"],
    "logging": ["sem_with", "sem_without", "sacred_with", "sacred_without"],
    "capture": ["sacred_per_run", "sem_per_job"],
    "results": ["plain", "sem_cold", "sem_cached", "sem_changed"],
    "sync": ["sem_live_db", "sem_live_file", "sacred_live_db", "sacred_live_file"],
    "slurm": [
        "sem_submission",
        "sem_total",
        "submitit_submission",
        "submitit_total",
        "sem_submit_only",
        "sem_packed_total",
    ],
}
ENVIRONMENT = [
    "date",
    "git_commit",
    "cpu_model",
    "cpu_count",
    "memory_total_mb",
    "load_average_start",
    "load_average_end",
    "python",
    "versions",
]


def slurm_cluster_answers() -> bool:
    return shutil.which("sinfo") is not None and subprocess.run(["sinfo"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("bench-results")
    only = list(EXPECTED) if slurm_cluster_answers() else [name for name in EXPECTED if name != "slurm"]
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run_all.py"),
            "--quick",
            "--jobs",
            str(len(only)),
            "--out",
            str(out),
            "--only",
            *only,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return out, proc


def test_run_all_quick_succeeds(quick_run):
    out, proc = quick_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert (out / "performance.md").exists()


@pytest.mark.parametrize("name", list(EXPECTED))
def test_results_file_has_raw_samples_machine_and_versions(quick_run, name):
    out, _ = quick_run
    path = out / f"{name}.json"
    if name == "slurm" and not path.exists():
        missing_service("bench_slurm needs the test Slurm cluster: bash tests/slurm/start.sh")
    result = json.loads(path.read_text())
    assert result["benchmark"] == name
    assert result["command"].startswith(f"python benchmarks/bench_{name}.py") and "--quick" in result["command"]
    assert "--out" not in result["command"]  # the command reproduces the committed file
    assert result["quick"] is True and result["repeat"] == 1
    assert result["title"] and result["description"] and isinstance(result["params"], dict)
    env = result["environment"]
    assert set(ENVIRONMENT) <= set(env)
    assert len(env["load_average_start"]) == 3 and env["cpu_count"] >= 1
    assert len(env["git_commit"].split("+")[0]) == 40
    for dist in ("hydra-core", "omegaconf", "sacred", "pymongo", "sem"):
        assert env["versions"][dist], dist
    assert set(EXPECTED[name]) <= set(result["measurements"])
    for key, m in result["measurements"].items():
        assert m["label"] and m["includes"] and m["unit"], key
        assert m["samples"] and all(math.isfinite(x) for x in m["samples"]), key
        assert m["median"] == statistics.median(m["samples"]), key
        assert m["min"] == min(m["samples"]) and m["max"] == max(m["samples"]), key
    for key, d in result["derived"].items():
        assert d["label"] and d["how"] and math.isfinite(d["value"]), key


def test_result_records_are_as_large_as_real_ones(quick_run):
    """The stores the results and sync benchmarks read are cloned from a real sweep's records."""
    out, _ = quick_run
    results = json.loads((out / "results.json").read_text())["derived"]
    assert results["record_bytes"]["value"] >= 0.9 * results["template_bytes"]["value"] > 2000
    sync = json.loads((out / "sync.json").read_text())
    assert sync["derived"]["record_bytes"]["value"] > sync["params"]["artifact_bytes"]
    assert all(
        f"sync_{n}" in sync["measurements"] and f"noop_{n}" in sync["measurements"] for n in sync["params"]["runs"]
    )


def test_core_reports_import_times(quick_run):
    out, _ = quick_run
    top = json.loads((out / "core.json").read_text())["importtime_top"]
    assert top and all(e["cumulative_us"] >= e["self_us"] >= 0 and e["module"] for e in top)


def test_slurm_wait_false_records_every_row(quick_run):
    out, _ = quick_run
    if not (out / "slurm.json").exists():
        missing_service("bench_slurm needs the test Slurm cluster: bash tests/slurm/start.sh")
    result = json.loads((out / "slurm.json").read_text())
    assert result["derived"]["submit_only_records"]["value"] == result["params"]["submit_rows"]


def test_page_shows_every_figure_with_its_command(quick_run):
    out, _ = quick_run
    page = (out / "performance.md").read_text()
    for path in sorted(out.glob("*.json")):
        result = json.loads(path.read_text())
        assert f"`{result['command']}`" in page
        for m in result["measurements"].values():
            assert f"| {render.cell(m['label'])} | {render.fmt(m['median'], m['unit'])} |" in page
    assert "benchmarks/run_all.py" in page


def test_committed_page_is_generated_from_the_committed_results():
    """docs/performance.md is render.py's output over benchmarks/results/: no figure typed by hand."""
    committed = sorted((BENCH / "results").glob("*.json"))
    assert {p.stem for p in committed} >= set(EXPECTED), "a benchmark has no committed results file"
    for path in committed:
        result = json.loads(path.read_text())
        assert result["quick"] is False, f"{path.name} holds a --quick run"
    assert (REPO / "docs" / "performance.md").read_text() == render.render(BENCH / "results")
