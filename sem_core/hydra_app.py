"""The hand-over of a model file to Hydra: its primary config in the ConfigStore, then
``hydra.main`` with sem's sweeper and callback (``python m_model.py [overrides]``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sem_core import settings
from sem_core.errors import ConfigError, install_hooks
from sem_core.help_text import HYDRA_HELP_FOOTER, hydra_help_header, model_file_help
from sem_core.pipes import guard_stdout
from sem_core.signals import interrupt_exit_code, stop_signals_interrupt

if TYPE_CHECKING:  # the experiment hands itself over: a type only, never imported at run time
    from sem_core.experiment import Experiment

PRIMARY_CONFIG_PREFIX = "sem_primary_"
# sem's hydra/output option: Hydra's default, but for the sweep folder. ${sem_uid:sweep} is a
# random token resolved once per sweep: two sweeps started in the same second get different
# folders (Hydra's default collides, hydra #2925). Its argument is there for OmegaConf's quick
# check of interpolations, which misses an empty one and parses the text with its grammar
# instead, at every composition.
OUTPUT_NODE = {
    "run": {"dir": "outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}"},
    "sweep": {"dir": "multirun/${now:%Y-%m-%d}/${now:%H-%M-%S}-${sem_uid:sweep}", "subdir": "${hydra.job.num}"},
}


def run_hydra_app(experiment: Experiment, argv: Sequence[str]) -> int:
    """Run the model file's sweep under Hydra with ``argv`` (flags and overrides); return the
    exit code."""
    import hydra

    from sem_core.argv import split_argv
    from sem_core.task import SemTask

    install_hooks()
    # Launchers that start a fresh interpreter (submitit_local, submitit_slurm) unpickle the
    # task before any sem code runs there: the model's sibling modules (`from data import
    # ...`) must already be importable, so the models folder goes on their PYTHONPATH.
    _prepend_pythonpath(experiment.models_dir)
    experiment_config = settings.load_experiment_config(experiment.experiment_dir)
    hydra_argv, row_overrides = split_argv(argv)
    # the database is resolved (and a bad setting refused) before any job; the password never
    # enters the config Hydra composes, saves and logs
    from sem_core.mongo.connection import resolve_for_sweep

    hydra_argv, database = resolve_for_sweep(hydra_argv, experiment_config, experiment.experiment_dir)
    task = SemTask(experiment, row_overrides)
    task.database, task.database_resolved = database, True
    config_name = register_primary_config(experiment, experiment_config)
    # `python m.py | head`: a closed stdout must not fail the sweep (sem_core/pipes.py)
    guard_stdout()
    saved_argv = sys.argv
    sys.argv = [str(experiment.path)] + hydra_argv
    try:
        # kill/timeout/docker stop end the sweep as Ctrl-C does: runs INTERRUPTED, a summary
        with stop_signals_interrupt():
            config_dir = str(experiment.config_dir) if experiment.config_dir else None
            hydra.main(version_base="1.3", config_path=config_dir, config_name=config_name)(task)()
    except KeyboardInterrupt as exc:
        experiment.lifecycle.abandon(exc)
        print(f"{experiment.path.name}: interrupted ({str(exc) or 'SIGINT'})", file=sys.stderr, flush=True)
        return interrupt_exit_code(exc)
    finally:
        sys.argv = saved_argv
    return 1 if task.failed else 0


def register_primary_config(experiment: Experiment, experiment_config: dict) -> str:
    """Store the primary config of this model file in Hydra's ConfigStore; return its name."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    # Hydra's plugin discovery imports every hydra_plugins module: sem's registers its sweeper and
    # launchers in the ConfigStore (the library never names the plugin package above it)
    Plugins.instance()
    from sem_core import resolvers

    resolvers.register()
    sem_node = _sem_node(experiment, experiment_config)
    # cluster sections (`mycluster: {type: slurm, ...}`) become hydra/launcher=mycluster
    from sem_core.slurm.sections import register_cluster_launchers

    register_cluster_launchers(experiment_config, experiment.experiment_dir)
    name = PRIMARY_CONFIG_PREFIX + experiment.name
    node = {
        "defaults": [
            # rows' base: the schema's typed fields, or the user's config tree (sem_core.compose)
            *primary_defaults(experiment, name),
            "_self_",
            {"override hydra/sweeper": "sem"},
            {"override hydra/launcher": "sequential"},
            # the sweep folder and the model file's --help are options of Hydra's groups, not keys
            # set over Hydra's defaults: merging onto a default's interpolations resolves them, in
            # every composition of every run (~3% of a one-row run)
            {"override hydra/output": "sem"},
            {"override hydra/help": name},
        ],
        "hydra": {
            "mode": "MULTIRUN",
            "callbacks": {"sem": {"_target_": "sem_core.callback.SemCallback"}},
        },
        "sem": sem_node,
    }
    store = ConfigStore.instance()
    store.store(group="hydra/output", name="sem", node=OUTPUT_NODE, package="hydra", provider="sem")
    store.store(group="hydra/help", name=name, node=_help_node(experiment.path.name), provider="sem")
    store.store(name=name, node=node)
    return name


