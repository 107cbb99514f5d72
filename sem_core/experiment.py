"""``Experiment``: the model-file API (``@ex.configs``, ``@ex.automain``, ``ex.log_scalar`` ...)
and the hand-over to Hydra."""

from __future__ import annotations

import copy
import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

from sem_core import ids, settings
from sem_core.errors import ConfigError, SemError
from sem_core.lifecycle import MainExited, RunLifecycle
from sem_core.plan import RowOverride, format_key, split_quoted_override
from sem_core.pipes import guard_stdout
from sem_core.signals import interrupt_exit_code, stop_signals_interrupt

PRIMARY_CONFIG_PREFIX = "sem_primary_"
ROW_GROUP = "sem_row"


class Experiment:
    """One model file. ``Experiment(__file__, schema=None, replicate_keys=("fold",))``."""

    def __init__(
        self,
        main_file: str | os.PathLike,
        schema: Optional[type] = None,
        replicate_keys: Iterable[str] = ids.DEFAULT_REPLICATE_KEYS,
        name: Optional[str] = None,
    ):
        self.path = Path(main_file).resolve()
        self.name = name or self.path.stem
        self.schema = schema
        self.replicate_keys = tuple(replicate_keys)
        self._configs_fn: Optional[Callable[[], Sequence[dict]]] = None
        self._main_fn: Optional[Callable[[dict], Any]] = None
        self._checkpoint_fn: Optional[Callable[..., Any]] = None
        # the run of the job going on in this process (sem_core.lifecycle)
        self.lifecycle = RunLifecycle()

    # -- folders ---------------------------------------------------------------------
    @property
    def models_dir(self) -> Path:
        return self.path.parent

    @property
    def experiment_dir(self) -> Path:
        return settings.experiment_dir_of(self.path)

    def store_dir(self, storage: Optional[str] = None) -> Path:
        """The run store: ``storage``, else ``<models folder>/runs``.

        A relative ``storage`` is taken from the directory the command was started in, also
        inside a job that Hydra moved into its output folder (``hydra.job.chdir=true``)."""
        if storage:
            path = Path(storage).expanduser()
            if not path.is_absolute():
                path = _launch_dir() / path
            return path.resolve()
        return self.models_dir / "runs"

    def ex_info(self) -> dict:
        """sacred's ``experiment`` entry of a run: name, base_dir, mainfile, sources."""
        from sem_core.sources import model_sources

        return {
            "name": self.name,
            "base_dir": str(self.models_dir),
            "sources": model_sources(self.path),
            "dependencies": [],
            "repositories": [],
            "mainfile": self.path.name,
        }

    # -- decorators ------------------------------------------------------------------
    def configs(self, fn: Callable[[], Sequence[dict]]) -> Callable[[], Sequence[dict]]:
        """Mark the function returning the list of config rows."""
        self._configs_fn = fn
        return fn

    def main(self, fn: Callable[[dict], Any]) -> Callable[[dict], Any]:
        """Mark ``main(config)`` without running it (see ``automain``)."""
        self._main_fn = fn
        return fn

    def automain(self, fn: Callable[[dict], Any]) -> Callable[[dict], Any]:
        """Mark ``main(config)`` and, when the model file is executed, run the command line."""
        self.main(fn)
        if fn.__globals__.get("__name__") == "__main__":
            try:
                code = self.run_commandline()
            except SemError as exc:  # found before Hydra started: one clear line, no traceback
                from sem_core.mongo.connection import redact_uri

                print(f"{self.path.name}: error: {redact_uri(str(exc))}", file=sys.stderr)
                code = 1
            sys.exit(code)
        return fn

    def checkpoint(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Mark a function called before a Slurm requeue (timeout, preemption) to save state."""
        self._checkpoint_fn = fn
        return fn

    # -- rows ------------------------------------------------------------------------
    def rows(self) -> list[dict]:
        """The rows of ``@ex.configs``, normalised (numpy -> Python, tuples -> lists)."""
        if self._configs_fn is None:
            raise ConfigError(f"{self.path}: no @ex.configs function; decorate the function returning the rows")
        raw = self._configs_fn()
        if not isinstance(raw, (list, tuple)):
            raise ConfigError(
                f"{self.path}: @ex.configs {self._configs_fn.__name__}() returned {type(raw).__name__}; "
                "return a list of dicts (sem_core.grid(...) builds one)"
            )
        rows = []
        for order_id, row in enumerate(raw):
            if not isinstance(row, dict):
                raise ConfigError(
                    f"{self.path} row order_id={order_id}: expected a dict, got {type(row).__name__} ({row!r:.80})"
                )
            try:
                rows.append(ids.normalise_row(row))
            except ids.RowValueError as exc:
                raise ConfigError(f"{self.path} row order_id={order_id}: {exc}") from None
            clash = sorted(set(row) & (set(ids.ID_KEYS) | {"sem", "hydra"}))
            if clash:
                raise ConfigError(
                    f"{self.path} row order_id={order_id}: key(s) {clash} are reserved by sem; rename them"
                )
        return rows

    # -- run-time API (valid inside main) ----------------------------------------------
    @property
    def current_run(self):
        return self.lifecycle.current()

    @property
    def info(self) -> dict:
        return self.current_run.info

    def log_scalar(self, name: str, value: Any, step: Optional[int] = None) -> None:
        self.current_run.log_scalar(name, value, step)

    def add_artifact(self, path: str | os.PathLike, name: Optional[str] = None) -> None:
        self.current_run.add_artifact(path, name)

    def add_resource(self, path: str | os.PathLike) -> None:
        self.current_run.add_resource(path)

    def log_metrics(self, X, Y, prediction_fn, var_flag: bool = False, log: bool = True, prefix: Optional[str] = None):
        """Regression metrics of ``prediction_fn(X)`` against ``Y`` (see ``sem_core.metrics``)."""
        from sem_core.metrics import regression_metrics

        run = self.current_run
        metrics, predictions = regression_metrics(X, Y, prediction_fn, var_flag=var_flag, prefix=prefix)
        if log:
            for name, value in metrics.items():
                run.log_scalar(name, value)
        return metrics, predictions

    # -- command line ----------------------------------------------------------------
    def run_commandline(self, argv: Optional[Sequence[str]] = None) -> int:
        """Run ``python m_model.py [hydra flags] [overrides]``; return the exit code."""
        import hydra

        argv = list(sys.argv[1:] if argv is None else argv)
        # Launchers that start a fresh interpreter (submitit_local, submitit_slurm) unpickle the
        # task before any sem code runs there: the model's sibling modules (`from data import
        # ...`) must already be importable, so the models folder goes on their PYTHONPATH.
        _prepend_pythonpath(self.models_dir)
        experiment_config = settings.load_experiment_config(self.experiment_dir)
        hydra_argv, row_overrides = split_argv(argv, self)
        # the database is resolved (and a bad setting refused) before any job; the password never
        # enters the config Hydra composes, saves and logs
        from sem_core.mongo.connection import resolve_for_sweep

        hydra_argv, database = resolve_for_sweep(hydra_argv, experiment_config, self.experiment_dir)
        task = SemTask(self, row_overrides)
        task.database, task.database_resolved = database, True
        config_name = register_primary_config(self, experiment_config)
        # `python m.py | head`: a closed stdout must not fail the sweep (sem_core/pipes.py)
        guard_stdout()
        saved_argv = sys.argv
        sys.argv = [str(self.path)] + hydra_argv
        try:
            # kill/timeout/docker stop end the sweep as Ctrl-C does: runs INTERRUPTED, a summary
            with stop_signals_interrupt():
                hydra.main(version_base="1.3", config_path=None, config_name=config_name)(task)()
        except KeyboardInterrupt as exc:
            self.lifecycle.abandon(exc)
            print(f"{self.path.name}: interrupted ({exc or 'SIGINT'})", file=sys.stderr, flush=True)
            return interrupt_exit_code(exc)
        finally:
            sys.argv = saved_argv
        return 1 if task.failed else 0


def load_model_file(path: str | os.PathLike) -> Experiment:
    """Import a model file without running it (``@ex.automain`` runs only under ``__main__``)
    and return its ``Experiment``. Its folder goes on ``sys.path`` for sibling imports."""
    import importlib.util

    path = Path(path).resolve()
    if not path.is_file():
        raise ConfigError(f"{path}: no such model file")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(f"sem_model_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    found = [v for v in vars(module).values() if isinstance(v, Experiment)]
    if len(found) != 1:
        raise ConfigError(f"{path}: expected one `ex = Experiment(__file__)`, found {len(found)}")
    return found[0]


def _prepend_pythonpath(folder: Path) -> None:
    entries = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(folder) not in entries:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(folder), *entries])


def _launch_dir() -> Path:
    """Where the user started the command (Hydra's ``runtime.cwd`` inside a job)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.cwd)
    return Path.cwd()


class SemTask:
    """The task function handed to ``hydra.main``: runs ``main(row)`` of one job.

    It carries the experiment (the sweeper plans from it), the row overrides taken off the
    command line, ``sweep_meta`` (filled once per sweep, recorded with every run) and the
    sweep's database. It holds no locks, clients or open files: it is pickled to workers.
    """

    def __init__(self, experiment: Experiment, row_overrides: Sequence[RowOverride] = ()):
        self.experiment = experiment
        self.row_overrides = list(row_overrides)
        self.sweep_meta: dict = {}
        self.failed = False
        # the sweep's MongoDB settings (None: no database), once resolved (``database_settings``)
        self.database: Any = None
        self.database_resolved = False
        functools.update_wrapper(self, experiment._main_fn)  # type: ignore[arg-type]
        # Hydra names the job after the file holding the task's code: the model file.
        self.__code__ = experiment._main_fn.__code__  # type: ignore[union-attr]

    def __getstate__(self) -> dict:
        # the database URL holds a password: it is never pickled (payloads, spawned workers);
        # a process that unpickles the task resolves it again from the environment and files
        return {**self.__dict__, "database": None, "database_resolved": False}

    def database_settings(self):
        """The database the sweep's jobs sync to (None: none), resolved once."""
        if not self.database_resolved:
            from sem_core.mongo.connection import resolve_settings

            self.database = resolve_settings(experiment_dir=self.experiment.experiment_dir)
            self.database_resolved = True
        return self.database

    def __call__(self, cfg) -> Any:
        lifecycle = self.experiment.lifecycle
        elsewhere = lifecycle.take_elsewhere()
        if elsewhere is not None:
            # another run holds this row's claim (sem_core.claims): the job reports it, runs nothing
            return elsewhere
        run = lifecycle.enter()
        # the row the callback already read from this job's config (a copy: main may change it)
        row = copy.deepcopy(run.config)
        # config["seed"] derived from experiment_id unless the row sets one (issue 6); not in
        # config.json, so experiment_id stays the hash of config.json's user keys
        from sem_core.capture import seed_everything, with_seed

        row = with_seed(row, row["experiment_id"])
        seed_everything(row["seed"])
        try:
            return self.experiment._main_fn(row)  # type: ignore[misc]
        except KeyboardInterrupt:
            lifecycle.interrupt()
            raise
        except SystemExit as exc:
            if _raised_by_submitit(exc):
                raise  # submitit requeued this Slurm task and exits: the worker records QUEUED
            # sys.exit() in main (or argparse's error exit) ends this job only, with a record
            if exc.code is None or exc.code == 0:
                return None
            raise MainExited(f"main() called sys.exit({exc.code!r})") from None


def _raised_by_submitit(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by submitit's signal handler (a Slurm requeue on timeout or
    preemption ends the process with ``sys.exit(-1)`` from inside it), not by the model."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith("submitit.")


def split_argv(argv: Sequence[str], experiment: Experiment) -> tuple[list[str], list[RowOverride]]:
    """Separate the overrides that address rows (selection, ``++``, ``+NEW``, ``~``) from
    those Hydra handles (flags, ``hydra.*``, ``sem.*``, config groups)."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import OverrideParseException

    parsed_args, _unknown = get_args_parser().parse_known_args(list(argv))
    candidates = list(parsed_args.overrides or [])
    if not candidates:
        return list(argv), []
    parser = OverridesParser.create()
    row_overrides: list[RowOverride] = []
    taken: list[str] = []
    # the seed's way to run rows by position: `python m_model.py 0 3` is `+order_id=0,3`
    positions = [text for text in candidates if text.isascii() and text.isdigit()]
    if positions:
        values = tuple(dict.fromkeys(int(text) for text in positions))
        row_overrides.append(RowOverride(kind="select", key="order_id", values=values, text=" ".join(positions)))
        taken += positions
        candidates = [text for text in candidates if text not in positions]
    for text in candidates:
        # a row key with dots, spaces or other characters is typed in quotes ("a.b"=1), which
        # Hydra's grammar does not accept: Hydra parses the rest with a stand-in key
        quoted = split_quoted_override(text)
        try:
            (ov,) = parser.parse_overrides([text if quoted is None else f"{quoted[0]}sem_key{quoted[2]}"])
        except OverrideParseException as exc:
            # Hydra's message spans three lines (a caret under the text, a link): kept to one
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"cannot parse override {text!r}: {first} (grammar: https://hydra.cc/docs/advanced/override_grammar/basic; "
                "a value with spaces or other characters goes in quotes: key='a b')"
            ) from None
        key = ov.key_or_group if quoted is None else format_key(quoted[1])
        first = key.split(".")[0]
        if quoted is None and ("/" in key or ov.package is not None) or first in ("hydra", "sem"):
            continue
        if ov.is_sweep_override():
            if not ov.is_discrete_sweep():
                raise ConfigError(f"{text}: only lists and range() sweeps are supported for row keys")
            values = tuple(ov.sweep_iterator())
        else:
            values = (ov.value(),)
        if key == "order_id":
            if ov.type == OverrideType.DEL:
                raise ConfigError(f"{text}: order_id cannot be removed")
            kind = "select"
        elif ov.type == OverrideType.CHANGE:
            kind = "select"
        elif ov.type == OverrideType.FORCE_ADD:
            kind = "set"
        elif ov.type == OverrideType.ADD:
            kind = "add"
        else:
            kind = "delete"
        row_overrides.append(RowOverride(kind=kind, key=key, values=values, text=text))
        taken.append(text)
    remaining = list(argv)
    for text in taken:
        remaining.remove(text)
    return remaining, row_overrides


def register_primary_config(experiment: Experiment, experiment_config: dict) -> str:
    """Store the primary config of this model file in Hydra's ConfigStore; return its name."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    from hydra.core.plugins import Plugins

    # Hydra's plugin discovery imports every hydra_plugins module: sem's registers its sweeper and
    # launchers in the ConfigStore (the library never names the plugin package above it)
    Plugins.instance()
    from sem_core import resolvers

    resolvers.register()
    sem_section = dict(experiment_config.get("sem") or {})
    mongo = sem_section.get("mongo")
    if isinstance(mongo, dict) and isinstance(mongo.get("url"), str):
        from sem_core.mongo.connection import redact_uri

        # jobs take the real URL from the settings layer; the config tree keeps it redacted
        sem_section["mongo"] = {**mongo, "url": redact_uri(mongo["url"])}
    storage = sem_section.get("storage")
    if storage and not Path(storage).expanduser().is_absolute():
        # relative to the experiment folder when set in experiment_config.yaml
        sem_section["storage"] = str((experiment.experiment_dir / storage).resolve())
    try:
        sem_node = OmegaConf.merge(OmegaConf.structured(settings.SemConf), sem_section)
    except Exception as exc:
        raise ConfigError(f"{experiment.experiment_dir / settings.EXPERIMENT_CONFIG_NAME}: section 'sem': {exc}") from None
    # cluster sections (`mycluster: {type: slurm, ...}`) become hydra/launcher=mycluster
    from sem_core.slurm.sections import register_cluster_launchers

    register_cluster_launchers(experiment_config, experiment.experiment_dir)
    name = PRIMARY_CONFIG_PREFIX + experiment.name
    node = {
        "defaults": [
            "_self_",
            {"override hydra/sweeper": "sem"},
            {"override hydra/launcher": "sequential"},
        ],
        "hydra": {
            "mode": "MULTIRUN",
            "callbacks": {"sem": {"_target_": "sem_core.callback.SemCallback"}},
            # ${sem_uid:} is a random token resolved once per sweep: two sweeps started in the
            # same second get different folders (Hydra's default collides, hydra #2925).
            "sweep": {"dir": "multirun/${now:%Y-%m-%d}/${now:%H-%M-%S}-${sem_uid:}", "subdir": "${hydra.job.num}"},
            "help": {"app_name": experiment.path.name, "template": _help_template(experiment)},
        },
        "sem": sem_node,
    }
    ConfigStore.instance().store(name=name, node=node)
    return name


def _help_template(experiment: Experiment) -> str:
    return (
        f"{experiment.path.name}: a sem model file.\n\n"
        "Runs every row of @ex.configs as a Hydra multirun job and records each run under\n"
        "<models>/runs (sacred's file layout).\n\n"
        "Select rows:      +order_id=2   +order_id=0,3   +order_id='range(0,4)'   KEY=v   KEY=v1,v2\n"
        "Change rows:      ++KEY=v (override in every selected row)   +NEW=v1,v2 (add and cross)   ~KEY\n"
        "Launchers:        hydra/launcher=local hydra.launcher.n_jobs=N   hydra.launcher.fail_fast=true\n"
        "                  hydra/launcher=slurm (or a cluster section of experiment_config.yaml)\n"
        "Resume:           sem.skip_completed=true   sem.rerun=failed|missing\n"
        "sem settings:     sem.storage=PATH   sem.heartbeat_interval=SECONDS   sem.mongo.url=URI\n"
        "Without running:  sem plan <this file> [overrides]   (the jobs, with their ids)\n\n"
        "== Config ==\n$CONFIG\n\n${hydra.help.footer}"
    )
