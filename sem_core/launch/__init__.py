"""The work of sem's launchers, one place for both: ``local`` (jobs in this process or in
worker processes), ``slurm`` (the submitting side) and ``slurm_task`` (what runs inside an
array task). Each runs its jobs through ``job.JobRunner`` (one function runs one job), which
derives each job's config from one composition per sweep (``job_config``). The Hydra plugin
classes in ``hydra_plugins.sem_plugins`` only hold settings and delegate here."""
