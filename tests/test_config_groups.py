"""Rows that choose Hydra config-group options (``Experiment(__file__, config_path=, config_name=)``):
the pure rules (sem_core.groups) and model files run through Hydra, records read back from disk."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hypothesis import example, given
from hypothesis import strategies as st

from sem_core import ids
from sem_core.groups import ConfigGroups, choice_overrides, nest_keys, split_row
from tests.conftest import load_store, run_model
from tests.test_slurm_cluster import LAUNCH, cluster  # noqa: F401 (the cluster fixture: skips without Slurm)

# initialize(version_base=...) sets Hydra's process-wide version base (it decides hydra.job.chdir):
# put Hydra's singletons back after each test, or later tests run with another default
pytestmark = pytest.mark.usefixtures("hydra_restore_singletons")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hydra_groups"
GROUPS = ConfigGroups(options={"model": ("linear", "mlp"), "optimizer": ("adam", "sgd")})


def test_a_row_splits_into_group_choices_and_dotted_keys():
    row = {"model": "mlp", "optimizer": "adam", "optimizer.lr": 0.01, "fold": 2}
    choices, values = split_row(row, GROUPS)
    assert choices == {"model": "mlp", "optimizer": "adam"}
    assert nest_keys(values) == {"optimizer": {"lr": 0.01}, "fold": 2}


def test_two_keys_setting_one_path_are_refused():
    with pytest.raises(ValueError, match="two keys of the row set 'a.b'"):
        nest_keys({"a.b": 1, "a": {"b": 2}})
    with pytest.raises(ValueError, match="keys 'a' and 'a.b' both set 'a'"):
        nest_keys({"a": 1, "a.b": 2})


options = st.text(
    st.characters(min_codepoint=32, max_codepoint=0x2FF, blacklist_categories=("Cs",)), min_size=1, max_size=12
)


@given(options, st.booleans())
@example("${x}", False)
@example("x\\", True)
@example("it's", False)
def test_a_choice_reaches_hydra_as_the_option_named(option, appended):
    """Whatever an option is called, Hydra's override parser reads back that name."""
    (text,) = choice_overrides({"model": option}, ["model"] if appended else [])
    (parsed,) = OverridesParser.create().parse_overrides([text])
    assert parsed.key_or_group == "model" and str(parsed.value()) == option
    assert parsed.is_add() == appended


@given(st.dictionaries(st.from_regex(r"[a-z]{1,3}(\.[a-z]{1,3}){0,2}", fullmatch=True), st.integers(), max_size=6))
def test_nested_keys_flatten_back_to_the_row(values):
    try:
        nested = nest_keys(values)
    except ValueError:
        return  # a path set twice (a and a.b): refused, tested above

    def flat(node, prefix=""):
        for k, v in node.items():
            if isinstance(v, dict) and v:
                yield from flat(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    assert dict(flat(nested)) == values


# -- model files with a config tree, run through Hydra ----------------------------------------
@pytest.fixture
def example(tmp_path: Path) -> Path:
    target = tmp_path / "hydra_groups"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("runs", "multirun", "__pycache__"))
    return target / "models" / "m_classify.py"


def test_each_row_runs_the_config_hydra_composes_from_its_choices(example: Path):
    proc = run_model(example)
    assert proc.returncode == 0, proc.stderr
    runs = load_store(example.parent / "runs")
    assert len(runs) == 9 and all(r["run"]["status"] == "COMPLETED" for r in runs)
    for r in runs:
        config = r["config"]
        row = ids.user_keys(config)
        # config.json: the row as written (the ids hash it) and the config the job used
        assert set(row) <= {"model", "optimizer", "fold", "model/activation", "optimizer.lr"}
        assert config["experiment_id"] == ids.experiment_id(row)
        composed = config["composed"]
        assert composed["model"]["name"] == row["model"] and composed["optimizer"]["name"] == row["optimizer"]
        assert composed["data"] == {"name": "blobs", "n_samples": 400, "dim": 4, "separation": 1.5}
        assert composed["fold"] == row["fold"] and composed["epochs"] == 30
        assert "model=" + row["model"] in r["run"]["meta"]["sem"]["overrides"]
    (custom,) = [r["config"] for r in runs if r["config"]["order_id"] == 8]
    # a nested group (model/activation, from mlp's own defaults list) and a key inside a chosen option
    assert custom["composed"]["model"]["activation"] == {"name": "tanh"}
    assert custom["composed"]["optimizer"]["lr"] == 0.05 and custom["composed"]["optimizer"]["beta1"] == 0.9
    (plain_mlp,) = [r["config"] for r in runs if r["config"]["order_id"] == 6]
    assert plain_mlp["composed"]["model"]["activation"] == {"name": "relu"}


