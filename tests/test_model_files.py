"""End to end: model files run as a user runs them (subprocess), records checked on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from sem_core import ids
from tests.conftest import load_store, run_model

SIMPLE = """
from sem_core import Experiment, grid
ex = Experiment(__file__)

@ex.configs
def get_config():
    return grid(name="m", fold=range(4))

@ex.automain
def main(config):
    ex.log_scalar("loss", config["fold"] * 1.5)
    print("row", config["order_id"], config["experiment_id"])
    return config["fold"]
"""


def test_example_runs_every_row_with_complete_records(example_dir):
    model = example_dir / "models" / "m_linear.py"
    proc = run_model(model, "-m")
    assert proc.returncode == 0, proc.stderr
    runs = load_store(example_dir / "models" / "runs")
    assert len(runs) == 10
    assert sorted(r["config"]["order_id"] for r in runs) == list(range(10))
    for r in runs:
        run, config, d = r["run"], r["config"], r["dir"]
        assert run["status"] == "COMPLETED"
        assert d.name == config["global_id"]
        row = {k: v for k, v in config.items() if k not in ids.ID_KEYS}
        assert config["experiment_id"] == ids.experiment_id(row)
        assert config["config_id"] == ids.config_id(row)
        assert run["experiment"]["mainfile"] == "m_linear.py"
        assert {name for name, _ in run["experiment"]["sources"]} == {"m_linear.py", "data.py"}
        for _, stored in run["experiment"]["sources"]:
            assert (example_dir / "models" / "runs" / stored).exists()
        assert run["host"]["hostname"] and run["start_time"] and run["stop_time"]
        assert run["artifacts"] == ["model.pickle"] and (d / "model.pickle").stat().st_size > 0
        metrics = json.loads((d / "metrics.json").read_text())
        assert set(metrics) >= {"test_rmse", "test_mae", "test_mse", "test_r2", "train_rmse"}
        assert abs(metrics["test_rmse"]["values"][0] - run["result"]) < 1e-12
        assert f"fold {config['fold']}: test rmse" in (d / "cout.txt").read_text()
    # all folds of one configuration share config_id; the two noise levels differ
    by_noise = {}
    for r in runs:
        by_noise.setdefault(r["config"]["noise"], set()).add(r["config"]["config_id"])
    assert all(len(v) == 1 for v in by_noise.values()) and len(by_noise) == 2
    # stdout stays live on the terminal as well
    assert "fold 0: test rmse" in proc.stdout
    assert "10 of 10 jobs completed" in proc.stdout


def test_ids_are_stable_across_invocations(write_model, tmp_path):
    model = write_model(SIMPLE)
    assert run_model(model).returncode == 0
    assert run_model(model, "+order_id=1").returncode == 0
    runs = load_store(model.parent / "runs")
    first = {r["config"]["order_id"]: r["config"] for r in runs if len(runs)}
    by_order = {}
    for r in runs:
        by_order.setdefault(r["config"]["order_id"], []).append(r["config"])
    again = by_order[1]
    assert len(again) == 2
    assert again[0]["experiment_id"] == again[1]["experiment_id"]
    assert again[0]["global_id"] != again[1]["global_id"]
    assert len(first) == 4


@pytest.mark.parametrize(
    "args, expected",
    [
        (["+order_id=2"], [(2, 2)]),
        (["+order_id=0,3"], [(0, 0), (3, 3)]),
        (["+order_id=range(1,3)"], [(1, 1), (2, 2)]),
        (["fold=1,3"], [(1, 1), (3, 3)]),
        (["order_id=0"], [(0, 0)]),
    ],
)
def test_row_selection(write_model, args, expected):
    model = write_model(SIMPLE)
    proc = run_model(model, *args)
    assert proc.returncode == 0, proc.stderr
    got = sorted((r["config"]["order_id"], r["run"]["result"]) for r in load_store(model.parent / "runs"))
    assert got == expected


def test_force_override_and_crossing_recompute_ids(write_model):
    model = write_model(SIMPLE)
    proc = run_model(model, "+order_id=0", "++name=z", "+seed=1,2")
    assert proc.returncode == 0, proc.stderr
    configs = sorted((r["config"] for r in load_store(model.parent / "runs")), key=lambda c: c["seed"])
    assert [(c["order_id"], c["name"], c["seed"]) for c in configs] == [(0, "z", 1), (0, "z", 2)]
    for c in configs:
        assert c["experiment_id"] == ids.experiment_id({"name": "z", "fold": 0, "seed": c["seed"]})
    # the launcher names each job by its row as it starts, not by sem's internal override
    assert "#0 : order_id=0 name=z fold=0 seed=1\n" in proc.stderr + proc.stdout
    assert "#1 : order_id=0 name=z fold=0 seed=2\n" in proc.stderr + proc.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["+order_id=9"], "order_id 9 is out of range: m_test.py has 4 rows (order_id 0-3)"),
        (["fold=7"], "matched none of the 4 rows of m_test.py (fold takes 0, 1, 2, 3)"),
        (["epochs=3"], "'epochs' is not a key of any row of m_test.py"),
        (["+fold=1"], "'fold' already exists in the rows of m_test.py"),
        (["sem.storage=a,b"], "sweeping over sem.storage is not supported"),
    ],
)
def test_bad_selection_is_a_clear_error_before_any_job(write_model, args, message):
    model = write_model(SIMPLE)
    proc = run_model(model, *args)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr
    assert proc.stderr.startswith("m_test.py: error: ")
    assert not (model.parent / "runs").exists()


def test_schema_violation_names_row_key_and_value(write_model):
    model = write_model(
        """
