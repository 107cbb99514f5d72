"""Hydra's published launcher test suite against ``hydra/launcher=slurm`` on the test cluster
(plain Hydra apps, no sem experiment: the task function travels pickled)."""

from hydra.test_utils.launcher_common_tests import LauncherTestSuite
from pytest import fixture, mark

from tests.services import missing_service
from tests.test_slurm_cluster import _cluster_problem

pytestmark = mark.slurm


@fixture(autouse=True)
def _cluster(tmp_path, monkeypatch):
    problem = _cluster_problem()
    if problem:
        missing_service(problem)


@mark.parametrize(
    "launcher_name, overrides",
    [
        (
            "slurm",
            [
                "hydra/sweeper=sem",
                "hydra.launcher.timeout_min=2",
                "hydra.launcher.signal_delay_s=30",
                "hydra.launcher.poll_interval_s=0.5",
            ],
        )
    ],
)
class TestSemSlurmLauncher(LauncherTestSuite):
    pass
