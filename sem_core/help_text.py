"""The text of ``python m_model.py --help``: what a model file's command line accepts."""

from __future__ import annotations

# Hydra's default help header and footer, as text: an interpolation in the help (Hydra's own
# spell them ${hydra.help.app_name}, ${hydra.help.footer}) is resolved again at every merge of
# every composition of every run
HYDRA_HELP_FOOTER = "Powered by Hydra (https://hydra.cc)\nUse --hydra-help to view Hydra specific help\n"


def hydra_help_header(model_file_name: str) -> str:
    return f"{model_file_name} is powered by Hydra.\n"


def model_file_help(model_file_name: str) -> str:
    """Hydra's ``hydra.help.template`` for a model file (``$CONFIG`` is Hydra's)."""
    return (
        f"{model_file_name}: a sem model file.\n\n"
        "Runs every row of @ex.configs as a Hydra multirun job and records each run\n"
        "under <models>/runs (sacred's file layout).\n\n"
        # each line fits 80 columns
        "Select rows:      +order_id=2   +order_id=0,3   +order_id='range(0,4)'\n"
        "                  0 3 (order_ids alone)   KEY=v   KEY=v1,v2 (by a key's value)\n"
        "Change rows:      ++KEY=v (override in every selected row)   ~KEY (remove)\n"
        "                  +NEW=v1,v2 (add a key, crossed with the rows)\n"
        "Launchers:        hydra/launcher=local hydra.launcher.n_jobs=N\n"
        "                  hydra.launcher.fail_fast=true\n"
        "                  hydra/launcher=slurm (or a cluster section of\n"
        "                  experiment_config.yaml)\n"
        "Resume:           sem.skip_completed=true   sem.rerun=failed|missing\n"
        "sem settings:     sem.storage=PATH   sem.heartbeat_interval=SECONDS\n"
        "                  sem.mongo.url=URI\n"
        "Without running:  sem plan <this file> [overrides]   (the jobs and their ids)\n\n"
        "== Config ==\n$CONFIG\n\n" + HYDRA_HELP_FOOTER
    )