def _help_node(app_name: str) -> dict:
    """The hydra/help option of a model file: Hydra's default help (header and footer spelled out:
    extending the default would merge onto its template again) with sem's template."""
    return {
        "app_name": app_name,
        "header": hydra_help_header(app_name),
        "footer": HYDRA_HELP_FOOTER,
        "template": model_file_help(app_name),
    }


def _sem_node(experiment: Experiment, experiment_config: dict) -> Any:
    """The ``sem`` node of the primary config: ``SemConf``'s defaults under the ``sem:`` section
    of experiment_config.yaml, its secrets redacted and its storage made absolute."""
    from omegaconf import OmegaConf

    sem_section = dict(experiment_config.get("sem") or {})
    mongo = sem_section.get("mongo")
    if isinstance(mongo, dict) and isinstance(mongo.get("url"), str):
        from sem_core.mongo.connection import redact_uri

        # jobs take the real URL from the settings layer; the config tree keeps it redacted
        sem_section["mongo"] = {**mongo, "url": redact_uri(mongo["url"])}
    if "observers" in sem_section:
        from sem_core.observers.attached import check_entries, redact_settings

        # jobs take the secrets (webhook URLs, tokens) from the file; the config tree keeps them redacted
        where = experiment.experiment_dir / settings.EXPERIMENT_CONFIG_NAME
        sem_section["observers"] = [redact_settings(e) for e in check_entries(sem_section["observers"], str(where))]
    storage = sem_section.get("storage")
    if storage and not Path(storage).expanduser().is_absolute():
        # relative to the experiment folder when set in experiment_config.yaml
        sem_section["storage"] = str((experiment.experiment_dir / storage).resolve())
    try:
        sem_node = OmegaConf.merge(OmegaConf.structured(settings.SemConf), sem_section)
    except Exception as exc:
        where = experiment.experiment_dir / settings.EXPERIMENT_CONFIG_NAME
        raise ConfigError(f"{where}: section 'sem': {exc}") from None
    return sem_node


def primary_defaults(experiment: Experiment, primary_name: str) -> list[str]:
    """The defaults entries the rows build on: the schema (stored as ``<primary>_schema``), or
    the config tree's primary config; none for plain rows."""
    from hydra.core.config_store import ConfigStore

    from sem_core.compose import schema_node

    if experiment.schema is not None:
        ConfigStore.instance().store(name=primary_name + "_schema", node=schema_node(experiment.schema))
        return [primary_name + "_schema"]
    tree = experiment.config_tree()  # read here: a missing folder or config is one line
    if tree is not None:
        return [tree.config_name]
    return []


def _prepend_pythonpath(folder: Path) -> None:
    entries = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(folder) not in entries:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(folder), *entries])