def test_command_line_selects_and_overrides_rows_by_their_choices_and_keys(example: Path):
    proc = run_model(example, "model=mlp", "optimizer.lr=0.05")
    assert proc.returncode == 0, proc.stderr
    assert "1 of 1 jobs completed" in proc.stdout
    proc = run_model(example, "++optimizer.lr=0.3", "+order_id=0")
    assert proc.returncode == 0, proc.stderr
    proc = run_model(example, "++optimizer=adam", "+order_id=0")
    assert proc.returncode == 0, proc.stderr
    runs = {r["config"]["experiment_id"]: r["config"] for r in load_store(example.parent / "runs")}
    assert len(runs) == 3
    by_order = {(c["order_id"], c.get("optimizer.lr"), c["optimizer"]): c for c in runs.values()}
    assert by_order[(0, 0.3, "sgd")]["composed"]["optimizer"] == {"name": "sgd", "lr": 0.3, "momentum": 0.0}
    assert by_order[(0, None, "adam")]["composed"]["optimizer"]["name"] == "adam"


TREE = {
    "config.yaml": "defaults:\n  - model: small\n  - _self_\nsteps: 3\n",
    "model/small.yaml": "width: 8\n",
    "model/large.yaml": "width: 64\n",
    "augment/flip.yaml": "p: 0.5\n",  # a group the defaults list does not choose
}

MODEL = """
from sem_core import Experiment
ex = Experiment(__file__, config_path="conf", config_name="config")

@ex.configs
def configs():
    return ROWS

@ex.automain
def main(config):
    print("main got", sorted(config))
    return config["model"]["width"] * config["steps"] + config.get("augment", {}).get("p", 0)
"""


def write_tree(write_model, rows: list) -> Path:
    model = write_model(MODEL.replace("ROWS", repr(rows)))
    for name, text in TREE.items():
        path = model.parent / "conf" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return model


def test_main_receives_the_composed_config_and_an_unchosen_group_is_appended(write_model):
    model = write_tree(write_model, [{"model": "large"}, {"model": "small", "augment": "flip", "steps": 10}])
    proc = run_model(model)
    assert proc.returncode == 0, proc.stderr
    results = {r["config"]["order_id"]: r["run"]["result"] for r in load_store(model.parent / "runs")}
    assert results == {0: 64 * 3, 1: 8 * 10 + 0.5}
    assert "main got ['config_id', 'experiment_id', 'global_id', 'model', 'order_id', 'seed', 'steps']" in proc.stdout


def test_a_row_choosing_an_option_that_does_not_exist_stops_before_any_job(write_model):
    model = write_tree(write_model, [{"model": "small"}, {"model": "huge", "steps": 1}])
    proc = run_model(model)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "m_test.py: error: m_test.py row order_id=1: model='huge' is not an option of the config group 'model' "
        "(options: large, small)"
    )
    assert not (model.parent / "runs").exists() and not (model.parent / "multirun").exists()


def test_a_value_for_a_group_that_is_not_an_option_name_is_explained(write_model):
    model = write_tree(write_model, [{"model": {"width": 3}}])
    proc = run_model(model)
    assert proc.returncode == 1
    assert (
        "row order_id=0: key 'model' is a config group, so its value is the name of one of its options "
        "(large, small), not {'width': 3}; set a key inside it as 'model.KEY'" in proc.stderr
    )
    assert not (model.parent / "runs").exists()