from dataclasses import dataclass
from sem_core import Experiment
@dataclass
class Row:
    lr: float
    fold: int = 0
ex = Experiment(__file__, schema=Row)
@ex.configs
def c():
    return [{"lr": 0.1}, {"lr": 0.2, "fold": 1}, {"lr": "fast", "fold": 2}]
@ex.automain
def main(config):
    return 1
"""
    )
    proc = run_model(model)
    assert proc.returncode != 0
    assert "m_test.py row order_id=2: key 'lr' has value 'fast' (str), but the schema Row expects float" in proc.stderr
    assert not (model.parent / "runs").exists()


def test_a_bad_seed_in_a_row_stops_the_sweep_before_any_job(write_model):
    model = write_model(SIMPLE)
    proc = run_model(model, "+seed=-1")
    assert proc.returncode == 1
    assert "m_test.py row order_id 0: seed must be an integer from 0 to 2**32-1" in proc.stderr
    assert not (model.parent / "runs").exists() or not load_store(model.parent / "runs")


def test_a_heartbeat_interval_of_zero_is_an_error_before_any_job(write_model):
    model = write_model(SIMPLE)
    proc = run_model(model, "sem.heartbeat_interval=0")
    assert proc.returncode == 1
    assert "sem.heartbeat_interval=0.0: must be a number of seconds above 0" in proc.stderr
    assert not (model.parent / "runs").exists() or not load_store(model.parent / "runs")


def test_a_raising_row_fails_alone_with_its_traceback(write_model):
    model = write_model(
        """
from sem_core import Experiment
ex = Experiment(__file__)
@ex.configs
def c():
    return [{"x": 1}, {"x": 0}, {"x": 2}]
@ex.automain
def main(config):
    print("about to divide", config["x"])
    return 1 / config["x"]
