"""GPUs on one machine: ``hydra.launcher.gpus_per_job=K`` gives each running job its own K
devices through CUDA_VISIBLE_DEVICES. No GPU is needed: the jobs only read the variable.

Deadlines only guard against hangs; nothing is timed.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import shutil

import pytest

from tests.conftest import load_store, run_model

HANG_GUARD_S = 360.0

MODEL = """
import os, time
from sem_core import Experiment
ex = Experiment(__file__)

@ex.configs
def c():
    return [{"i": i} for i in range(ROWS)]

@ex.automain
def main(config):
    seen = os.environ.get("CUDA_VISIBLE_DEVICES")
    time.sleep(0.5)  # long enough for the jobs to overlap
    return seen
"""


def _model(write_model, rows: int):
    return write_model(MODEL.replace("ROWS", str(rows)))


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env.update(extra)
    return env


def _runs(model) -> list[dict]:
    return [r["run"] for r in load_store(model.parent / "runs")]


def _span(run: dict) -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime.fromisoformat(run["start_time"]), dt.datetime.fromisoformat(run["stop_time"])


def _overlap(a: dict, b: dict) -> bool:
    (start_a, stop_a), (start_b, stop_b) = _span(a), _span(b)
    return start_a < stop_b and start_b < stop_a


def test_each_running_job_gets_its_own_devices(write_model):
    model = _model(write_model, rows=6)
    proc = run_model(
        model,
        "hydra/launcher=local",
        "hydra.launcher.n_jobs=4",
        "hydra.launcher.gpus=[0,1,2,3]",
        "hydra.launcher.gpus_per_job=2",
        env=_env(),
        timeout=HANG_GUARD_S,
    )
    assert proc.returncode == 0, proc.stderr
    runs = _runs(model)
    assert len(runs) == 6 and all(r["status"] == "COMPLETED" for r in runs)
    for run in runs:
        devices = run["result"].split(",")
        assert len(devices) == 2 and set(devices) <= {"0", "1", "2", "3"}
        assert run["meta"]["sem"]["gpus"] == devices
    for a, b in itertools.combinations(runs, 2):
        if _overlap(a, b):
            assert not set(a["result"].split(",")) & set(b["result"].split(",")), (a["result"], b["result"])
    assert "n_jobs=4 capped to 2" in proc.stdout + proc.stderr
    # the jobs did overlap: the assignment was put to the test
    assert any(_overlap(a, b) for a, b in itertools.combinations(runs, 2))


def test_the_devices_come_from_cuda_visible_devices(write_model):
    model = _model(write_model, rows=3)
    proc = run_model(
        model,
        "hydra/launcher=local",
        "hydra.launcher.n_jobs=2",
        "hydra.launcher.gpus_per_job=1",
        env=_env(CUDA_VISIBLE_DEVICES="3,5"),
        timeout=HANG_GUARD_S,
    )
    assert proc.returncode == 0, proc.stderr
    assert {r["result"] for r in _runs(model)} <= {"3", "5"}


def test_the_sequential_launcher_gives_its_jobs_the_first_devices(write_model):
    model = _model(write_model, rows=2)
    proc = run_model(
        model, "hydra.launcher.gpus=[7,8,9]", "hydra.launcher.gpus_per_job=2", env=_env(), timeout=HANG_GUARD_S
    )
    assert proc.returncode == 0, proc.stderr
    assert [r["result"] for r in _runs(model)] == ["7,8", "7,8"]


@pytest.mark.parametrize(
    "args, env, message",
    [
        (("hydra.launcher.gpus=[0,1]", "hydra.launcher.gpus_per_job=3"), {}, "gpus_per_job=3: only 2 GPUs"),
        (("hydra.launcher.gpus_per_job=1",), {"CUDA_VISIBLE_DEVICES": ""}, "gpus_per_job=1: no GPUs found"),
        (("hydra.launcher.gpus_per_job=0", "hydra.launcher.gpus=[0]"), {}, "gpus_per_job=0: give 1 or more"),
        (("hydra.launcher.gpus=[0,0]", "hydra.launcher.gpus_per_job=1"), {}, "gpus lists 0 more than once"),
        (("hydra.launcher.gpus=[0,1]",), {}, "hydra.launcher.gpus is used with hydra.launcher.gpus_per_job"),
    ],
    ids=["more-per-job-than-devices", "no-devices", "zero-per-job", "repeated-device", "devices-without-per-job"],
)
def test_a_bad_gpu_setting_stops_before_any_job(write_model, args, env, message):
    model = _model(write_model, rows=2)
    proc = run_model(
        model, "hydra/launcher=local", "hydra.launcher.n_jobs=2", *args, env=_env(**env), timeout=HANG_GUARD_S
    )
    assert proc.returncode == 1
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (model.parent / "runs").exists() or not load_store(model.parent / "runs")


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has nvidia-smi")
def test_no_gpu_anywhere_is_said_plainly(write_model):
    model = _model(write_model, rows=1)
    proc = run_model(model, "hydra/launcher=local", "hydra.launcher.gpus_per_job=1", env=_env(), timeout=HANG_GUARD_S)
    assert proc.returncode == 1
    assert "no GPUs found (CUDA_VISIBLE_DEVICES is not set; nvidia-smi -L)" in proc.stderr
