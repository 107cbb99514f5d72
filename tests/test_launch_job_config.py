"""Each job's config is derived from one composition per sweep (sem_core.launch.job_config):
it must be exactly what Hydra's ``load_sweep_config`` composes for that job, for any rows and
any of the Hydra overrides a sweep passes to every job."""

from __future__ import annotations

import copy
import json
import os
import shutil
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import pytest
import yaml
from hydra import initialize
from hydra._internal.callbacks import Callbacks
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.utils import JobStatus
from hydra.types import RunMode
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf, open_dict

from sem_core.experiment import load_model_file
from sem_core.hydra_app import register_primary_config
from sem_core.launch.job_config import JobConfigs
from sem_core.row_store import register_rows
from tests.conftest import run_model

# initialize(version_base=...) sets Hydra's process-wide version base (it decides hydra.job.chdir):
# put Hydra's singletons back after each test, or later tests run with another default
pytestmark = pytest.mark.usefixtures("hydra_restore_singletons")

MODEL = """
from sem_core import Experiment
ex = Experiment(__file__)

@ex.configs
def configs():
    return [{"x": 1}]

@ex.main
def main(config):
    return None
"""

# a sweep's command line besides its rows (sem_core.argv keeps row keys for itself)
COMMON_OVERRIDES = [
    [],
    ["hydra.job.chdir=true"],
    ["sem.heartbeat_interval=7", "sem.storage=/tmp/elsewhere"],
    ["hydra.sweep.subdir=${hydra.job.num}_${hydra.job.override_dirname}"],
    ["hydra.job.config.override_dirname.exclude_keys=[sem_row]", "hydra.verbose=true"],
    ["hydra/launcher=local", "hydra.launcher.n_jobs=2"],
    ["+hydra.job.env_set.SEM_TEST_VAR=1", "hydra.output_subdir=null"],
]

keys = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(lambda k: k not in ("hydra", "sem"))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["${x}", "a${b}c", "\\${y}", "1e-3", "", "null", "true"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)),
    max_leaves=6,
)
rows = st.lists(st.dictionaries(keys, values, min_size=1, max_size=4), min_size=2, max_size=4)


@pytest.fixture(scope="module")
def primary(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("exp") / "models"
    folder.mkdir()
    (folder / "m_cfg.py").write_text(MODEL)
    return register_primary_config(load_model_file(folder / "m_cfg.py"), {})


def _sweep(primary: str, common: list[str]):
    """(the config loader, the sweep's config) as Hydra hands them to a launcher."""
    hydra = GlobalHydra.instance().hydra
    master = hydra.compose_config(primary, list(common), run_mode=RunMode.MULTIRUN, with_log_configuration=False)
    return hydra.config_loader, master


def _as_job(config, idx: int):
    config = copy.deepcopy(config)
    with open_dict(config):
        config.hydra.job.num = idx
        config.hydra.job.id = idx
    return config


def _resolved_without_hydra(config) -> object:
    """The job's config as main sees it, or the error resolving it raises."""
    config = copy.deepcopy(config)
    with open_dict(config):
        del config["hydra"]
    try:
        return OmegaConf.to_container(config, resolve=True)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def _same(derived, composed, idx: int) -> None:
    # everything, keys in order, interpolations as written
    assert OmegaConf.to_yaml(derived) == OmegaConf.to_yaml(composed)
    assert OmegaConf.is_struct(derived) == OmegaConf.is_struct(composed)
    assert OmegaConf.is_readonly(derived.hydra) == OmegaConf.is_readonly(composed.hydra)
    # resolved as the job sees them: its config (main's row) and Hydra's per-job fields
    derived, composed = _as_job(derived, idx), _as_job(composed, idx)
    assert _resolved_without_hydra(derived) == _resolved_without_hydra(composed)
    for path in (
        "hydra.sweep.subdir",
        "hydra.job.override_dirname",
        "hydra.overrides.task",
        "hydra.runtime.choices",
        "hydra.job.env_set",
    ):
        assert OmegaConf.select(derived, path) == OmegaConf.select(composed, path)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows, common=st.sampled_from(COMMON_OVERRIDES))