"""
    )
    proc = run_model(model)
    assert proc.returncode != 0
    runs = {r["config"]["order_id"]: r for r in load_store(model.parent / "runs")}
    assert {k: r["run"]["status"] for k, r in runs.items()} == {0: "COMPLETED", 1: "FAILED", 2: "COMPLETED"}
    trace = "".join(runs[1]["run"]["fail_trace"])
    assert "ZeroDivisionError: division by zero" in trace and 'return 1 / config["x"]' in trace
    cout = (runs[1]["dir"] / "cout.txt").read_text()
    assert "about to divide 0" in cout and "ZeroDivisionError: division by zero" in cout
    # and on the terminal when it happens, before the summary: the user's frames, not sem's
    # (the record keeps every frame)
    assert "ZeroDivisionError: division by zero" in proc.stderr
    shown = proc.stderr[proc.stderr.index(": failed:") :]
    assert 'return 1 / config["x"]' in shown and "frames of sem and Hydra left out" in shown
    assert "sem_core" not in shown.split("ZeroDivisionError")[0] and "sem_core" in trace
    # the summary names the failed row and its error
    line = next(l for l in proc.stdout.splitlines() if l.startswith("1 "))
    assert "FAILED" in line and "ZeroDivisionError: division by zero" in line
    assert "2 of 3 jobs completed, 1 not completed" in proc.stdout


def test_fail_fast_stops_after_first_failure(write_model):
    model = write_model(
        """
from sem_core import Experiment
ex = Experiment(__file__)
@ex.configs
def c():
    return [{"x": 0}, {"x": 1}, {"x": 2}]
@ex.automain
def main(config):
    raise RuntimeError("boom")
"""
    )
    proc = run_model(model, "hydra.launcher.fail_fast=true")
    assert proc.returncode != 0
    runs = load_store(model.parent / "runs")
    assert [r["run"]["status"] for r in runs] == ["FAILED"]
    assert proc.stdout.count("NOT RUN") == 2


def test_parallel_jobs_share_one_store_without_collision(write_model):
    model = write_model(
        """
import os, time
from sem_core import Experiment
ex = Experiment(__file__)
@ex.configs
def c():
    return [{"i": i} for i in range(16)]
@ex.automain
def main(config):
    for step in range(50):
        ex.log_scalar("v", config["i"] * 100 + step)
    time.sleep(0.2)
    return os.getpid()
"""
    )
    proc = run_model(model, "hydra/launcher=local", "hydra.launcher.n_jobs=8")
    assert proc.returncode == 0, proc.stderr
    runs = load_store(model.parent / "runs")
    assert len(runs) == 16 and len({r["dir"].name for r in runs}) == 16
    assert all(r["run"]["status"] == "COMPLETED" for r in runs)
    assert len({r["run"]["result"] for r in runs}) > 1  # really ran in several processes
    assert os.getpid() not in {r["run"]["result"] for r in runs}
    for r in runs:
        values = json.loads((r["dir"] / "metrics.json").read_text())["v"]["values"]
        assert values == [r["config"]["i"] * 100 + s for s in range(50)]


def test_model_file_importing_a_sibling_module_runs_in_every_launcher(write_model):
    model = write_model(
        """
from sem_core import Experiment
from helper import double
ex = Experiment(__file__)
@ex.configs
def c():
    return [{"x": 1}, {"x": 2}]
@ex.automain
def main(config):
    return double(config["x"])
