"""sem's local launcher: jobs in this process one after another (n_jobs=1, the default of a
model file), or N at a time in worker processes (``hydra/launcher=local hydra.launcher.n_jobs=N``;
the work, with crashes, signals and GPUs, is ``sem_core.launch.local``)."""

import sys
from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class LocalLauncher(Launcher):
    def __init__(
        self,
        n_jobs: int | None = None,
        fail_fast: bool = False,
        gpus_per_job: int | None = None,
        gpus: Sequence[Any] | None = None,
        max_jobs_per_worker: int | None = None,
    ) -> None:
        self.n_jobs = n_jobs
        self.fail_fast = fail_fast
        self.gpus_per_job = gpus_per_job
        self.gpus = list(gpus) if gpus is not None else None
        self.max_jobs_per_worker = max_jobs_per_worker
        # each worker's devices (None: jobs see what this process sees), set by setup
        self.gpu_sets: list | None = None
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None
        # set when fail_fast stopped the sweep: the sweeper launches no further batch
        self.stopped_early = False

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        from sem_core.errors import SemError

        try:
            self._check_settings()
        except SemError as exc:
            # one line and exit 1 before any job, as the sweeper reports its own errors (raised,
            # Hydra would add a hint about HYDRA_FULL_ERROR with no trace worth reading)
            experiment = getattr(task_function, "experiment", None)
            print(f"{experiment.path.name + ': ' if experiment else ''}error: {exc}", file=sys.stderr)
            raise SystemExit(1) from None

    def _check_settings(self) -> None:
        from sem_core.errors import ConfigError

        if self.max_jobs_per_worker is not None and self.max_jobs_per_worker < 1:
            raise ConfigError(f"hydra.launcher.max_jobs_per_worker={self.max_jobs_per_worker}: give 1 or more, or null")
        if self.gpus_per_job is not None or self.gpus is not None:
            from sem_core.launch.gpus import gpu_sets

            self.gpu_sets = gpu_sets(self.gpus, self.gpus_per_job)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from sem_core.launch import local

        return local.launch(self, job_overrides, initial_job_idx)