def test_derived_job_config_is_hydras_composition(primary: str, rows: list[dict], common: list[str]) -> None:
    with initialize(version_base="1.3", config_path=None):
        loader, master = _sweep(primary, common)
        row_overrides = register_rows(rows)
        configs = JobConfigs(loader, master)
        for idx, row_override in enumerate(row_overrides):
            # as Hydra's multirun hands them to the sweeper: the command line's non-hydra overrides
            job = list(master.hydra.overrides.task) + [row_override]
            _same(configs.for_job(job), loader.load_sweep_config(master, job), idx)
        # the configs compared were derived, not composed by Hydra
        (base,) = configs._bases.values()
        assert base.usable


def test_each_job_gets_a_config_of_its_own(primary: str) -> None:
    """main may change its config: no other job sees the change."""
    with initialize(version_base="1.3", config_path=None):
        loader, master = _sweep(primary, [])
        overrides = register_rows([{"a": {"b": 1}}, {"a": {"b": 2}}, {"a": {"b": 3}}])
        configs = JobConfigs(loader, master)
        first, second = configs.for_job([overrides[1]]), configs.for_job([overrides[1]])
        with open_dict(first):
            first.a.b = 99
            first.hydra.job.num = 5
        assert second.a.b == 2
        assert second.hydra.job.get("num") != 5


def test_options_with_defaults_lists_are_composed_by_hydra(primary: str) -> None:
    """An option that is more than a row (a defaults list of its own) is left to Hydra."""
    ConfigStore.instance().store(group="sem_test_part", name="a", node={"width": 3})
    ConfigStore.instance().store(
        group="sem_test_preset",
        name="p",
        package="_global_",
        node={"defaults": [{"/sem_test_part": "a"}, "_self_"], "preset": 1},
    )
    with initialize(version_base="1.3", config_path=None):
        loader, master = _sweep(primary, [])
        configs = JobConfigs(loader, master)
        for _ in range(2):
            config = configs.for_job(["+sem_test_preset=p"])
            assert config.preset == 1 and config.sem_test_part.width == 3
        assert not configs._bases  # nothing derived


HYDRA_INSIDE_MAIN = """
import json, os
from pathlib import Path
import yaml
from omegaconf import OmegaConf
from hydra.core.hydra_config import HydraConfig
from sem_core import Experiment
ex = Experiment(__file__)

@ex.configs
def configs():
    return [{"x": 1, "nested": {"a": [1, 2]}}, {"x": 2, "name": "b"}, {"x": 3}]

@ex.automain
def main(config):
    hc = HydraConfig.get()
    seen = {"num": hc.job.num, "id": hc.job.id, "dirname": hc.job.override_dirname,
            "row": hc.runtime.choices.sem_row, "output_dir": hc.runtime.output_dir, "cwd": os.getcwd(),
            "saved": sorted(p.name for p in (Path(hc.runtime.output_dir) / ".hydra").iterdir()),
            "overrides": (Path(hc.runtime.output_dir) / ".hydra" / "overrides.yaml").read_text(),
            "hydra_yaml_is_its_own": yaml.safe_load((Path(hc.runtime.output_dir) / ".hydra" / "hydra.yaml").read_text())
            == {"hydra": OmegaConf.to_container(hc, enum_to_str=True)},
            "config": config}
    out = Path(hc.runtime.cwd) / "seen"
    out.mkdir(exist_ok=True)
    (out / f"{config['x']}.json").write_text(json.dumps(seen))
"""


