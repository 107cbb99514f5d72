"""experiment_config.yaml handling and the shipped template."""

from dataclasses import fields
from pathlib import Path

import pytest

from sem_core import settings
from sem_core.errors import ConfigError, SemWarning
from sem_core.util import read_yaml

REPO = Path(__file__).resolve().parent.parent


def test_template_documents_exactly_the_sem_settings():
    template = settings.read_yaml(REPO / "conf" / "experiment_config.yaml")
    assert set(template["sem"]) == {f.name for f in fields(settings.SemConf)}
    assert set(template["experiment"]) <= settings.EXPERIMENT_SECTION_KEYS["experiment"]


def test_template_loads_without_warnings(tmp_path, recwarn):
    (tmp_path / "experiment_config.yaml").write_text((REPO / "conf" / "experiment_config.yaml").read_text())
    data = settings.load_experiment_config(tmp_path)
    assert not [w for w in recwarn if issubclass(w.category, SemWarning)]
    assert settings.cluster_sections(data) == {"local": {"type": "local"}}


def test_bad_cluster_type_is_an_error(tmp_path):
    (tmp_path / "experiment_config.yaml").write_text("gpu:\n  type: kubernetes\n")
    with pytest.raises(ConfigError, match="cluster section 'gpu' has type 'kubernetes'"):
        settings.load_experiment_config(tmp_path)


def test_keys_of_a_local_cluster_section_warn_that_they_are_not_used(tmp_path):
    (tmp_path / "experiment_config.yaml").write_text("local:\n  type: local\n  n_jobs: 3\n")
    with pytest.warns(SemWarning, match=r"section 'local' \(type: local\): key\(s\) \['n_jobs'\] are not used"):
        settings.load_experiment_config(tmp_path)


def test_read_yaml_is_relative_to_the_calling_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the folder of this file
    here = Path(__file__).resolve().parent
    assert read_yaml("../conf/experiment_config.yaml")["local"] == {"type": "local"}
    assert Path.cwd() != here


def test_experiment_dir_is_the_parent_of_models(tmp_path):
    assert settings.experiment_dir_of(tmp_path / "exp" / "models" / "m_a.py") == (tmp_path / "exp").resolve()
    assert settings.experiment_dir_of(tmp_path / "flat" / "m_a.py") == (tmp_path / "flat").resolve()
