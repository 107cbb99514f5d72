"""Running one job: the one function every sem launcher calls for each job it runs (the
local launcher in the sweep process and in its workers, a Slurm array task for each job of
its pack).

Any Hydra app runs through Hydra's own ``run_job``, as in Hydra's launchers. A sem job runs
through ``run_recorded_job``: Hydra's ``run_job`` step for step (HydraConfig, output folder,
``.hydra/`` files, logging, callbacks, ``hydra.job.chdir``, ``env_set``) without the four
copies of the whole config it makes per job, which were a third of a short job's time."""

from __future__ import annotations

import copy
import gc
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from hydra import version
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import (
    JobReturn,
    JobRuntime,
    JobStatus,
    _flush_loggers,
    configure_log,
    env_override,
    run_job,
)
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, flag_override, open_dict, read_write

from sem_core.config_yaml import config_yaml, write_text, write_yaml
from sem_core.launch.job_config import JobConfigs


@dataclass
class JobRunner:
    """What the jobs of one launch share: Hydra's context, the sweep's config, the task.

    ``keep_configs``: a JobReturn keeps the job's config and Hydra config (Hydra's launchers
    do; its test suites read them), and the job runs through Hydra's ``run_job``. A sem sweep
    reads neither, and a sweep of many rows would hold every job's config until its end; its
    jobs run through ``run_recorded_job``."""

    hydra_context: HydraContext
    config: DictConfig
    task_function: TaskFunction
    keep_configs: bool = True
    # derive job configs from one composition (one-job launches gain nothing: Hydra composes)
    derive: bool = True
    configs: JobConfigs | None = field(default=None, repr=False)
    # jobs run by this process: after the second, what the jobs share is set aside (``_settle``)
    jobs_run: int = field(default=0, repr=False)

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
        if not self.keep_configs:
            ret = run_recorded_job(self.hydra_context, self.task_function, config, self._configs().hydra_yaml)
            ret.cfg = None
            ret.hydra_cfg = None
            self.jobs_run += 1
            if self.jobs_run == 2:
                _settle()
            elif self.jobs_run > 2:
                # the job's cycles, now garbage: what the collector tracks is about one job's worth
                gc.collect()
            return ret
        return run_job(
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            config=config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )

    def _configs(self) -> JobConfigs:
        if self.configs is None:
            self.configs = JobConfigs(self.hydra_context.config_loader, self.config, derive=self.derive)
        return self.configs

    def __getstate__(self) -> dict:
        # a spawned worker builds its own compositions
        return {**self.__dict__, "configs": None}


def _settle() -> None:
    """Set what the jobs of this process share (imports, the config template, the planned rows:
    built by now, the second job) aside from the garbage collector (``gc.freeze``); each later
    job's garbage is then collected as the job returns.

    A job's config is a tree of reference cycles (OmegaConf nodes point to their parents), about
    a thousand objects freed only by a full collection, which CPython runs every ~65 short jobs:
    a long sweep held about 15,000 dead objects at any time, 2-3 MB. With the shared objects
    frozen, a full collection after a job looks at little more than that job's garbage (under
    a millisecond, mostly freeing what would be freed anyway), and memory stays flat. Frozen
    objects are also never touched again by the collector, so forked workers keep sharing their
    pages with the sweep process. ``unsettle`` (or the end of the process) gives them back."""
    gc.collect()
    gc.freeze()


def unsettle(runner: JobRunner) -> None:
    """Objects set aside by ``_settle`` back under the garbage collector (a launch is over)."""
    if runner.jobs_run >= 2:
        gc.unfreeze()


def is_sem_task(task_function: Any) -> bool:
    """Whether the task runs a sem experiment's rows (else: any Hydra app, run as Hydra would)."""
    return getattr(task_function, "experiment", None) is not None


