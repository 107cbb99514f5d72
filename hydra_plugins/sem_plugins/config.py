"""Configs of sem's Hydra plugins, one dataclass per option (Hydra's own plugin pattern)."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore

from sem_core import resolvers
from sem_core.slurm.config import SlurmLauncherConf

# Jobs' configs are composed in worker processes too: ${sem_uid:sweep} must resolve there.
resolvers.register()


@dataclass
class SemSweeperConf:
    _target_: str = "hydra_plugins.sem_plugins.sweeper.SemSweeper"
    # jobs handed to the launcher at a time; None = the whole sweep in one batch
    max_batch_size: int | None = None


@dataclass
class LocalLauncherConf:
    _target_: str = "hydra_plugins.sem_plugins.launcher.LocalLauncher"
    # jobs running at once, in worker processes that each run jobs one after another (a job
    # that crashes its process fails alone); 1 = run the jobs one after another inside this
    # process (debuggable: breakpoints work); None = one per CPU
    n_jobs: int | None = None
    # stop starting new jobs after the first failure (running ones finish)
    fail_fast: bool = False
    # K: each running job gets its own K GPUs through CUDA_VISIBLE_DEVICES (n_jobs is capped
    # at the devices / K); None = every job sees what the sweep process sees
    gpus_per_job: int | None = None
    # the devices to share out; None = CUDA_VISIBLE_DEVICES, else those nvidia-smi -L lists
    gpus: list[str] | None = None
    # jobs a worker runs before it is replaced by a fresh process; 1 = a process per job
    max_jobs_per_worker: int | None = None


@dataclass
class SequentialLauncherConf(LocalLauncherConf):
    # the default launcher of a model file: one job after another in this process
    n_jobs: int | None = 1


ConfigStore.instance().store(group="hydra/sweeper", name="sem", node=SemSweeperConf, provider="sem")
ConfigStore.instance().store(group="hydra/launcher", name="local", node=LocalLauncherConf, provider="sem")
ConfigStore.instance().store(group="hydra/launcher", name="sequential", node=SequentialLauncherConf, provider="sem")
ConfigStore.instance().store(group="hydra/launcher", name="slurm", node=SlurmLauncherConf, provider="sem")