"""
    )
    (model.parent / "helper.py").write_text("def double(x):\n    return 2 * x\n")
    for args in ([], ["hydra/launcher=local", "hydra.launcher.n_jobs=2"], ["hydra/launcher=submitit_local"]):
        proc = run_model(model, *args, cwd=model.parent.parent)
        assert proc.returncode == 0, proc.stderr
    runs = load_store(model.parent / "runs")
    assert sorted(r["run"]["result"] for r in runs) == [2, 2, 2, 4, 4, 4]
    assert all({n for n, _ in r["run"]["experiment"]["sources"]} == {"m_test.py", "helper.py"} for r in runs)


@pytest.mark.parametrize("launcher", ["basic", "submitit_local"])
def test_hydra_launchers_keep_working(write_model, launcher):
    model = write_model(SIMPLE)
    proc = run_model(model, f"hydra/launcher={launcher}", "+order_id=0,1", timeout=600)
    assert proc.returncode == 0, proc.stderr
    runs = load_store(model.parent / "runs")
    assert sorted(r["run"]["result"] for r in runs) == [0, 1]
    assert all(r["run"]["status"] == "COMPLETED" for r in runs)


def test_cfg_and_help_are_hydras(write_model):
    model = write_model(SIMPLE)
    proc = run_model(model, "--cfg", "job")
    assert proc.returncode == 0, proc.stderr
    assert "sem:" in proc.stdout and "storage:" in proc.stdout
    proc = run_model(model, "--help")
    assert proc.returncode == 0 and "+order_id=2" in proc.stdout
    assert not (model.parent / "runs").exists()


def test_sweep_dir_override_and_distinct_dirs_for_concurrent_sweeps(write_model, tmp_path):
    model = write_model(SIMPLE)
    procs = [
        subprocess.Popen(
            [sys.executable, str(model), "+order_id=0"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    day = next((tmp_path / "multirun").iterdir())
    assert len(list(day.iterdir())) == 2
    proc = run_model(model, "+order_id=0", "hydra.sweep.dir=" + str(tmp_path / "mine"))
    assert proc.returncode == 0
    assert (tmp_path / "mine" / "0" / ".hydra" / "config.yaml").exists()
    assert (tmp_path / "mine" / "sem_sweep.json").exists()


def test_storage_setting_moves_the_store(write_model, tmp_path):
    model = write_model(SIMPLE, experiment_config="sem:\n  storage: results/store\n")
    assert run_model(model, "+order_id=0").returncode == 0
    assert len(load_store(tmp_path / "exp" / "results" / "store")) == 1
    assert run_model(model, "+order_id=1", f"sem.storage={tmp_path / 'cli'}").returncode == 0
    assert len(load_store(tmp_path / "cli")) == 1


def test_invalid_experiment_config_names_file_and_line(write_model):
    model = write_model(SIMPLE, experiment_config="sem:\n  storage: [a\nlocal:\n  type: local\n")
    proc = run_model(model)
    assert proc.returncode != 0
    assert "experiment_config.yaml:3:" in proc.stderr and "invalid YAML" in proc.stderr


def test_invalid_experiment_config_read_at_module_level_has_no_traceback(write_model):
    # the README's template reads the file itself, before @ex.automain takes over
    source = SIMPLE.replace(
        "ex = Experiment(__file__)",
        'ex = Experiment(__file__)\nfrom sem_core.util import read_yaml\nec = read_yaml("../experiment_config.yaml")',
    )
    model = write_model(source, experiment_config="sem:\n  storage: [a\nlocal:\n  type: local\n")
    proc = run_model(model)
    assert proc.returncode == 1
    assert "m_test.py: error:" in proc.stderr and "experiment_config.yaml:3:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_misspelt_sem_key_stops_before_any_job_a_misspelt_section_warns_the_users_keys_pass(write_model):
    model = write_model(SIMPLE, experiment_config="sem:\n  storagee: x\n")
    proc = run_model(model, "+order_id=0")
    assert proc.returncode == 1 and not (model.parent / "runs").exists()
    assert (
        "experiment_config.yaml: section 'sem' key 'storagee': unknown key (did you mean 'storage'?); known keys: "
        in proc.stderr
    )
    model = write_model(SIMPLE, experiment_config="foo: 1\nmongoo: {host: x}\n")
    proc = run_model(model, "+order_id=0")
    assert proc.returncode == 0, proc.stderr
    assert "section 'mongoo' is not read by sem (did you mean 'mongo'?)" in proc.stderr
    assert "'foo'" not in proc.stderr
    assert proc.stderr.count("sem: warning:") == 1


def test_duplicate_rows_warn_once_naming_both(write_model):
    model = write_model(
        SIMPLE.replace('grid(name="m", fold=range(4))', '[{"a": 1}, {"a": 2}, {"a": 1.0}]').replace(
            'config["fold"]', "1"
        )
    )
    proc = run_model(model)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("identical rows") == 1 and "order_id 0 and order_id 2" in proc.stderr


def _wait_for_line(proc, prefix):
    for line in proc.stdout:
        if line.startswith(prefix):
            return
    raise AssertionError(f"the job never printed {prefix!r}")


def test_ctrl_c_records_interrupted(write_model):
    model = write_model(
        """