def test_schema_and_config_tree_together_are_refused(write_model):
    model = write_model(
        textwrap.dedent("""
        from dataclasses import dataclass
        from sem_core import Experiment

        @dataclass
        class Conf:
            x: int = 0

        ex = Experiment(__file__, schema=Conf, config_path=".", config_name="config")
    """)
    )
    proc = run_model(model)
    assert proc.returncode == 1
    assert "give schema= or config_path=/config_name=, not both" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_missing_config_folder_or_primary_config_is_one_line(write_model):
    model = write_model(MODEL.replace("ROWS", "[{}]"))
    proc = run_model(model)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"m_test.py: error: config_path: no folder {model.parent / 'conf'} (it is taken relative to the model file)"
    )
    (model.parent / "conf").mkdir()
    proc = run_model(model)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith(
        f"m_test.py: error: {model.parent / 'conf'}: config_name='config': Hydra cannot compose it: "
        "Cannot find primary config 'config'"
    )
    assert len(proc.stderr.strip().splitlines()) == 1


def test_sem_plan_checks_the_choices_too(write_model, tmp_path: Path):
    import subprocess
    import sys

    model = write_tree(write_model, [{"model": "small"}, {"model": "tiny"}])
    proc = subprocess.run(
        [sys.executable, "-m", "sem_core.cli", "plan", str(model), "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2  # sem's exit code for bad input
    assert (
        "order_id=1: model='tiny' is not an option of the config group 'model' (options: large, small)" in proc.stderr
    )
    model = write_tree(write_model, [{"model": "small", "steps": 2}])
    proc = subprocess.run(
        [sys.executable, "-m", "sem_core.cli", "plan", str(model), "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    (job,) = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert job["experiment_id"] == ids.experiment_id({"model": "small", "steps": 2})


@pytest.mark.slurm
@pytest.mark.usefixtures("cluster")
def test_rows_choosing_groups_run_packed_on_the_slurm_cluster(example: Path):
    """Array tasks running several rows each compose each row's choices on the compute node."""
    proc = run_model(example, *LAUNCH, "hydra.launcher.configs_per_task=4", timeout=600)
    assert proc.returncode == 0, proc.stderr
    runs = load_store(example.parent / "runs")
    assert len(runs) == 9 and all(r["run"]["status"] == "COMPLETED" for r in runs)
    for r in runs:
        config = r["config"]
        assert config["composed"]["model"]["name"] == config["model"]
        assert config["composed"]["optimizer"]["name"] == config["optimizer"]
    (custom,) = [r["config"] for r in runs if r["config"]["order_id"] == 8]
    assert (
        custom["composed"]["model"]["activation"] == {"name": "tanh"} and custom["composed"]["optimizer"]["lr"] == 0.05
    )


@pytest.mark.parametrize("name", ["m_typed.py", "m_classify.py"])
def test_each_jobs_derived_config_is_hydras_composition(tmp_path: Path, name: str):
    """Launchers derive a job's config from one composition per set of choices (copy, merge the
    row's node): for a schema's typed fields and for a config tree's choices it is exactly the
    config Hydra composes for that job, and the derivation is used."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from sem_core.experiment import load_model_file
    from sem_core.hydra_app import register_primary_config
    from sem_core.launch.job_config import JobConfigs
    from sem_core.plan import job_record
    from sem_core.row_store import job_overrides
    from sem_core.sweep_plan import plan_experiment

    shutil.copytree(EXAMPLE, tmp_path / "ex", ignore=shutil.ignore_patterns("runs", "multirun", "__pycache__"))
    experiment = load_model_file(tmp_path / "ex" / "models" / name)
    primary = register_primary_config(experiment, {})
    with initialize_config_dir(version_base="1.3", config_dir=str(experiment.config_dir or tmp_path)):
        hydra = GlobalHydra.instance().hydra
        master = hydra.compose_config(primary, [], run_mode=RunMode.MULTIRUN, with_log_configuration=False)
        planned = [job_record(job, ids.new_global_id()) for job in plan_experiment(experiment, [])]
        configs = JobConfigs(hydra.config_loader, master)
        for overrides in job_overrides(planned, experiment):
            derived = configs.for_job(overrides)
            assert OmegaConf.to_yaml(derived) == OmegaConf.to_yaml(
                hydra.config_loader.load_sweep_config(master, overrides)
            )
        assert any(base.usable for base in configs._bases.values())
