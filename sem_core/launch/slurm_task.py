"""What runs inside a Slurm array task: the jobs packed into it, one after another.

submitit unpickles an ``ArrayTask`` (plain strings and ints only) and calls it. The sweep's
shared payload (Hydra context and config, Singleton state) is loaded from a file *after*
``sys.path`` holds the model's folder, and the model file itself is executed from the source
snapshot taken at submission: the model's sibling modules import, and nothing the user
attached to the experiment (locks, clients, open files) ever has to be pickled.
"""

from __future__ import annotations

import contextlib
import copy
import os
import pickle
import shlex
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sem_core.launch.job import JobRunner, is_sem_task
from sem_core.run_status import ACTIVE_STATUSES, RunStatus

if TYPE_CHECKING:
    from hydra.core.utils import JobReturn
    from hydra.types import TaskFunction
    from submitit.helpers import DelayedSubmission

    from sem_core.experiment import Experiment

PAYLOAD_VERSION = 3  # 2: the planned rows travel with their array tasks; 3: one file per array (write_array_file)
# what each array task runs: its jobs from its array's file, then submitit's own job runner
ARRAY_TASK_CODE = "from sem_core.launch.slurm_task import run_array_task; run_array_task()"


class JobsFailed(Exception):
    """Raised at the end of an array task in which a job failed: the task's process exits
    non-zero, so Slurm (sacct) shows FAILED and not COMPLETED (hydra #1928)."""


def slurm_meta(environ: Mapping[str, str] = os.environ) -> dict:
    """Where this task runs, from the variables Slurm sets (recorded with every run)."""
    array_job = environ.get("SLURM_ARRAY_JOB_ID")
    array_task = environ.get("SLURM_ARRAY_TASK_ID")
    raw = environ.get("SLURM_JOB_ID")
    return {
        "job_id": f"{array_job}_{array_task}" if array_job else raw,
        "array_job_id": array_job,
        "array_index": int(array_task) if array_task is not None else None,
        "raw_job_id": raw,
        "node": environ.get("SLURMD_NODENAME"),
        "partition": environ.get("SLURM_JOB_PARTITION"),
        "cluster": environ.get("SLURM_CLUSTER_NAME"),
        "restart_count": int(environ.get("SLURM_RESTART_COUNT", "0") or 0),
    }


@contextlib.contextmanager
def rows_withheld() -> Iterator[None]:
    """The sweep's planned rows (``sem_core.row_store``) out of Hydra's ConfigStore for a while:
    the shared payload pickles the store, and every array task would hold every row of the
    sweep; each task is sent its own jobs' rows instead (``ArrayTask`` jobs' ``row``)."""
    from hydra.core.config_store import ConfigStore

    from sem_core.row_store import ROW_GROUP

    repo = ConfigStore.instance().repo
    rows = repo.pop(ROW_GROUP, None)
    try:
        yield
    finally:
        if rows is not None:
            repo[ROW_GROUP] = rows


def row_entry(overrides: Sequence[str]) -> Any:
    """The ConfigStore entry of a job's planned row (its ``+sem_row=j<k>`` override), as it was
    planned (a row Hydra built a config from is sent without it); None if none."""
    from hydra.core.config_store import ConfigStore

    from sem_core.row_store import ROW_GROUP

    prefix = f"+{ROW_GROUP}="
    for text in overrides:
        if text.startswith(prefix):
            entry = ConfigStore.instance().repo.get(ROW_GROUP, {}).get(f"{text[len(prefix) :]}.yaml")
            return type(entry)(entry.name, entry.record, entry.group, entry.groups) if entry is not None else None
    return None


@contextlib.contextmanager
def row_registered(entry: Any) -> Iterator[None]:
    """A job's planned row in the ConfigStore for a while, and out of it after (unless it was
    there already): a task running thousands of packed jobs holds a row or two at a time."""
    if entry is None:
        yield
        return
    from hydra.core.config_store import ConfigStore

    from sem_core.row_store import ROW_GROUP

    group = ConfigStore.instance().repo.setdefault(ROW_GROUP, {})
    if entry.name in group:
        yield
        return
    # a copy: the config Hydra builds from the entry is dropped with it, not kept in the task's jobs
    group[entry.name] = copy.copy(entry)
    try:
        yield
    finally:
        group.pop(entry.name, None)