import time
from sem_core import Experiment
ex = Experiment(__file__)
@ex.configs
def c():
    return [{"x": 1}]
@ex.automain
def main(config):
    print("started", flush=True)
    time.sleep(60)
"""
    )
    proc = subprocess.Popen(
        [sys.executable, str(model)], cwd=model.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for_line(proc, "started")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) != 0
    (run,) = load_store(model.parent / "runs")
    assert run["run"]["status"] == "INTERRUPTED" and run["run"]["stop_time"]


def test_hard_kill_leaves_running_record_with_heartbeat_and_metrics(write_model):
    model = write_model(
        """
import time
from sem_core import Experiment
ex = Experiment(__file__)
@ex.configs
def c():
    return [{"x": 1}]
@ex.automain
def main(config):
    for i in range(5):
        ex.log_scalar("v", i)
    print("logged", flush=True)
    time.sleep(60)
"""
    )
    proc = subprocess.Popen(
        [sys.executable, str(model), "sem.heartbeat_interval=0.2"], cwd=model.parent, stdout=subprocess.PIPE, text=True
    )
    _wait_for_line(proc, "logged")
    from sem_core.records import parse_time

    logged_at = time.time()
    store = model.parent / "runs"
    deadline = time.time() + 30
    while time.time() < deadline:  # a heartbeat after the five values were logged
        runs = load_store(store)
        beat = runs[0]["run"].get("heartbeat") if runs else None
        if beat and parse_time(beat).timestamp() > logged_at:
            break
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    (run,) = load_store(store)
    assert run["run"]["status"] == "RUNNING" and run["run"]["heartbeat"]
    from sem_core.records import read_metrics

    assert read_metrics(run["dir"])["v"]["values"] == [0, 1, 2, 3, 4]


def test_api_outside_a_run_is_a_clear_error():
    from sem_core import Experiment
    from sem_core.errors import NoActiveRun

    ex = Experiment(__file__)
    with pytest.raises(NoActiveRun, match="only inside main"):
        ex.log_scalar("x", 1)
    with pytest.raises(NoActiveRun):
        ex.info


def test_sem_plan_lists_jobs_without_running(write_model):
    model = write_model(SIMPLE)
    proc = subprocess.run(
        [sys.executable, "-m", "sem_core.cli", "plan", str(model), "fold=1,2", "++name=q", "--json"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    jobs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(j["order_id"], j["row"]) for j in jobs] == [(1, {"name": "q", "fold": 1}), (2, {"name": "q", "fold": 2})]
    assert all(j["experiment_id"] == ids.experiment_id(j["row"]) for j in jobs)
    assert not (model.parent / "runs").exists()
    bad = subprocess.run(
        [sys.executable, "-m", "sem_core.cli", "plan", str(model), "fold=9"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "matched none of the 4 rows" in bad.stderr


def test_relative_storage_survives_hydra_chdir(write_model, tmp_path):
    model = write_model(SIMPLE)
    proc = run_model(model, "+order_id=0", "sem.storage=rel_store", "hydra.job.chdir=true", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run,) = load_store(tmp_path / "rel_store")
    assert run["run"]["status"] == "COMPLETED"


def test_rows_with_numpy_nested_values_and_dollar_strings_reach_main_unchanged(write_model):
    model = write_model(
        """
import json
import numpy as np
from sem_core import Experiment
ex = Experiment(__file__)
@ex.configs
def c():
    return [{"lr": np.float64(0.5), "n": np.int64(3), "w": np.array([1.0, 2.0]),
             "opt": {"name": "adam", "betas": (0.9, 0.99)}, "tmpl": "${not.an.interpolation}", "none": None}]
@ex.automain
def main(config):
    return json.dumps({k: [type(v).__name__, v] for k, v in config.items()}, sort_keys=True)
