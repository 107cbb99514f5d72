"""sem's sweeper: plans one job per row of ``@ex.configs`` (see ``sem_core.sweep``).

Without a sem experiment (any other Hydra app) it behaves exactly like Hydra's BasicSweeper.
"""

import sys
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class SemSweeper(BasicSweeper):
    def __init__(self, max_batch_size: int | None = None, params: dict | None = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.task_function = task_function

    def sweep(self, arguments: list[str]) -> Any:
        experiment = getattr(self.task_function, "experiment", None)
        if experiment is None:
            return super().sweep(arguments)
        from sem_core.errors import SemError
        from sem_core.sweep import sweep_experiment

        try:
            return sweep_experiment(self, arguments)
        except SemError as exc:
            # A user-fixable error: one line and exit code 1. Raised as an Exception, Hydra
            # would add "Set HYDRA_FULL_ERROR=1 for a complete stack trace", although there
            # is no trace worth reading.
            print(f"{experiment.path.name}: error: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
