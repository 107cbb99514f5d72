"""Running one job: the one function every sem launcher calls for each job it runs (the
local launcher in the sweep process and in its workers, a Slurm array task for each job of
its pack). Hydra's ``run_job`` does the running (HydraConfig, output folder, ``.hydra/``
files, logging, callbacks, ``hydra.job.chdir``), as in Hydra's own launchers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.utils import JobReturn, run_job
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from sem_core.launch.job_config import JobConfigs


@dataclass
class JobRunner:
    """What the jobs of one launch share: Hydra's context, the sweep's config, the task.

    ``keep_configs``: a JobReturn keeps the job's config and Hydra config (Hydra's launchers
    do; its test suites read them). A sem sweep reads neither, and a sweep of many rows would
    hold every job's config until its end."""

    hydra_context: HydraContext
    config: DictConfig
    task_function: TaskFunction
    keep_configs: bool = True
    # derive job configs from one composition (one-job launches gain nothing: Hydra composes)
    derive: bool = True
    configs: JobConfigs | None = field(default=None, repr=False)

    def prepare(self, job_overrides: Sequence[Sequence[str]]) -> None:
        """Compose what the jobs share now (before forking workers, so that each inherits it)."""
        for overrides in job_overrides[:2]:  # the first job, then the template checked against it
            self._configs().for_job(overrides)

    def run(self, overrides: Sequence[str], idx: int, job_id: Any | None = None) -> JobReturn:
        """Run job number ``idx`` (``hydra.job.num``; ``hydra.job.id`` is ``job_id``, else ``idx``)."""
        config = self._configs().for_job(overrides)
        with open_dict(config):
            config.hydra.job.id = idx if job_id is None else job_id
            config.hydra.job.num = idx
        ret = run_job(
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            config=config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        if not self.keep_configs:
            ret.cfg = None
            ret.hydra_cfg = None
        return ret

    def _configs(self) -> JobConfigs:
        if self.configs is None:
            self.configs = JobConfigs(self.hydra_context.config_loader, self.config, derive=self.derive)
        return self.configs

    def __getstate__(self) -> dict:
        # a spawned worker builds its own compositions
        return {**self.__dict__, "configs": None}


def is_sem_task(task_function: Any) -> bool:
    """Whether the task runs a sem experiment's rows (else: any Hydra app, run as Hydra would)."""
    return getattr(task_function, "experiment", None) is not None
