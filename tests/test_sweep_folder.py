"""A sweep's folder as a real sweep leaves it: Hydra's multirun.yaml and sem's manifest."""

from __future__ import annotations

import json

import yaml
from omegaconf import OmegaConf

from sem_core.help_text import model_file_help
from tests.conftest import run_model

MODEL = """
from sem_core import Experiment

ex = Experiment(__file__)


@ex.configs
def get_config():
    return [{"x": i, "note": "yes"} for i in range(2)]


@ex.automain
def main(config):
    return config["x"]
"""


def test_multirun_yaml_holds_the_sweep_config_as_omegaconf_reads_and_writes_it(write_model):
    model = write_model(MODEL)
    proc = run_model(model, "sem.heartbeat_interval=7", "+order_id=1")
    assert proc.returncode == 0, proc.stderr
    (sweep_dir,) = [p.parent for p in model.parent.rglob("sem_sweep.json")]
    text = (sweep_dir / "multirun.yaml").read_text(encoding="utf-8")
    cfg = OmegaConf.load(sweep_dir / "multirun.yaml")
    # what OmegaConf.save would have written, read back: the same data
    assert yaml.safe_load(OmegaConf.to_yaml(cfg)) == yaml.safe_load(text)
    # interpolations are kept, not resolved; the sweep's own settings and overrides are there
    assert OmegaConf.to_container(cfg.hydra.sweep)["subdir"] == "${hydra.job.num}"
    assert cfg.sem.heartbeat_interval == 7
    assert "sem.heartbeat_interval=7" in cfg.hydra.overrides.task
    # a long multi-line string with quotes and '$' survives
    assert OmegaConf.to_container(cfg.hydra.help)["template"] == model_file_help(model.name)
    manifest = json.loads((sweep_dir / "sem_sweep.json").read_text())
    assert [job["order_id"] for job in manifest["jobs"]] == [1]