@pytest.mark.parametrize("launcher", [[], ["hydra/launcher=local", "hydra.launcher.n_jobs=2"]])
def test_each_job_sees_its_own_hydra_config(write_model, tmp_path, launcher: list[str]) -> None:
    """Inside main, through derived configs: HydraConfig, hydra.job.num/id/override_dirname, the
    sweep subdir's interpolations, hydra.job.chdir and the .hydra files, per job."""
    model = write_model(HYDRA_INSIDE_MAIN, "m_hc.py")
    proc = run_model(
        model,
        "hydra.sweep.subdir=job${hydra.job.num}_${x}",
        "hydra.job.chdir=true",
        "sem.heartbeat_interval=9",
        *launcher,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = {int(p.stem): json.loads(p.read_text()) for p in (model.parent / "seen").iterdir()}
    assert sorted(seen) == [1, 2, 3]
    for x, job in seen.items():
        num = x - 1
        assert job["num"] == num and job["id"] == str(num)
        assert job["row"] == f"j{num}"
        assert job["dirname"] == f"+sem_row=j{num},sem.heartbeat_interval=9"
        assert Path(job["output_dir"]).name == f"job{num}_{x}"
        assert job["cwd"] == job["output_dir"]  # hydra.job.chdir
        assert job["saved"] == ["config.yaml", "hydra.yaml", "overrides.yaml"]
        assert job["hydra_yaml_is_its_own"]  # .hydra/hydra.yaml: this job's whole Hydra config
        assert f"+sem_row=j{num}" in job["overrides"] and "sem.heartbeat_interval=9" in job["overrides"]
        assert job["config"]["x"] == x
    assert seen[1]["config"]["nested"] == {"a": [1, 2]} and seen[2]["config"]["name"] == "b"
    assert "name" not in seen[3]["config"] and "nested" not in seen[3]["config"]


def _seen_by_task(config) -> dict:
    """What a task sees of its job: its config, HydraConfig, the working folder, env_set."""
    from hydra.core.hydra_config import HydraConfig

    hydra = HydraConfig.get()
    if config.get("fail"):
        raise RuntimeError("the task failed")
    return {
        "config": OmegaConf.to_container(config, resolve=True),
        "struct": OmegaConf.is_struct(config),
        "hydra_yaml": OmegaConf.to_yaml(hydra),
        "resolved": {
            path: str(OmegaConf.select(hydra, path))
            for path in ("sweep.subdir", "runtime.output_dir", "job.num", "job.id", "job.override_dirname")
        },
        "cwd": os.getcwd(),
        "env": os.environ.get("SEM_TEST_VAR"),
    }


@pytest.mark.parametrize("common", COMMON_OVERRIDES)
@pytest.mark.parametrize("fail", [False, True])
def test_recorded_job_runs_as_hydras_run_job(primary: str, tmp_path, common: list[str], fail: bool) -> None:
    """run_recorded_job, sem's run_job without its copies, against Hydra's own on the same job:
    what the task sees, the JobReturn, the .hydra files (as data) and Hydra's state after."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import run_job
    from hydra.types import HydraContext

    from sem_core.launch.job import run_recorded_job

    rows = [{"x": 1, "nested": {"a": [1, "${x}"]}, "fail": fail}]
    with initialize(version_base="1.3", config_path=None):
        loader, master = _sweep(primary, [*common, f"hydra.sweep.dir={tmp_path}"])
        job = [*master.hydra.overrides.task, *register_rows(rows)]
        context = HydraContext(config_loader=loader, callbacks=Callbacks(master))
        outcomes = []
        for run in (
            lambda config: run_job(
                hydra_context=context,
                task_function=_seen_by_task,
                config=config,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            ),
            lambda config: run_recorded_job(context, _seen_by_task, config),
        ):
            cwd, before = os.getcwd(), HydraConfig.instance().cfg
            ret = run(_as_job(loader.load_sweep_config(master, job), 3))
            assert os.getcwd() == cwd and HydraConfig.instance().cfg is before
            saved = Path(ret.hydra_cfg.hydra.runtime.output_dir) / ".hydra"
            outcomes.append(
                {
                    "status": ret.status,
                    "value": repr(ret._return_value),
                    "overrides": ret.overrides,
                    "working_dir": ret.working_dir,
                    "task_name": ret.task_name,
                    "cfg": OmegaConf.to_yaml(ret.cfg),
                    "hydra_cfg": OmegaConf.to_yaml(ret.hydra_cfg),
                    "files": sorted(p.name for p in saved.iterdir()) if saved.is_dir() else None,
                    "data": {p.name: yaml.safe_load(p.read_text()) for p in saved.glob("*.yaml")},
                }
            )
            shutil.rmtree(tmp_path)
        hydras, ours = outcomes
        assert ours == hydras
        assert ours["status"] == (JobStatus.FAILED if fail else JobStatus.COMPLETED)


class _Color(Enum):
    red = 1
    blue = 2


@dataclass
class _Typed:
    color: _Color = _Color.red
    width: int = 3
    name: str | None = None
    tags: list = field(default_factory=lambda: ["a", "${width}"])


def _nodes(node, path="") -> list:
    """Every node of a tree: (path, the node) in order."""
    out = [(path, node)]
    content = node.__dict__.get("_content")
    if isinstance(content, dict):
        for key, child in content.items():
            out += _nodes(child, f"{path}.{key}")
    elif isinstance(content, list):
        for index, child in enumerate(content):
            out += _nodes(child, f"{path}[{index}]")
    return out


def _shape(config) -> list:
    """What a copy must reproduce of each node: type, metadata, flags, value, parent's place."""
    paths = {id(node): path for path, node in _nodes(config)}
    rows = []
    for path, node in _nodes(config):
        metadata = {k: v for k, v in node._metadata.__dict__.items() if k != "resolver_cache"}
        parent = node.__dict__["_parent"]
        value = node.__dict__.get(
            "_val", node.__dict__.get("_content") if isinstance(node.__dict__.get("_content"), str) else None
        )
        rows.append(
            (
                path,
                type(node).__name__,
                repr(metadata),
                repr(value),
                paths.get(id(parent), "outside"),
                node._get_flag("readonly"),
                node._get_flag("struct"),
            )
        )
    return rows


@settings(max_examples=60, deadline=None)
@given(
    data=st.dictionaries(keys, values, max_size=5), readonly=st.booleans(), struct=st.booleans(), typed=st.booleans()
)
def test_copy_config_is_omegaconfs_deepcopy(data: dict, readonly: bool, struct: bool, typed: bool) -> None:
    """copy_config (how each job's config is copied from the sweep's) gives what copy.deepcopy
    gives, node for node, and shares no node, metadata or flags with the original."""
    from sem_core.launch.job_config import copy_config

    try:
        config = OmegaConf.create(data)
    except Exception:  # noqa: BLE001 - text OmegaConf refuses (an unfinished "${"): no config to copy
        assume(False)
    with open_dict(config):
        config.missing = "???"
        config.none_dict = OmegaConf.create({"k": 1})
        config.none_dict = None
        if typed:
            config.typed = OmegaConf.structured(_Typed)
    if data:
        first = next(iter(data))
        if OmegaConf.is_config(config._get_node(first)):  # not config[first]: it would resolve "${0}"
            OmegaConf.set_readonly(config._get_node(first), readonly)
    OmegaConf.set_struct(config, struct)
    copied, reference = copy_config(config), copy.deepcopy(config)
    assert _shape(copied) == _shape(reference)
    assert OmegaConf.to_yaml(copied) == OmegaConf.to_yaml(config)
    assert _resolved_without_hydra_or_error(copied) == _resolved_without_hydra_or_error(reference)
    originals = {id(part) for _, node in _nodes(config) for part in (node, node._metadata, node._metadata.flags)}
    assert not originals & {
        id(part) for _, node in _nodes(copied) for part in (node, node._metadata, node._metadata.flags)
    }
    with open_dict(copied):  # changing the copy leaves the original as it was
        copied.added = 1
    assert "added" not in config


def _resolved_without_hydra_or_error(config) -> object:
    try:
        return OmegaConf.to_container(config, resolve=True, throw_on_missing=False)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