def load_payload(path: str) -> dict:
    import cloudpickle  # noqa: F401  (payloads are written with cloudpickle)

    with open(path, "rb") as fh:
        payload = pickle.load(fh)
    if payload.get("version") != PAYLOAD_VERSION:
        raise RuntimeError(f"{path}: payload version {payload.get('version')} != {PAYLOAD_VERSION}")
    return payload


def mark_timeout(store: str, global_id: str, reason: str) -> None:
    """The job was stopped at its time limit with no requeue left: say TIMEOUT, not FAILED."""
    from sem_core.slurm.reconcile import write_verdict

    write_verdict(
        Path(store) / global_id,
        RunStatus.TIMEOUT,
        reason,
        only_if={RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.FAILED},
    )


def write_array_file(
    path: Path,
    payload_path: str,
    sys_path: list[str],
    tasks: Sequence[Sequence[dict]],
    timeout_min: int,
    max_num_timeout: int,
) -> Path:
    """What every task of one array runs, in one file: ``tasks[i]`` is the jobs of array task
    ``i`` (``ArrayTask``'s ``jobs``). Each job is pickled on its own, so a task unpickles only
    its own jobs (the others stay bytes) and keeps them as ``ArrayTask`` does."""
    from sem_core import records

    array = {
        "version": PAYLOAD_VERSION,
        "payload_path": payload_path,
        "sys_path": list(sys_path),
        "tasks": [[pickle.dumps(job, pickle.HIGHEST_PROTOCOL) for job in jobs] for jobs in tasks],
        "timeout_min": timeout_min,
        "max_num_timeout": max_num_timeout,
    }
    records.atomic_write_bytes(path, pickle.dumps(array, pickle.HIGHEST_PROTOCOL))
    return path


def array_task_command(python: str, folder: Path, array_file: Path) -> str:
    """The command submitit's sbatch script runs (under srun) in each task of an array."""
    return f"{python} -u -c {shlex.quote(ARRAY_TASK_CODE)} {shlex.quote(str(folder))} {shlex.quote(str(array_file))}"


def run_array_task(argv: Sequence[str] | None = None) -> None:
    """An array task's process: ``<submitit folder> <array file>``. On the task's first attempt
    its ``ArrayTask`` is taken from the array's file and put where submitit's job runner looks
    for it (a requeued task finds there the one submitit's checkpoint wrote, with the jobs not
    yet done); then submitit runs it as any job it submitted (result file, requeue on timeout)."""
    folder, array_file = list(sys.argv[1:] if argv is None else argv)[:2]
    os.environ["SUBMITIT_FOLDER"] = folder  # where submitit's JobEnvironment finds this task's files
    from submitit.core import submission, utils
    from submitit.core.job_environment import JobEnvironment

    target = JobEnvironment().paths.submitted_pickle
    if not target.exists():
        with open(array_file, "rb") as fh:
            array = pickle.load(fh)
        if array.get("version") != PAYLOAD_VERSION:
            raise RuntimeError(f"{array_file}: array file version {array.get('version')} != {PAYLOAD_VERSION}")
        jobs = array["tasks"][int(os.environ.get("SLURM_ARRAY_TASK_ID") or 0)]
        delayed = utils.DelayedSubmission(ArrayTask(array["payload_path"], array["sys_path"], jobs))
        delayed.set_timeout(array["timeout_min"], array["max_num_timeout"])
        del array, jobs  # the other tasks' jobs
        with utils.temporary_save_path(target) as tmp:
            delayed.dump(tmp)
        del delayed
    submission.process_job(folder)


