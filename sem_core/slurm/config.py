"""The Slurm launcher's options (``hydra/launcher=slurm``), one field each. The library reads
them (cluster sections of experiment_config.yaml map onto these fields); the plugin package
registers the dataclass in Hydra's ConfigStore."""

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SlurmLauncherConf:
    """``hydra/launcher=slurm``: one job array per sweep through submitit (see README, Running on Slurm)."""

    _target_: str = "hydra_plugins.sem_plugins.slurm_launcher.SlurmLauncher"
    # submitit's job files and the Slurm logs (%A_%a_0_log.out/err)
    submitit_folder: str = "${hydra.sweep.dir}/.slurm"
    # true: show progress until every job ends; false: submit, record QUEUED runs, exit 0
    wait: bool = True
    # seconds between progress checks while waiting
    poll_interval_s: float = 1.0
    partition: str | None = None
    # time limit per array task, in minutes
    timeout_min: int = 60
    cpus_per_task: int | None = None
    gpus_per_task: int | None = None
    gpus_per_node: int | None = None
    # memory per task (GB); None = the cluster's default
    mem_gb: float | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gres: str | None = None
    job_name: str = "${hydra.job.name}"
    # any other sbatch option, e.g. {mail-type: END, exclusive: true}
    additional_parameters: dict[str, Any] = field(default_factory=dict)
    # shell lines run before the job (module load ..., export ...)
    setup: list[str] = field(default_factory=list)
    # array tasks running at once per array (%K)
    array_parallelism: int = 256
    # configs run one after another inside one array task (for many short configs)
    configs_per_task: int = 1
    # requeues after a timeout or preemption (same global_id), then the run ends TIMEOUT
    max_requeue: int = 3
    # seconds before the time limit at which the job is told to checkpoint and requeue
    signal_delay_s: int = 90
    # container image (.sif path or URI); None = run the cluster's python directly
    container: str | None = None
    # singularity | apptainer | auto (the first found on PATH)
    container_binary: str = "auto"
    # extra flags after `exec`, e.g. [--cleanenv]
    container_flags: list[str] = field(default_factory=list)
    # SRC[:DST[:OPTS]] bind mounts
    container_binds: list[str] = field(default_factory=list)
    # python inside the container (or on the node); None = this interpreter's path (no container)
    python: str | None = None