"""
    )
    proc = run_model(model)
    assert proc.returncode == 0, proc.stderr
    (run,) = load_store(model.parent / "runs")
    seen = json.loads(run["run"]["result"])
    assert seen["lr"] == ["float", 0.5] and seen["n"] == ["int", 3] and seen["w"] == ["list", [1.0, 2.0]]
    assert seen["opt"] == ["dict", {"name": "adam", "betas": [0.9, 0.99]}]
    assert seen["tmpl"] == ["str", "${not.an.interpolation}"] and seen["none"] == ["NoneType", None]
    row = {k: v for k, v in run["config"].items() if k not in ids.ID_KEYS}
    assert row["tmpl"] == "${not.an.interpolation}"
    assert run["config"]["experiment_id"] == ids.experiment_id(
        {
            "lr": 0.5,
            "n": 3,
            "w": [1, 2],
            "opt": {"name": "adam", "betas": [0.9, 0.99]},
            "tmpl": "${not.an.interpolation}",
            "none": None,
        }
    )


def test_cout_captures_c_level_and_child_process_output_and_stays_live(write_model):
    model = write_model(
        """
import os, subprocess, sys
from sem_core import Experiment
ex = Experiment(__file__)
@ex.configs
def c():
    return [{"x": 1}]
@ex.automain
def main(config):
    print("from python")
    print("to stderr", file=sys.stderr)
    sys.stdout.flush()
    os.write(1, b"raw fd write\\n")
    os.system("echo from os.system")
    subprocess.run(["sh", "-c", "echo from a child >&2"], check=True)
    print("héllo ünïcode")
"""
    )
    proc = run_model(model)
    assert proc.returncode == 0, proc.stderr
    (run,) = load_store(model.parent / "runs")
    cout = (run["dir"] / "cout.txt").read_text()
    for line in ("from python", "to stderr", "raw fd write", "from os.system", "from a child", "héllo ünïcode"):
        assert line in cout
    # still live, each on the stream it was written to
    assert "from python" in proc.stdout and "from os.system" in proc.stdout
    assert "to stderr" in proc.stderr and "from a child" in proc.stderr
    proc = run_model(model, "sem.capture=sys")
    assert proc.returncode == 0, proc.stderr
    newest = max(load_store(model.parent / "runs"), key=lambda r: r["run"]["start_time"])
    cout = (newest["dir"] / "cout.txt").read_text()
    assert "from python" in cout and "to stderr" in cout and "from os.system" not in cout
    bad = run_model(model, "sem.capture=tee")
    assert bad.returncode != 0 and "capture" in bad.stderr


def test_a_record_that_cannot_be_written_fails_the_job_loudly(write_model, tmp_path):
    model = write_model(SIMPLE)
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the run store should be")
    proc = run_model(model, "+order_id=0", f"sem.storage={blocker}")
    assert proc.returncode != 0
    assert "sem could not start recording this run" in proc.stdout + proc.stderr
    line = next(l for l in proc.stdout.splitlines() if l.startswith("0 "))
    assert "NO RECORD" in line
    assert blocker.read_text() == "a file where the run store should be"


def test_a_module_first_imported_inside_main_is_stored_with_the_run(write_model):
    model = write_model(
        """
from sem_core import Experiment
ex = Experiment(__file__)
@ex.configs
def c():
    return [{"x": 3}]
@ex.automain
def main(config):
    import late_helper
    return late_helper.triple(config["x"])
"""
    )
    (model.parent / "late_helper.py").write_text("def triple(x):\n    return 3 * x\n")
    proc = run_model(model)
    assert proc.returncode == 0, proc.stderr
    (run,) = load_store(model.parent / "runs")
    sources = dict(run["run"]["experiment"]["sources"])
    assert set(sources) == {"m_test.py", "late_helper.py"} and run["run"]["result"] == 9
    assert (model.parent / "runs" / sources["late_helper.py"]).read_text() == "def triple(x):\n    return 3 * x\n"