class ArrayTask:
    """One Slurm array task. ``jobs``: ``{"overrides": [...], "idx": int, "global_id": str|None,
    "row": the ConfigStore entry of its planned row, or None}``, each kept pickled until it runs
    (a few hundred bytes, not a few kilobytes of objects: a task packing thousands of jobs)."""

    def __init__(self, payload_path: str, sys_path: list[str], jobs: Sequence[dict | bytes]):
        self.payload_path = payload_path
        self.sys_path = list(sys_path)
        self.jobs = [job if isinstance(job, bytes) else pickle.dumps(job, pickle.HIGHEST_PROTOCOL) for job in jobs]
        self._position = 0  # job being run (for checkpoint)
        self._payload: dict | None = None  # loaded when the task runs; never pickled

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_payload": None}

    # -- run ---------------------------------------------------------------------------
    def __call__(self) -> list:
        from sem_core.errors import install_hooks

        install_hooks()  # the array task is the entry point of its process: sem's warnings are one line
        for entry in reversed(self.sys_path):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        from hydra.core.singleton import Singleton
        from hydra.core.utils import JobStatus, setup_globals

        from sem_core import resolvers

        resolvers.register()
        payload = self._payload = load_payload(self.payload_path)
        Singleton.set_state(payload["singleton_state"])
        setup_globals()
        task = self._task_function(payload)
        runner = JobRunner(
            payload["hydra_context"],
            payload["config"],
            task,
            keep_configs=not is_sem_task(task),
            derive=len(self.jobs) > 1,
        )
        returns = []
        failures = []
        # the first job's row stays registered: the sweep's config template (JobConfigs) is
        # checked against that job's composition when the second job comes
        first = pickle.loads(self.jobs[0]) if self.jobs else {}
        with row_registered(first.get("row")):
            for position, blob in enumerate(self.jobs):
                self._position = position
                job = pickle.loads(blob)
                if self._already_finished(payload, job):
                    continue  # a requeued pack: this job ended in an earlier attempt
                ret = self._run_job(payload, runner, job)
                if ret.status == JobStatus.FAILED:
                    value = ret._return_value
                    failures.append(f"job #{job['idx']}: {type(value).__name__}: {value}".splitlines()[0][:300])
                if not _recorded_completed(payload, job, ret):
                    returns.append(ret)
        sys.stdout.flush()
        sys.stderr.flush()
        if failures:
            raise JobsFailed(
                f"{len(failures)} of {len(self.jobs)} jobs in this array task failed: " + "; ".join(failures)
            )
        return returns

    def _task_function(self, payload: dict) -> TaskFunction:
        model = payload.get("model")
        if model is None:  # any Hydra app: its task function travels pickled
            return pickle.loads(payload["task_bytes"])
        from sem_core.experiment import load_model_file
        from sem_core.task import SemTask

        # the model file as it was submitted, not as edited since
        experiment = load_model_file(model["path"], model["source"])
        task = SemTask(experiment)
        task.sweep_meta = dict(payload.get("sweep_meta") or {}, slurm=slurm_meta())
        if "mongo_url_file" in payload:
            from sem_core.mongo import connection

            # the database the sweep resolved (None: none), from the sweep's private file
            path = payload["mongo_url_file"]
            task.database = connection.read_secret_file(Path(path)) if path else None
            task.database_resolved = True
        return task

    def _already_finished(self, payload: dict, job: dict) -> bool:
        store, gid = payload.get("store"), job.get("global_id")
        if not store or not gid or os.environ.get("SLURM_RESTART_COUNT", "0") in ("", "0"):
            return False
        from sem_core import records

        run_file = Path(store) / gid / records.RUN_FILE
        if not run_file.exists():
            return False
        try:
            return records.read_object(run_file).get("status") not in ACTIVE_STATUSES
        except (OSError, ValueError) as exc:  # damaged meanwhile: run the job again rather than lose it
            print(f"sem: {exc}; running the job again", file=sys.stderr, flush=True)
            return False

    def _run_job(self, payload: dict, runner: JobRunner, job: dict) -> JobReturn:
        from hydra.core.utils import JobStatus

        from sem_core.job_return import portable

        lifecycle = getattr(getattr(runner.task_function, "experiment", None), "lifecycle", None)
        try:
            with row_registered(job.get("row")):
                ret = runner.run(job["overrides"], job["idx"], job_id=slurm_meta()["job_id"])
        except SystemExit:
            # submitit requeued this task (timeout or preemption) and is exiting: the run
            # goes back to QUEUED; the next attempt restarts it under the same global_id
            if lifecycle is not None:
                lifecycle.interrupt(RunStatus.QUEUED)
            raise
        except BaseException as exc:
            if lifecycle is not None:  # unwound past Hydra's on_job_end: the run still ends
                lifecycle.abandon(exc)
            # the last timeout signal arrived outside the task (in a callback Hydra does not
            # guard): the run still ends TIMEOUT, then the array task fails as usual
            if _is_final_timeout(exc) and job.get("global_id"):
                mark_timeout(payload["store"], job["global_id"], str(exc).strip())
            raise
        if ret.status == JobStatus.FAILED and _is_final_timeout(ret._return_value) and job.get("global_id"):
            mark_timeout(payload["store"], job["global_id"], str(ret._return_value).strip())
        return portable(ret)

    # -- requeue -----------------------------------------------------------------------
    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """Called by submitit on timeout/preemption before requeueing: run the model's
        ``@ex.checkpoint`` hook, then resubmit the jobs not finished yet."""
        import submitit

        payload = self._payload
        experiment = _model_experiment() if payload is not None and payload.get("model") is not None else None
        current = experiment.lifecycle.run if experiment is not None else None
        if experiment is not None and current is not None:
            hook = experiment._checkpoint_fn
            if hook is not None:
                try:
                    _call_hook(hook, current.config)
                except Exception:  # the requeue must still happen; the trace goes to the job log
                    print(f"sem: @ex.checkpoint raised:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
        remaining = ArrayTask(self.payload_path, self.sys_path, self.jobs[self._position :])
        return submitit.helpers.DelayedSubmission(remaining)


def _recorded_completed(payload: dict, job: dict, ret: JobReturn) -> bool:
    """Whether a job completed and its record says so, with its result: the launcher then reads
    the record (the truth) and needs no JobReturn back, so a task running thousands of packed
    jobs does not hold one per job until its end. A failed job, or one that ran nothing here
    (another run holds its row's claim), still sends its JobReturn."""
    from hydra.core.utils import JobStatus

    store, gid = payload.get("store"), job.get("global_id")
    if ret.status != JobStatus.COMPLETED or not store or not gid:
        return False
    from sem_core import records

    try:
        return records.read_object(Path(store) / gid / records.RUN_FILE).get("status") == RunStatus.COMPLETED
    except (OSError, ValueError):
        return False


def _model_experiment() -> Experiment | None:
    """The experiment of the model file this task executed (``load_model_file``)."""
    from sem_core.experiment import MODEL_MODULE_PREFIX, Experiment

    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith(MODEL_MODULE_PREFIX):
            for value in vars(module).values():
                if isinstance(value, Experiment):
                    return value
    return None


def _call_hook(hook: Callable[..., Any], config: dict) -> None:
    import inspect

    try:
        n_params = len(inspect.signature(hook).parameters)
    except (TypeError, ValueError):
        n_params = 1
    hook(config) if n_params else hook()


def _is_final_timeout(value: Any) -> bool:
    try:
        from submitit.core.utils import UncompletedJobError
    except ImportError:  # pragma: no cover
        return False
    seen: set[int] = set()
    while value is not None and id(value) not in seen:  # the signal may hit inside sem's own code,
        seen.add(id(value))  # which wraps it (e.g. "could not start recording this run")
        if isinstance(value, UncompletedJobError) and "timed-out" in str(value):
            return True
        value = value.__cause__ or value.__context__
    return False
