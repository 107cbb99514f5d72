"""Hydra's published plugin test suites against sem's sweeper and launchers.

Without a sem experiment the sweeper must behave exactly like Hydra's BasicSweeper: these
suites are what pins that down (Hydra's own plugins are tested the same way).
"""

from hydra.test_utils.launcher_common_tests import (
    BatchedSweeperTestSuite,
    IntegrationTestSuite,
    LauncherTestSuite,
)
from pytest import mark


@mark.parametrize(
    "launcher_name, overrides",
    [
        ("sequential", ["hydra/sweeper=sem"]),
        ("local", ["hydra/sweeper=sem", "hydra.launcher.n_jobs=2"]),
    ],
)
class TestSemLauncher(LauncherTestSuite):
    pass


@mark.parametrize(
    "launcher_name, overrides",
    [
        ("sequential", ["hydra/sweeper=sem", "hydra.sweeper.max_batch_size=2"]),
        ("local", ["hydra/sweeper=sem", "hydra.sweeper.max_batch_size=2", "hydra.launcher.n_jobs=2"]),
    ],
)
class TestSemBatchedSweeper(BatchedSweeperTestSuite):
    pass


@mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [
        (
            {"defaults": [{"override hydra/sweeper": "sem"}, {"override hydra/launcher": "local"}]},
            ["-m", "hydra.launcher.n_jobs=2"],
        ),
        (
            {"defaults": [{"override hydra/sweeper": "sem"}, {"override hydra/launcher": "sequential"}]},
            ["-m"],
        ),
    ],
)
class TestSemIntegration(IntegrationTestSuite):
    pass
