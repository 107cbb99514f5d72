"""Hydra's published launcher test suite against ``hydra/launcher=slurm`` on the test cluster
(plain Hydra apps, no sem experiment: the task function travels pickled)."""

import os

from hydra.test_utils.launcher_common_tests import LauncherTestSuite
from pytest import fixture, mark

from tests.test_slurm_cluster import _cluster_problem

pytestmark = mark.slurm


@fixture(autouse=True)
def _cluster(tmp_path, monkeypatch):
    import pytest

    problem = _cluster_problem()
    if problem:
        if os.environ.get("SEM_REQUIRE_SLURM") == "1":
            pytest.fail(problem)
        pytest.skip(problem)


@mark.parametrize(
    "launcher_name, overrides",
    [("slurm", ["hydra/sweeper=sem", "hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=30",
                "hydra.launcher.poll_interval_s=0.5"])],
)
class TestSemSlurmLauncher(LauncherTestSuite):
    pass