def run_recorded_job(
    hydra_context: HydraContext,
    task_function: TaskFunction,
    config: DictConfig,
    hydra_yaml: Callable[[DictConfig], str] | None = None,
) -> JobReturn:
    """Hydra's ``run_job`` (hydra.core.utils, 1.3) for a job of a multirun, in the same steps and
    order, given a ``config`` no one else holds. The differences, none visible to the task or the
    callbacks while the job runs:

    - ``HydraConfig`` holds the job's own ``hydra`` node, not a copy of it (Hydra copies it twice);
    - the task's config is a copy of everything but ``hydra`` (Hydra copies all, then deletes it);
    - the JobReturn's ``hydra_cfg`` is that same HydraConfig, not a third copy;
    - ``.hydra/*.yaml`` are written by libyaml when PyYAML has it: the same data, long strings
      folded at other places; ``hydra_yaml`` gives ``hydra.yaml``'s text from the job's config
      (``JobConfigs.hydra_yaml``: the parts the jobs share written once).
    """
    if hydra_yaml is None:
        hydra_yaml = _whole_hydra_yaml
    callbacks = hydra_context.callbacks
    old_cwd = os.getcwd()
    orig_hydra_cfg = HydraConfig.instance().cfg
    _set_hydra_config(config)
    output_dir = os.path.join(
        str(OmegaConf.select(config, "hydra.sweep.dir")), str(OmegaConf.select(config, "hydra.sweep.subdir"))
    )
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = os.path.abspath(output_dir)
    chdir = False
    try:
        ret = JobReturn()
        task_cfg = _without_hydra(config)
        ret.cfg = task_cfg
        hydra_cfg = HydraConfig.instance().cfg
        assert isinstance(hydra_cfg, DictConfig)
        ret.hydra_cfg = hydra_cfg
        overrides = OmegaConf.to_container(config.hydra.overrides.task)
        assert isinstance(overrides, list)
        ret.overrides = overrides
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        chdir = config.hydra.job.chdir
        if chdir is None:  # as Hydra decides it (sem apps use version_base 1.3: False)
            chdir = not version.base_at_least("1.2")
        if chdir:
            os.chdir(output_dir)
            ret.working_dir = output_dir
        else:
            ret.working_dir = os.getcwd()
        configure_log(config.hydra.job_logging, config.hydra.verbose)
        if config.hydra.output_subdir is not None:
            hydra_output = Path(config.hydra.runtime.output_dir) / str(config.hydra.output_subdir)
            hydra_output.mkdir(parents=True, exist_ok=True)
            write_yaml(task_cfg, hydra_output / "config.yaml")
            write_text(hydra_output / "hydra.yaml", hydra_yaml(config))
            write_yaml(config.hydra.overrides.task, hydra_output / "overrides.yaml")
        with env_override(cast(dict, config.hydra.job.env_set)):
            callbacks.on_job_start(config=config, task_function=task_function)
            try:
                ret.return_value = task_function(task_cfg)
                ret.status = JobStatus.COMPLETED
            except Exception as e:
                ret.return_value = e
                ret.status = JobStatus.FAILED
        ret.task_name = JobRuntime.instance().get("name")
        _flush_loggers()
        callbacks.on_job_end(config=config, job_return=ret)
        return ret
    finally:
        HydraConfig.instance().cfg = orig_hydra_cfg
        if chdir:
            os.chdir(old_cwd)


def _whole_hydra_yaml(config: DictConfig) -> str:
    return config_yaml(HydraConfig.instance().cfg)


def _set_hydra_config(config: DictConfig) -> None:
    """``HydraConfig.set_config`` without its copy: a config holding the job's ``hydra`` node
    itself, whose parent stays the job's config (interpolations from ``hydra`` into the job's
    keys resolve, as in Hydra)."""
    hydra = config._get_node("hydra")
    assert isinstance(hydra, DictConfig)
    OmegaConf.set_readonly(hydra, True)
    view = OmegaConf.create({})
    with flag_override(view, "no_deepcopy_set_nodes", True):
        view["hydra"] = hydra
    hydra._set_parent(config)
    HydraConfig.instance().cfg = view  # type: ignore[assignment]


def _without_hydra(config: DictConfig) -> DictConfig:
    """A copy of ``config`` without its ``hydra`` key: what Hydra's ``deepcopy`` then ``del``
    gives, without copying the largest part only to drop it."""
    content = config.__dict__["_content"]
    keys = dict(content)
    del content["hydra"]
    try:
        return copy.deepcopy(config)
    finally:
        content.clear()
        content.update(keys)
