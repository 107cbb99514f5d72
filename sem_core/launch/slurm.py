"""The launching side of ``hydra/launcher=slurm``.

One ``sbatch`` per array (arrays are split at the cluster's MaxArraySize), submitted held;
every run of a sem sweep is then recorded QUEUED with its Slurm job id and array index, and
the arrays are released (one ``scontrol release``): a job can never start before its QUEUED
record exists. With ``wait=true`` the launcher shows progress until every job ended and
reconciles records of jobs Slurm killed; with ``wait=false`` it returns at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sem_core.errors import ConfigError, SemError, warn
from sem_core.launch.slurm_task import (
    PAYLOAD_VERSION,
    array_task_command,
    row_entry,
    rows_withheld,
    write_array_file,
)
from sem_core.run_status import RunStatus
from sem_core.slurm import arrays, container
from sem_core.slurm import status as st

if TYPE_CHECKING:
    from hydra.core.utils import JobReturn
    from submitit import Job

    from sem_core.experiment import Experiment
    from sem_core.observers.file import QueuedRuns
    from sem_core.task import SemTask

log = logging.getLogger(__name__)

# Parameters of SlurmLauncherConf that go to submitit's sbatch file as they are.
SBATCH_PARAMS = (
    "partition",
    "cpus_per_task",
    "gpus_per_task",
    "gpus_per_node",
    "account",
    "qos",
    "constraint",
    "gres",
    "job_name",
    "setup",
    "array_parallelism",
    "signal_delay_s",
)


class SlurmJobError(Exception):
    """A job that ended without a result (Slurm state, reason and log path in the message)."""


@dataclass
class Submission:
    """One sbatch call: an array (or a single job) of tasks."""

    folder: Path  # submitit's folder: where each task's log and result go
    tasks: list[list[int]]  # job indices (positions in the batch) per array task
    slurm_job_id: str = ""
    num_tasks: int = 1  # Slurm tasks (srun processes) per array task

    @functools.cached_property
    def jobs(self) -> list[Job[Any]]:
        """submitit's handle of each array task (its log, result and state), made when the
        launcher waits: a submission that does not wait needs none."""
        from submitit import SlurmJob

        ids = [f"{self.slurm_job_id}_{a}" for a in range(len(self.tasks))] if self.is_array else [self.slurm_job_id]
        return [SlurmJob(folder=self.folder, job_id=job_id, tasks=list(range(self.num_tasks))) for job_id in ids]

    @property
    def is_array(self) -> bool:
        return len(self.tasks) > 1


@dataclass
class TaskOutcome:
    done: bool = False
    returns: list | None = None  # the worker's JobReturns (success)
    error: str | None = None  # the worker's traceback, or Slurm's verdict
    slurm_state: str = ""
    ended_sightings: int = 0  # Slurm queries in a row that saw the task ended without a result


@dataclass
class SweepState:
    submissions: list[Submission] = field(default_factory=list)


SBATCH_AT_ONCE = 4  # arrays submitted side by side
RECORD_WRITERS = 8  # threads writing QUEUED records
SIGNAL_EARLY_S = 60  # sbatch(1): "the signal may be sent up to 60 seconds earlier than specified"
STARTUP_S = 30  # room for the job step to start and submitit to install its signal handler


def executor_parameters(params: dict) -> dict:
    """SlurmLauncherConf values -> submitit SlurmExecutor parameters (sbatch options)."""
    timeout_min = int(params.get("timeout_min") or 60)
    delay = int(params.get("signal_delay_s") or 0)
    if delay >= timeout_min * 60:
        raise ConfigError(
            f"hydra.launcher.signal_delay_s={delay} is not below the time limit timeout_min={timeout_min} "
            f"({timeout_min * 60} s): the job would be told to requeue as soon as it starts; "
            f"set signal_delay_s to less than {timeout_min * 60}, e.g. {max(timeout_min * 60 // 4, 1)}"
        )
    if delay and timeout_min * 60 - delay < SIGNAL_EARLY_S + STARTUP_S:
        warn(
            f"hydra.launcher.signal_delay_s={delay} with timeout_min={timeout_min}: slurmctld may send the requeue "
            f"signal up to {SIGNAL_EARLY_S} s early, before the job can take it (the signal is then lost, or kills "
            f"Python before submitit handles it); keep timeout_min*60 - signal_delay_s at "
            f"{SIGNAL_EARLY_S + STARTUP_S} s or more, "
            f"e.g. signal_delay_s={max(timeout_min * 60 - SIGNAL_EARLY_S - STARTUP_S, 0)}"
        )
    out: dict[str, Any] = {"time": timeout_min}
    for key in SBATCH_PARAMS:
        value = params.get(key)
        if value not in (None, [], {}):
            out[key] = list(value) if key == "setup" else value
    if params.get("mem_gb"):
        out["mem"] = f"{int(float(params['mem_gb']) * 1024)}MB"
    extra = dict(params.get("additional_parameters") or {})
    extra["hold"] = True  # released once the QUEUED records exist (see module docstring)
    out["additional_parameters"] = extra
    return out


def python_command(params: dict, experiment_dir: Path | None) -> str:
    """How the job script starts Python: this interpreter, or ``python`` inside the container."""
    image = params.get("container")
    if not image:
        return params.get("python") or shlex.quote(sys.executable)
    base = experiment_dir or Path.cwd()
    spec = container.ContainerSpec(
        image=container.resolve_image(str(image), base, "hydra.launcher.container"),
        binary=container.resolve_binary(params.get("container_binary") or "auto"),
        flags=tuple(params.get("container_flags") or ()),
        binds=tuple(params.get("container_binds") or ()),
        python=params.get("python") or "python",
    )
    gpus = container.wants_gpus(params.get("gpus_per_task"), params.get("gpus_per_node"), params.get("gres"))
    return container.container_python_command(spec, gpus)


def _run_checked(cmd: list[str], what: str) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    except FileNotFoundError:
        raise SemError(f"{what}: {cmd[0]} is not on PATH") from None
    if out.returncode != 0:
        raise SemError(
            f"{what}: '{' '.join(cmd)}' failed (exit {out.returncode}): {(out.stderr or out.stdout).strip()[:500]}"
        )
    return out.stdout


@dataclass
class SlurmSweep:
    """One launch of the Slurm launcher: what its steps share."""

    config: Any  # the sweep's config, as Hydra hands it to the launcher
    params: dict  # hydra.launcher.*
    tasks: _Tasks
    job_overrides: Sequence[Sequence[str]]
    initial_job_idx: int
    sweep_dir: Path
    folder: Path  # submitit's folder: job scripts, logs, results, the payload
    rows: list  # each job's planned row (None for other Hydra apps)

    @property
    def where(self) -> Path:
        """What `sem status` and `sem cancel` are pointed at."""
        return self.tasks.store or self.sweep_dir


class _Tasks:
    """The jobs of any Hydra app: its task function travels pickled, nothing is recorded here."""

    store: Path | None = None
    experiment_dir: Path | None = None

    def __init__(self, task: Any, config: Any) -> None:
        self.task = task

    def rows(self, job_overrides: Sequence[Sequence[str]]) -> list:
        return [None] * len(job_overrides)

    def payload(self) -> tuple[dict, list[str]]:
        """(what the array tasks need to rebuild the task function, their sys.path entries)."""
        import cloudpickle

        sys_path = [str(Path(sys.path[0]).resolve())] if sys.path and sys.path[0] else []
        return {"task_bytes": cloudpickle.dumps(self.task)}, sys_path

    def database(self) -> Any:
        return None

    def queued_records(self, sweep: SlurmSweep) -> QueuedRecords | None:
        """What writes each run's QUEUED record (None: the app's jobs are not recorded)."""
        return None


class _SemTasks(_Tasks):
    """The rows of a sem experiment: the model file travels as source, each run is recorded
    QUEUED before Slurm may start it."""

    store: Path

    def __init__(self, task: Any, config: Any) -> None:
        super().__init__(task, config)
        self.experiment = task.experiment
        self.experiment_dir = self.experiment.experiment_dir
        self.store = self.experiment.store_dir(config.sem.storage)
        self.heartbeat_interval = float(config.sem.heartbeat_interval)

    def rows(self, job_overrides: Sequence[Sequence[str]]) -> list:
        return _job_rows(job_overrides)

    def payload(self) -> tuple[dict, list[str]]:
        model = {"path": str(self.experiment.path), "source": self.experiment.path.read_text(encoding="utf-8")}
        return {"model": model, "sweep_meta": dict(self.task.sweep_meta)}, [str(self.experiment.models_dir)]

    def database(self) -> Any:
        return self.task.database_settings()

    def queued_records(self, sweep: SlurmSweep) -> QueuedRecords:
        return QueuedRecords.of_sweep(self.experiment, self.task, self.store, sweep, self.heartbeat_interval)


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Any]:
    """Submit the jobs held, record them QUEUED, release them; with ``wait``, wait for them
    and return one JobReturn per job."""
    from hydra.core.utils import configure_log, setup_globals

    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    sweep = _prepare(launcher, job_overrides, initial_job_idx)
    executor_params = executor_parameters(sweep.params)
    plan, max_array = _plan_arrays(sweep)
    python = python_command(sweep.params, sweep.tasks.experiment_dir)
    payload_path, sys_path = _write_payload(sweep, launcher.hydra_context)
    t0 = time.perf_counter()
    state = _submit_held(sweep, executor_params, python, plan, payload_path, sys_path)
    ids = [s.slurm_job_id for s in state.submissions]
    _run_checked(["scontrol", "release", ",".join(ids)], "releasing the submitted jobs")
    n_tasks = sum(len(s.tasks) for s in state.submissions)
    log.info(
        f"Submitted {len(job_overrides)} jobs as {n_tasks} Slurm array tasks in {len(ids)} sbatch call(s) "
        f"(job ids {', '.join(ids)}; MaxArraySize {max_array}) in {time.perf_counter() - t0:.2f}s; "
        f"logs in {sweep.folder}"
    )
    if not sweep.params.get("wait", True):
        _tell_submitted(sweep, ids)
        return [_queued_return(overrides) for overrides in job_overrides]
    outcomes = _wait_for(sweep, state, ids)
    if sweep.tasks.store is not None:
        _ask_slurm_about_failed_tasks(state, outcomes)
    return _job_returns(state, outcomes, job_overrides, sweep.tasks.store, sweep.rows)


def _prepare(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> SlurmSweep:
    """The launch's settings checked and its folders made."""
    from sem_core.launch.job import is_sem_task

    config = launcher.config
    params = dict(launcher.params)
    task = launcher.task_function
    tasks = (_SemTasks if is_sem_task(task) else _Tasks)(task, config)
    sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(str(params.get("submitit_folder") or sweep_dir / ".slurm")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return SlurmSweep(
        config=config,
        params=params,
        tasks=tasks,
        job_overrides=job_overrides,
        initial_job_idx=initial_job_idx,
        sweep_dir=sweep_dir,
        folder=folder,
        rows=tasks.rows(job_overrides),
    )


def _plan_arrays(sweep: SlurmSweep) -> tuple[list, int]:
    """The jobs packed into array tasks, split into arrays of at most MaxArraySize tasks, with
    each array's share of array_parallelism: ([(tasks, (limit, after))], MaxArraySize)."""
    params = sweep.params
    per_task = int(params.get("configs_per_task") or 1)
    if per_task < 1:
        raise ConfigError(f"hydra.launcher.configs_per_task={per_task}: must be 1 or more")
    parallelism = int(256 if params.get("array_parallelism") is None else params["array_parallelism"])
    if parallelism < 1:
        raise ConfigError(f"hydra.launcher.array_parallelism={parallelism}: must be 1 or more")
    max_array = arrays.read_max_array_size()
    plan = arrays.plan_submissions(len(sweep.job_overrides), per_task, max_array)
    return list(zip(plan, arrays.share_parallelism(len(plan), parallelism))), max_array


def _write_payload(sweep: SlurmSweep, hydra_context: Any) -> tuple[Path, list[str]]:
    """The sweep's shared payload, written once for every array task: (its path, the sys.path
    entries the tasks need before loading it). The database travels in one file only the user
    can read, never in the payload; the planned rows travel with their array tasks."""
    import cloudpickle
    from hydra.core.config_store import ConfigStore
    from hydra.core.singleton import Singleton

    part, sys_path = sweep.tasks.payload()
    path = sweep.folder / f"payload_{sweep.initial_job_idx}_{uuid.uuid4().hex[:8]}.pkl"
    with rows_withheld():
        singleton_state = Singleton.get_state()  # a deep copy, of everything but the rows
        # Hydra composes from the ConfigStore its config sources hold, sem's code reads the
        # singleton's: one store in the task, where each job's row is registered while it runs
        singleton_state["instances"][ConfigStore] = ConfigStore.instance()
        payload: dict[str, Any] = {
            "version": PAYLOAD_VERSION,
            "hydra_context": hydra_context,
            "config": sweep.config,
            "singleton_state": singleton_state,
            "store": str(sweep.tasks.store) if sweep.tasks.store else None,
            **part,
            "mongo_url_file": _mongo_secret_file(sweep.folder, sweep.tasks.database()),
        }
        with open(path, "wb") as fh:
            cloudpickle.dump(payload, fh)
    return path, sys_path


def _submit_held(
    sweep: SlurmSweep, executor_params: dict, python: str, plan: list, payload_path: Path, sys_path: list[str]
) -> SweepState:
    """One held sbatch per array, a few arrays at a time, and the QUEUED records of each
    array's runs written by a pool of threads once it is submitted; returns once every record
    exists. On any failure the held jobs are cancelled (none is ever left behind)."""
    state = SweepState()
    records = sweep.tasks.queued_records(sweep)
    # a record is four file creations, the kernel's work (its inode search), which threads
    # overlap with each other and with the next arrays' sbatch calls
    submitters = ThreadPoolExecutor(SBATCH_AT_ONCE, thread_name_prefix="sem-sbatch")
    writers = ThreadPoolExecutor(RECORD_WRITERS, thread_name_prefix="sem-queued-records")
    arrays: list[Future[Submission]] = []
    writing: list[Future[None]] = []
    try:
        with _without_secret_environment():  # around every thread's sbatch: os.environ is the process's
            for tasks, (limit, after) in plan:
                wait_for = arrays[after] if after is not None else None
                arrays.append(
                    submitters.submit(
                        _submit_array, sweep, executor_params, python, tasks, limit, wait_for, payload_path, sys_path
                    )
                )
            for future in arrays:  # in plan order, each array's records as soon as it is submitted
                submission = future.result()  # the first failure raises
                state.submissions.append(submission)
                if records is not None:
                    writing += records.write_all(submission, writers)
        for done in writing:
            done.result()
    except BaseException:
        submitters.shutdown(wait=True, cancel_futures=True)
        writers.shutdown(wait=True, cancel_futures=True)
        held = [f.result().slurm_job_id for f in arrays if f.done() and not f.cancelled() and f.exception() is None]
        if held:
            subprocess.run(["scancel", *held], capture_output=True, check=False)
            log.error(f"submission failed: cancelled the held Slurm jobs {', '.join(held)}")
        if records is not None:
            records.runs.unlink_unwritten()
        raise
    finally:
        submitters.shutdown(wait=True)
        writers.shutdown(wait=True)
    return state


def _submit_array(
    sweep: SlurmSweep,
    executor_params: dict,
    python: str,
    tasks: list[list[int]],
    limit: int,
    after: Future[Submission] | None,
    payload_path: Path,
    sys_path: list[str],
) -> Submission:
    """One held sbatch: an array of ``tasks`` with at most ``limit`` running at once, starting
    after the array ``after`` ended (the sweep's %K holds across the arrays it was split into).
    What each task runs travels in one file per array (``slurm_task.write_array_file``), not in
    a pickle per task as submitit's ``submit_array`` writes: 1,000 tasks cost one file."""
    import submitit

    extra = dict(executor_params["additional_parameters"])
    if after is not None:
        wait = f"afterany:{after.result().slurm_job_id}"
        extra["dependency"] = f"{extra['dependency']},{wait}" if extra.get("dependency") else wait
    max_requeue = int(sweep.params.get("max_requeue", 3))
    array_file = write_array_file(
        sweep.folder / f"array_{sweep.initial_job_idx + tasks[0][0]}_{uuid.uuid4().hex[:8]}.pkl",
        str(payload_path),
        sys_path,
        [_packed_jobs(sweep, job_indices) for job_indices in tasks],
        timeout_min=int(executor_params["time"]),
        max_num_timeout=max_requeue,
    )
    executor = submitit.SlurmExecutor(folder=sweep.folder, max_num_timeout=max_requeue, python=python)
    executor.update_parameters(**{**executor_params, "array_parallelism": limit, "additional_parameters": extra})
    if len(tasks) > 1:
        executor.parameters["map_count"] = len(tasks)  # how submitit's submit_array asks for --array
    # submitit's own sbatch script and job folder, with the task's command in place of submitit's
    job = executor._submit_command(array_task_command(python, sweep.folder, array_file))
    return Submission(
        folder=sweep.folder, tasks=tasks, slurm_job_id=st.array_parent(job.job_id), num_tasks=job.num_tasks
    )


def _packed_jobs(sweep: SlurmSweep, job_indices: Sequence[int]) -> list[dict]:
    """What one array task is told about each of its jobs."""
    return [
        {
            "overrides": list(sweep.job_overrides[j]),
            "idx": sweep.initial_job_idx + j,
            "global_id": sweep.rows[j]["global_id"] if sweep.rows[j] else None,
            "row": row_entry(sweep.job_overrides[j]),
        }
        for j in job_indices
    ]


def _tell_submitted(sweep: SlurmSweep, ids: Sequence[str]) -> None:
    where = shlex.quote(str(sweep.where))
    print(
        f"Submitted {len(sweep.job_overrides)} jobs to Slurm (job ids {', '.join(ids)}); this shell may now close.\n"
        f"  follow them:  sem status {where}\n"
        f"  cancel them:  sem cancel {where}",
        flush=True,
    )


def _wait_for(sweep: SlurmSweep, state: SweepState, ids: Sequence[str]) -> dict:
    try:
        return _wait(
            state,
            float(sweep.params.get("poll_interval_s") or 1.0),
            len(sweep.job_overrides),
            sweep.tasks.store,
            sweep.rows,
        )
    except KeyboardInterrupt:
        where = shlex.quote(str(sweep.where))
        log.warning(
            f"Stopped waiting; the Slurm jobs ({', '.join(ids)}) keep running. "
            f"Follow them with: sem status {where}   cancel them with: sem cancel {where}"
        )
        raise


def _mongo_secret_file(folder: Path, settings: Any) -> str | None:
    from sem_core.mongo import connection

    return str(connection.write_secret_file(folder, settings)) if settings is not None else None


@contextlib.contextmanager
def _without_secret_environment() -> Iterator[None]:
    """sbatch copies the submitting environment into the job, and slurmctld keeps that copy:
    the database URL stays out of it (jobs read the sweep's private file instead)."""
    import os

    from sem_core.mongo.connection import ENV_VAR

    saved = os.environ.pop(ENV_VAR, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[ENV_VAR] = saved


def _job_rows(job_overrides: Sequence[Sequence[str]]) -> list[dict | None]:
    from sem_core.row_store import job_row

    return [job_row(list(ov)) for ov in job_overrides]


RECORDS_PER_WRITE = 100  # records one thread writes in a go


@dataclass
class QueuedRecords:
    """The QUEUED record of every run of a sem sweep, carrying its Slurm job id and array
    index; what the records share is encoded once (``QueuedRuns``)."""

    task: SemTask
    store: Path
    sweep: SlurmSweep
    heartbeat_interval: float
    runs: QueuedRuns
    shared_meta: dict  # meta.sem's entries every run shares, as QueuedRuns' stand-ins

    @classmethod
    def of_sweep(
        cls, experiment: Experiment, task: SemTask, store: Path, sweep: SlurmSweep, heartbeat_interval: float
    ) -> QueuedRecords:
        from sem_core.host import host_info
        from sem_core.mongo.connection import redact_uri
        from sem_core.observers.file import QueuedRuns

        runs = QueuedRuns(store, experiment.ex_info(), "main", host_info(), dt.datetime.now(dt.timezone.utc))
        # as the callback does: a sem.mongo.url=... override must not put its password into a record
        argv = [redact_uri(a) for a in [str(experiment.path)] + list(sys.argv[1:])]
        return cls(
            task=task,
            store=store,
            sweep=sweep,
            heartbeat_interval=heartbeat_interval,
            runs=runs,
            # encoded once: the output capture's settings alone are most of a record's text
            shared_meta={key: runs.shared(value) for key, value in {"argv": argv, **task.sweep_meta}.items()},
        )

    def write_all(self, sub: Submission, writers: ThreadPoolExecutor) -> list[Future[None]]:
        """Hand the records of ``sub``'s runs to ``writers``, in groups, once their sacred
        numbers are linked here, one after another: threads linking side by side in the one
        index folder would mostly find each other's numbers taken."""
        todo = [(a, j) for a, job_indices in enumerate(sub.tasks) for j in job_indices]
        numbers = self.runs.link([self.sweep.rows[j]["global_id"] for _, j in todo])
        return [
            writers.submit(self.write, sub, todo[i : i + RECORDS_PER_WRITE], numbers[i : i + RECORDS_PER_WRITE])
            for i in range(0, len(todo), RECORDS_PER_WRITE)
        ]

    def write(self, sub: Submission, runs: Sequence[tuple[int, int]], sacred_ids: Sequence[int | None]) -> None:
        """The records of ``runs``: (array index in ``sub``, job index in the sweep) each."""
        from sem_core.mongo.connection import redact_uri

        sweep = self.sweep
        for (array_index, j), sacred_id in zip(runs, sacred_ids):
            slurm = {
                "job_id": f"{sub.slurm_job_id}_{array_index}" if sub.is_array else sub.slurm_job_id,
                "array_job_id": sub.slurm_job_id if sub.is_array else None,
                "array_index": array_index if sub.is_array else None,
                "node": None,  # known when it runs
                "partition": sweep.params.get("partition"),  # as asked; None = the cluster's default
                "restart_count": 0,
            }
            row = sweep.rows[j]
            meta = {
                "command": "main",
                "options": {},
                "sem": {
                    "argv": self.shared_meta["argv"],
                    "overrides": [redact_uri(o) for o in sweep.job_overrides[j]],
                    "job_num": sweep.initial_job_idx + j,
                    "store": str(self.store),
                    "heartbeat_interval": self.heartbeat_interval,
                    **self.shared_meta,
                    "slurm": slurm,
                },
            }
            self.runs.write(row["global_id"], row, meta, sacred_id)


def _queued_return(overrides: Sequence[str]) -> JobReturn:
    from hydra.core.utils import JobReturn, JobStatus

    ret = JobReturn()
    ret.overrides = list(overrides)
    ret.status = JobStatus.UNKNOWN
    ret._return_value = None
    return ret


# -- waiting -----------------------------------------------------------------------------
DEAD_AFTER_SIGHTINGS = 2  # consecutive Slurm queries (>= 5 s apart) before a task with no result is dead


def _wait(state: SweepState, poll_s: float, n_jobs: int, store: Path | None, rows: list) -> dict:
    """Poll result files (cheap) every ``poll_s`` and Slurm every few seconds until every
    array task ended; log progress whenever it changes. Returns {(sub, task): TaskOutcome}."""
    outcomes = {(s, a): TaskOutcome() for s, sub in enumerate(state.submissions) for a in range(len(sub.tasks))}
    slurm_every = max(5.0, poll_s)
    last_query = 0.0
    last_line = ""
    slurm_states: dict[str, str] = {}
    while True:
        for (s, a), out in outcomes.items():
            if out.done:
                continue
            job = state.submissions[s].jobs[a]
            if job.paths.result_pickle.exists():
                _read_result(job, out)
        pending = [k for k, o in outcomes.items() if not o.done]
        if pending and time.monotonic() - last_query >= slurm_every:
            last_query = time.monotonic()
            ids = [state.submissions[s].jobs[a].job_id for s, a in pending]
            query = st.query_jobs(ids)
            for s, a in pending:
                job = state.submissions[s].jobs[a]
                info = query.states.get(job.job_id)
                slurm_states[job.job_id] = info.status if info else st.UNKNOWN
                out = outcomes[(s, a)]
                if info is not None and info.status not in st.ACTIVE and info.status != st.UNKNOWN:
                    # ended: the result file is written before the process exits, so a
                    # missing one means Slurm stopped the task (cancel, timeout, kill) - once
                    # a second query agrees: a requeue passes through a short ended-looking
                    # state, and a result file on a network filesystem can show up late
                    if job.paths.result_pickle.exists():
                        _read_result(job, out)
                    else:
                        out.ended_sightings += 1
                        if out.ended_sightings >= DEAD_AFTER_SIGHTINGS:
                            _dead_task(job, info, out)
                else:
                    out.ended_sightings = 0
        line = _progress_line(state, outcomes, slurm_states, n_jobs)
        if line != last_line:
            log.info(line)
            last_line = line
        if all(o.done for o in outcomes.values()):
            return outcomes
        time.sleep(poll_s)


def _read_result(job: Job[Any], out: TaskOutcome) -> None:
    try:
        outcome, value = job._get_outcome_and_result()
    except Exception as exc:  # a truncated or unreadable result file: reported, not guessed
        out.done, out.error = True, f"could not read the result of Slurm job {job.job_id}: {exc}"
        return
    out.done = True
    if outcome == "success":
        out.returns = value
    else:
        out.error = str(value)


def _dead_task(job: Job[Any], info: st.SlurmJobState, out: TaskOutcome) -> None:
    out.done = True
    out.slurm_state = info.state
    out.error = (
        f"Slurm job {job.job_id} ended {info.state}"
        + (f" (exit code {info.exit_code})" if info.exit_code and info.exit_code != "0:0" else "")
        + f" without a result; log: {job.paths.stderr}"
    )


def _progress_line(state: SweepState, outcomes: dict, slurm_states: dict, n_jobs: int) -> str:
    counts = {"pending": 0, "running": 0, "done": 0, "failed": 0}
    for (s, a), out in outcomes.items():
        size = len(state.submissions[s].tasks[a])
        if out.done:
            counts["failed" if out.error else "done"] += size
        elif slurm_states.get(state.submissions[s].jobs[a].job_id) == "RUNNING":
            counts["running"] += size
        else:
            counts["pending"] += size
    return f"Slurm: {n_jobs} submitted, " + ", ".join(f"{n} {k}" for k, n in counts.items())


def _ask_slurm_about_failed_tasks(state: SweepState, outcomes: dict, patience_s: float = 15.0) -> None:
    """Slurm's final state of each task whose worker reported a failure. A task Slurm stopped
    at its time limit can fail in the worker too (the last requeue attempt is killed halfway):
    its run must say TIMEOUT, which only Slurm knows. Accounting lags a few seconds behind the
    process's exit, so ask until every such task has an ended state or ``patience_s`` passes."""
    asking = {
        state.submissions[s].jobs[a].job_id: out
        for (s, a), out in outcomes.items()
        if out.error and not out.slurm_state
    }
    deadline = time.monotonic() + patience_s
    while asking:
        query = st.query_jobs(asking)
        for job_id, info in query.states.items():
            if job_id in asking and info.status not in st.ACTIVE and info.status != st.UNKNOWN:
                asking.pop(job_id).slurm_state = info.state
        if not asking or time.monotonic() > deadline:
            return
        time.sleep(1.0)


STOPPED_BY_SLURM = (RunStatus.TIMEOUT, RunStatus.CANCELLED, RunStatus.KILLED)  # verdicts that overrule a FAILED record


def _job_running_when_stopped(indices: Sequence[int], rows: list, store: Path | None) -> int | None:
    """The job a stopped array task was running: the last of its pack whose record left QUEUED
    (the jobs of a pack run one after another)."""
    from sem_core import records

    if store is None:
        return None
    for j in reversed(indices):
        run_file = store / rows[j]["global_id"] / records.RUN_FILE if rows[j] is not None else None
        if run_file is not None and run_file.exists() and records.read_json(run_file).get("status") != RunStatus.QUEUED:
            return j
    return None


def _job_returns(
    state: SweepState, outcomes: dict, job_overrides: Sequence[Sequence[str]], store: Path | None, rows: list
) -> list:
    """One JobReturn per job. For sem runs the record is the truth (the worker wrote it);
    records of tasks Slurm stopped are reconciled here with Slurm's verdict."""
    from hydra.core.utils import JobReturn, JobStatus

    from sem_core import records
    from sem_core.slurm.reconcile import write_verdict

    returns: list = [None] * len(job_overrides)
    for (s, a), out in outcomes.items():
        indices = state.submissions[s].tasks[a]
        stopped_job = _job_running_when_stopped(indices, rows, store) if out.slurm_state else None
        by_overrides = {}
        for ret in out.returns or []:
            by_overrides[tuple(ret.overrides or [])] = ret
        for j in indices:
            ret = by_overrides.get(tuple(job_overrides[j]))
            row = rows[j]
            if row is not None and store is not None:
                run_dir = store / row["global_id"]
                if out.slurm_state and (run_dir / records.RUN_FILE).exists():
                    verdict = st.sem_status(out.slurm_state)
                    if verdict not in st.ACTIVE and verdict != st.UNKNOWN:
                        write_verdict(
                            run_dir, RunStatus.FAILED if verdict == RunStatus.COMPLETED else verdict, out.error or ""
                        )
                    if verdict in STOPPED_BY_SLURM and j == stopped_job:
                        # it failed because Slurm stopped it (e.g. killed mid-requeue at the limit)
                        write_verdict(
                            run_dir,
                            verdict,
                            f"Slurm job {state.submissions[s].jobs[a].job_id} ended {out.slurm_state}",
                            only_if={RunStatus.FAILED},
                        )
                run = records.read_json(run_dir / records.RUN_FILE) if (run_dir / records.RUN_FILE).exists() else {}
                if ret is None:
                    ret = JobReturn()
                    ret.overrides = list(job_overrides[j])
                    if run.get("status") == RunStatus.COMPLETED:
                        ret.status, ret._return_value = JobStatus.COMPLETED, run.get("result")
                    else:
                        trace = "".join(run.get("fail_trace") or []) or out.error or "no record"
                        ret.status, ret._return_value = JobStatus.FAILED, SlurmJobError(trace.strip()[-2000:])
            elif ret is None:
                ret = JobReturn()
                ret.overrides = list(job_overrides[j])
                ret.status, ret._return_value = JobStatus.FAILED, SlurmJobError(out.error or "no result")
            returns[j] = ret
    return returns
