"""``SemTask``: the task function handed to ``hydra.main``; it runs ``main(row)`` of one job."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sem_core.compose import main_argument, main_config
from sem_core.lifecycle import MainExited
from sem_core.plan import RowOverride

if TYPE_CHECKING:  # the experiment hands itself to its task: a type only, never imported at run time
    from sem_core.experiment import Experiment


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

    def database_settings(self) -> Any:
        """The database the sweep's jobs sync to (None: none), resolved once."""
        if not self.database_resolved:
            from sem_core.mongo.connection import resolve_settings

            self.database = resolve_settings(experiment_dir=self.experiment.experiment_dir)
            self.database_resolved = True
        return self.database

    def __call__(self, cfg: Any) -> Any:
        lifecycle = self.experiment.lifecycle
        elsewhere = lifecycle.take_elsewhere()
        if elsewhere is not None:
            # another run holds this row's claim (sem_core.claims): the job reports it, runs nothing
            return elsewhere
        run = lifecycle.enter()
        # the job's config the callback already read (a copy: main may change it): the row, or
        # the config a schema or config tree made of it (sem_core.compose)
        row = main_config(run.config)
        # config["seed"] (the random seed) is derived from experiment_id unless the row sets one;
        # it is not in config.json, so experiment_id stays the hash of config.json's user keys
        from sem_core.seeding import seed_everything, with_seed

        row = with_seed(row, row["experiment_id"])
        seed_everything(row["seed"])
        try:
            main_fn = self.experiment._main_fn
            assert main_fn is not None  # a task is made only for a model file with a main (__init__)
            return main_fn(main_argument(main_fn, row, self.experiment.schema))
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
