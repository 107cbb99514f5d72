"""sem's local launcher: jobs in this process one after another (n_jobs=1, the default of a
model file), or N at a time, each in a process of its own (``hydra/launcher=local
hydra.launcher.n_jobs=N``; see ``_local_core`` for crashes and signals)."""

from typing import Optional, Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class LocalLauncher(Launcher):
    def __init__(self, n_jobs: Optional[int] = None, fail_fast: bool = False) -> None:
        self.n_jobs = n_jobs
        self.fail_fast = fail_fast
        self.config: Optional[DictConfig] = None
        self.task_function: Optional[TaskFunction] = None
        self.hydra_context: Optional[HydraContext] = None
        # set when fail_fast stopped the sweep: the sweeper launches no further batch
        self.stopped_early = False

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra_plugins.sem_plugins import _local_core

        return _local_core.launch(self, job_overrides, initial_job_idx)
