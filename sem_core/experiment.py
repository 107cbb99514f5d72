"""``Experiment``: the model-file API (``@ex.configs``, ``@ex.automain``, ``ex.log_scalar`` ...).

The command line goes to ``sem_core.hydra_app`` (Hydra's side), the job's task function is
``sem_core.task.SemTask``."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sem_core import ids, settings
from sem_core.errors import ConfigError, SemError, install_hooks
from sem_core.groups import config_folder
from sem_core.lifecycle import RunLifecycle

if TYPE_CHECKING:  # built when planning: OmegaConf and Hydra stay out of importing a model file
    from sem_core.compose import GroupComposer
    from sem_core.run import Run

# the module name of a model file loaded by ``load_model_file``: sem_model_<stem>
MODEL_MODULE_PREFIX = "sem_model_"


class Experiment:
    """One model file. ``Experiment(__file__, schema=None, replicate_keys=("fold",))``, or with a
    Hydra config tree whose groups the rows choose: ``config_path="conf", config_name="config"``
    (sem_core.groups)."""

    def __init__(
        self,
        main_file: str | os.PathLike,
        schema: type | None = None,
        replicate_keys: Iterable[str] = ids.DEFAULT_REPLICATE_KEYS,
        name: str | None = None,
        config_path: str | None = None,
        config_name: str | None = None,
    ):
        self.path = Path(main_file).resolve()
        self.name = name or self.path.stem
        self.schema = schema
        self.replicate_keys = tuple(replicate_keys)
        self._configs_fn: Callable[[], Sequence[dict]] | None = None
        self._main_fn: Callable[[dict], Any] | None = None
        self._checkpoint_fn: Callable[..., Any] | None = None
        # the run of the job going on in this process (sem_core.lifecycle)
        self.lifecycle = RunLifecycle()
        # (len(sys.modules), model_sources) of the last scan in this process (``ex_info``)
        self._sources: tuple[int, list[list[str]]] | None = None
        # sacred's idiom: ex.observers.append(obs) attaches any sacred RunObserver to every run
        # (sem_core.observers.attached); sem's own file record needs none
        self.observers: list = []
        if _is_main_script(self.path):
            # `python m_model.py`: the model file is the entry point, and a SemError its own
            # module-level code raises (read_yaml of a bad experiment_config.yaml) is one line
            install_hooks()
        # the config tree's folder (None: none) and primary config (after the hooks: a bad
        # setting is one line); its groups are read when planning
        self.config_dir = config_folder(schema, config_path, config_name, self.path)
        self.config_name = config_name
        self._config_tree: GroupComposer | None = None

    def config_tree(self) -> GroupComposer | None:
        """The config tree: its groups with their options, the overrides of a row's choices
        (None without a tree); read once."""
        if self.config_dir is None or self.config_name is None:
            return None
        if self._config_tree is None:
            from sem_core.compose import GroupComposer

            self._config_tree = GroupComposer(self.config_dir, self.config_name)
        return self._config_tree

    def __getstate__(self) -> dict:
        # the scan of another process's modules means nothing in the one unpickling this
        return {**self.__dict__, "_sources": None}

    # -- folders ---------------------------------------------------------------------
    @property
    def models_dir(self) -> Path:
        return self.path.parent

    @property
    def experiment_dir(self) -> Path:
        return settings.experiment_dir_of(self.path)

    def store_dir(self, storage: str | None = None) -> Path:
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

        # scanning every loaded module and hashing the model's sources takes milliseconds: it is
        # redone only when modules were imported since, so the jobs of one worker scan once
        loaded = len(sys.modules)
        if self._sources is None or self._sources[0] != loaded:
            self._sources = (loaded, model_sources(self.path))
        return {
            "name": self.name,
            "base_dir": str(self.models_dir),
            "sources": self._sources[1],
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
            if not ids.RESERVED_KEYS.isdisjoint(row):
                clash = sorted(set(row) & ids.RESERVED_KEYS)
                named = ", ".join(repr(k) for k in clash)
                what = f"keys {named} are" if len(clash) > 1 else f"key {named} is"
                raise ConfigError(
                    f"{self.path} row order_id={order_id}: {what} set by sem for every run; rename it in the rows"
                )
        return rows

    # -- run-time API (valid inside main) ----------------------------------------------
    @property
    def current_run(self) -> Run:
        return self.lifecycle.current()

    @property
    def info(self) -> dict:
        return self.current_run.info

    def log_scalar(self, name: str, value: Any, step: int | None = None) -> None:
        # called per point, maybe millions of times: the run taken without a call (current()
        # only to raise NoActiveRun)
        (self.lifecycle.run or self.lifecycle.current()).log_scalar(name, value, step)

    def add_artifact(self, path: str | os.PathLike, name: str | None = None) -> None:
        self.current_run.add_artifact(path, name)

    def add_resource(self, path: str | os.PathLike) -> None:
        self.current_run.add_resource(path)

    def log_metrics(
        self,
        X: Any,
        Y: Any,
        prediction_fn: Callable[[Any], Any],
        var_flag: bool = False,
        log: bool = True,
        prefix: str | None = None,
    ) -> tuple[dict, Any]:
        """Regression metrics of ``prediction_fn(X)`` against ``Y`` (see ``sem_core.metrics``)."""
        from sem_core.metrics import regression_metrics

        run = self.current_run
        metrics, predictions = regression_metrics(X, Y, prediction_fn, var_flag=var_flag, prefix=prefix)
        if log:
            for name, value in metrics.items():
                run.log_scalar(name, value)
        return metrics, predictions

    # -- command line ----------------------------------------------------------------
    def run_commandline(self, argv: Sequence[str] | None = None) -> int:
        """Run ``python m_model.py [hydra flags] [overrides]``; return the exit code."""
        from sem_core.hydra_app import run_hydra_app

        return run_hydra_app(self, list(sys.argv[1:] if argv is None else argv))


def load_model_file(path: str | os.PathLike, source: str | None = None) -> Experiment:
    """Import a model file without running it and return its ``Experiment``.

    The module is named ``sem_model_<stem>``, not ``__main__``, so ``@ex.automain`` does not
    start a sweep; it is registered in ``sys.modules`` (objects of the model file pickle by
    reference) and its folder goes on ``sys.path`` for sibling imports. ``source``: the model
    file's text to execute instead of the file on disk (a Slurm array task runs the snapshot
    taken when the sweep was submitted, not the file as edited since)."""
    import importlib.util

    path = Path(path).resolve()
    if source is None and not path.is_file():
        raise ConfigError(f"{path}: no such model file")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = MODEL_MODULE_PREFIX + path.stem
    spec = importlib.util.spec_from_loader(name, loader=None, origin=str(path))
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    module.__file__ = str(path)
    sys.modules[name] = module
    if source is None:
        source = path.read_text(encoding="utf-8")
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)
    except BaseException:
        del sys.modules[name]  # as a failed import leaves no module behind
        raise
    found = [v for v in vars(module).values() if isinstance(v, Experiment) and v.path == path]
    if len(found) != 1:
        raise ConfigError(f"{path}: expected one `ex = Experiment(__file__)`, found {len(found)}")
    return found[0]


def _launch_dir() -> Path:
    """Where the user started the command (Hydra's ``runtime.cwd`` inside a job)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.cwd)
    return Path.cwd()


def _is_main_script(path: Path) -> bool:
    """Whether ``path`` is the script this interpreter was started with (``python m_model.py``)."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return main_file is not None and Path(main_file).resolve() == path
