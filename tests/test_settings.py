"""experiment_config.yaml handling and the shipped template."""

from dataclasses import fields
from pathlib import Path

import pytest

from sem_core import settings
from sem_core.errors import ConfigError, SemWarning
from sem_core.util import read_yaml

REPO = Path(__file__).resolve().parent.parent


def test_template_documents_exactly_the_sem_settings():
    template = settings.read_yaml(REPO / "sem_core" / "conf" / "experiment_config.yaml")
    assert set(template["sem"]) == {f.name for f in fields(settings.SemConf)}
    assert "experiment" not in template  # experiment_manager's section: documented, commented out (it prints a note)


def test_template_loads_without_warnings(tmp_path, recwarn):
    (tmp_path / "experiment_config.yaml").write_text(
        (REPO / "sem_core" / "conf" / "experiment_config.yaml").read_text()
    )
    data = settings.load_experiment_config(tmp_path)
    assert not [w for w in recwarn if issubclass(w.category, SemWarning)]
    assert settings.cluster_sections(data) == {"local": {"type": "local"}}


def test_bad_cluster_type_is_an_error(tmp_path):
    (tmp_path / "experiment_config.yaml").write_text("gpu:\n  type: kubernetes\n  partition: gpu\n")
    with pytest.raises(ConfigError, match="cluster section 'gpu' has type 'kubernetes'"):
        settings.load_experiment_config(tmp_path)


def test_keys_of_a_local_cluster_section_warn_that_they_are_not_used(tmp_path):
    (tmp_path / "experiment_config.yaml").write_text("local:\n  type: local\n  n_jobs: 3\n")
    with pytest.warns(SemWarning, match=r"section 'local' \(type: local\): key\(s\) \['n_jobs'\] are not used"):
        settings.load_experiment_config(tmp_path)


def test_read_yaml_is_relative_to_the_calling_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the folder of this file
    here = Path(__file__).resolve().parent
    assert read_yaml("../sem_core/conf/experiment_config.yaml")["local"] == {"type": "local"}
    assert Path.cwd() != here


def test_experiment_dir_is_the_parent_of_models(tmp_path):
    assert settings.experiment_dir_of(tmp_path / "exp" / "models" / "m_a.py") == (tmp_path / "exp").resolve()
    assert settings.experiment_dir_of(tmp_path / "flat" / "m_a.py") == (tmp_path / "flat").resolve()


# -- experiment_manager's experiment_config.yaml: the user's own keys, typeless cluster sections ----------
PREDECESSOR_CONFIG = """\
experiment:
  use_config_id: True
  overwrite_id: True
NUM_FOLDS: 5
epochs: 100
training: {time: 30, lr: 0.01}
model: {type: gp, kernel: rbf}
local:
  type: 'local'
mycluster:
  sif: '../../projects/dsp/dsp_latest.sif'
gpu:
  partition: gpu
  timeout_min: 90
"""


@pytest.fixture
def fresh_notes(monkeypatch, tmp_path):
    """Notes start unsaid: in this process, in the environment it passes on, and in the user's cache."""
    monkeypatch.setattr(settings, "_said", set())
    monkeypatch.setenv(settings.SAID_ENV, "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _sem_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, SemWarning)]


def test_the_users_own_keys_are_theirs_and_typeless_cluster_sections_are_slurm_presets(tmp_path, recwarn, fresh_notes):
    (tmp_path / "experiment_config.yaml").write_text(PREDECESSOR_CONFIG)
    data = settings.load_experiment_config(tmp_path)
    # the model file reads its own settings back as written
    assert data["NUM_FOLDS"] == 5 and data["training"] == {"time": 30, "lr": 0.01}
    # no section of the user's is warned about; experiment_manager's two settings get one note
    (note,) = _sem_warnings(recwarn)
    assert "use_config_id and overwrite_id" in note and "no run overwrites another" in note
    # sif: or partition: makes a Slurm preset without type:; `training: {time: ...}` and
    # `model: {type: gp}` stay the user's
    assert settings.cluster_sections(data) == {
        "local": {"type": "local"},
        "mycluster": {"sif": "../../projects/dsp/dsp_latest.sif"},
        "gpu": {"partition": "gpu", "timeout_min": 90},
    }
    assert {settings.cluster_type(data[k]) for k in ("mycluster", "gpu")} == {"slurm"}


def test_a_typeless_cluster_section_is_selectable_as_a_launcher(tmp_path):
    from hydra.core.config_store import ConfigStore

    from sem_core.slurm import sections

    (tmp_path / "experiment_config.yaml").write_text(PREDECESSOR_CONFIG.replace("experiment:", "unused:"))
    names = sections.register_cluster_launchers(settings.load_experiment_config(tmp_path), tmp_path)
    assert names == ["mycluster", "gpu"]
    node = ConfigStore.instance().load("hydra/launcher/mycluster.yaml").node
    assert node.container == str((tmp_path / "../../projects/dsp/dsp_latest.sif").resolve())
    assert ConfigStore.instance().load("hydra/launcher/gpu.yaml").node.partition == "gpu"


def test_the_predecessor_settings_note_is_shown_once_for_good(tmp_path, recwarn, fresh_notes):
    import os
    import subprocess
    import sys

    (tmp_path / "experiment_config.yaml").write_text("experiment:\n  overwrite_id: True\n")
    for _ in range(3):  # every command and every model file of a sweep reads the file
        settings.load_experiment_config(tmp_path)
    assert len(_sem_warnings(recwarn)) == 1
    # nor again in a process the command starts (sem run starts one per model file), nor in the
    # next command
    load = f"from sem_core import settings; settings.load_experiment_config({str(tmp_path)!r})"
    for env in (dict(os.environ), {**os.environ, settings.SAID_ENV: ""}):
        child = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, env=env)
        assert child.returncode == 0 and "sem: warning" not in child.stderr, child.stderr


@pytest.mark.parametrize(
    "text, expected",
    [
        ("SEM:\n  storage: x\n", "section 'SEM' is not read by sem (did you mean 'sem'?)"),
        (
            "experiments:\n  overwrite_id: true\n",
            "section 'experiments' is not read by sem (did you mean 'experiment'?)",
        ),
        ("experiment:\n  overwrite_ids: true\n", "(did you mean 'overwrite_id'?)"),
        (
            "hpc:\n  type: slurmm\n  time: 30\n",
            "section 'hpc' has type 'slurmm', not a cluster type (did you mean 'slurm'?)",
        ),
    ],
)
def test_misspelt_sem_names_warn_with_did_you_mean(tmp_path, fresh_notes, text, expected):
    (tmp_path / "experiment_config.yaml").write_text(text)
    with pytest.warns(SemWarning) as caught:
        settings.load_experiment_config(tmp_path)
    assert any(expected in m for m in _sem_warnings(caught)), _sem_warnings(caught)


def test_an_unknown_key_in_sems_own_section_is_an_error_naming_the_key_and_the_fix(tmp_path):
    (tmp_path / "experiment_config.yaml").write_text("sem:\n  heartbeat_intervall: 5\n")
    with pytest.raises(ConfigError, match=r"section 'sem' key 'heartbeat_intervall': unknown key \(did you mean "
                       r"'heartbeat_interval'\?\); known keys: .*heartbeat_interval"):  # fmt: skip
        settings.load_experiment_config(tmp_path)
