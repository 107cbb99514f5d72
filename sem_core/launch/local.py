"""The work of sem's local launcher (``hydra_plugins.sem_plugins.launcher.LocalLauncher``).

With ``n_jobs`` > 1 the jobs run in up to ``n_jobs`` worker processes, forked once each (Linux;
spawned elsewhere). A worker runs the jobs it is handed one after another, as the sequential
launcher does in its single process: a job's first run in a fresh process pays for imports
and Hydra's cold caches (about 0.3 s against 0.07 s for the next ones), so a process per job
made short jobs slower than running them one by one. ``max_jobs_per_worker=1`` gets a fresh
process for every job back.

A job that ends its process (``os._exit``, a segfault, the OOM killer's SIGKILL) takes nothing
else with it: the sweep process ends the job's record with the exit code or signal and the last
lines of its output, and a new worker is forked for the rows left.

Stopping: the first SIGINT, SIGTERM or SIGHUP starts no new job and interrupts the running
ones (their records end INTERRUPTED); the sweep then prints its summary and exits 128 + the
signal number. A second one exits at once. A worker is interrupted too when the sweep
process dies, even by SIGKILL.

GPUs: with ``gpus_per_job=K`` each worker owns K devices for its whole life (CUDA reads
``CUDA_VISIBLE_DEVICES`` once, when a process first uses it), so no two running jobs share a
device, and ``n_jobs`` is capped at the number of K-device sets.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, setup_globals

from sem_core import records
from sem_core.job_return import JobReturns, portable
from sem_core.launch.gpus import own_gpus
from sem_core.launch.job import JobRunner, is_sem_task, unsettle
from sem_core.row_store import job_label, job_row
from sem_core.run_status import RunStatus
from sem_core.signals import Interrupted, interrupt_exit_code

log = logging.getLogger(__name__)

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
# A Ctrl-C reaches every job's process directly (same process group); `kill PID` reaches only
# the sweep process. A job that has not seen the stop signal itself this long after the sweep
# process did gets it forwarded: one signal per job, so that the job's own handling of a
# second signal (stop at once, record or not) is kept for a real second Ctrl-C.
FORWARD_AFTER_S = 1.0
OUTPUT_TAIL_LINES = 20
LAUNCH_LINES = 20  # jobs of a launch announced one by one
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


# The plugin's LocalLauncher (hydra_plugins.sem_plugins.launcher), which calls launch() with
# itself: typed Any because the library never imports the plugin package.
PluginLauncher = Any


class JobLost(Exception):
    """A job whose process ended without handing back its result: it died, was interrupted,
    or raised what Hydra does not catch (SystemExit)."""


def launch(
    launcher: PluginLauncher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> Sequence[JobReturn]:
    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    Path(str(launcher.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    runner = JobRunner(
        launcher.hydra_context,
        launcher.config,
        launcher.task_function,
        keep_configs=not is_sem_task(launcher.task_function),
        derive=len(job_overrides) > 1,
    )
    n_jobs = launcher.n_jobs or os.cpu_count() or 1
    gpu_sets = getattr(launcher, "gpu_sets", None)
    if n_jobs == 1:
        if gpu_sets:
            own_gpus(launcher.task_function, gpu_sets[0])
        log.info(f"Launching {_jobs(len(job_overrides))} in this process")
        return _launch_in_process(launcher, runner, job_overrides, initial_job_idx)
    if gpu_sets and n_jobs > len(gpu_sets):
        if not getattr(launcher, "cap_logged", False):
            launcher.cap_logged = True
            log.info(f"n_jobs={n_jobs} capped to {len(gpu_sets)}: {len(gpu_sets)} sets of {len(gpu_sets[0])} GPUs")
        n_jobs = len(gpu_sets)
    log.info(f"Launching {_jobs(len(job_overrides))}, {n_jobs} at a time, in worker processes")
    return _launch_in_processes(launcher, runner, job_overrides, initial_job_idx, n_jobs, gpu_sets)


def _log_start(idx: int, offset: int, count: int, overrides: Sequence[str]) -> None:
    """Hydra's line for a job starting; past the first ``LAUNCH_LINES`` jobs of a launch, a line
    per tenth of it: 10,000 lines for a 10,000-row sweep said little but the count."""
    step = max(1, count // 10)
    if offset < LAUNCH_LINES or count <= LAUNCH_LINES + 1:
        log.info(f"\t#{idx} : {job_label(overrides)}")
    elif offset == LAUNCH_LINES:
        log.info(f"\t... {count - offset} more jobs, a line per {step} started")
    elif (offset + 1) % step == 0 or offset == count - 1:
        log.info(f"\t#{idx} : {offset + 1} of {count} jobs started")


def _jobs(count: int) -> str:
    return f"{count} job" if count == 1 else f"{count} jobs"


def _launch_in_process(
    launcher: PluginLauncher, runner: JobRunner, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> JobReturns:
    runs = JobReturns(job_overrides, keep_all=runner.keep_configs)
    for offset, overrides in enumerate(job_overrides):
        idx = initial_job_idx + offset
        _log_start(idx, offset, len(job_overrides), overrides)
        ret = runner.run(overrides, idx)
        runs.add(offset, ret)
        configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
        if launcher.fail_fast and ret.status == JobStatus.FAILED:
            launcher.stopped_early = True
            log.error(f"fail_fast: job #{idx} failed; {len(job_overrides) - offset - 1} jobs not started")
            break
    unsettle(runner)
    return runs


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


# -- inside a worker process ----------------------------------------------------------------
def _worker_main(
    runner: JobRunner,
    conn: Connection,
    stopped: Any,
    take: Sequence[int],
    parent_pid: int,
    mask: set | None,
    gpus: Sequence[str] | None,
) -> int:
    """Run the jobs the sweep process sends, one after another; return the exit code.

    In: ``(overrides, idx)`` per job, ``None`` (or the pipe's end) to exit. Out, per job:
    ``("done", JobReturn)``; ``("interrupted", signum)`` when a stop signal ended the job;
    ``("error", traceback)`` for what Hydra's run_job does not catch. After anything but
    "done" the worker exits: the sweep is stopping, or the process is in a state no next
    job should inherit."""
    try:
        _install_stop_handlers(take, stopped)
        _die_with_parent(parent_pid)
        if gpus is not None:
            own_gpus(runner.task_function, gpus)
        if mask is not None:  # forked with the stop signals blocked: handlers are in place now
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        while True:
            assignment = _next_assignment(conn)
            if assignment is None:
                return 0
            message, code = _run_assigned(runner, *assignment)
            noted = _report(conn, message, take)
            if message[0] != "done":
                return code
            if noted is not None:  # a stop signal while reporting: this worker is done
                return 128 + noted
            _install_stop_handlers(take, stopped)
    except KeyboardInterrupt as exc:  # a stop signal between jobs: no job to end
        return interrupt_exit_code(exc)


def _next_assignment(conn: Connection) -> tuple[list, int] | None:
    try:
        return pickle.loads(conn.recv_bytes())
    except (EOFError, OSError):  # the sweep process is gone
        return None


def _run_assigned(runner: JobRunner, overrides: list, idx: int) -> tuple[tuple, int]:
    """Run one job: (the message telling how it ended, the exit code it leaves the worker)."""
    try:
        return ("done", portable(runner.run(overrides, idx))), 0
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        message: tuple = ("interrupted", signum)
        _abandon(runner, overrides, exc, message)
        return message, interrupt_exit_code(exc)
    except BaseException as exc:
        message = ("error", "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        _abandon(runner, overrides, exc, message)
        return message, 1


def _report(conn: Connection, message: tuple, take: Sequence[int]) -> int | None:
    """Send how the job ended; return the first stop signal that arrived meanwhile. The job
    has ended (its record too): a late signal (the sweep process dying) must not cut the
    report short, yet it must not be lost either, or the worker would wait for a next job."""
    noted: list[int] = []
    for signum in take:
        signal.signal(signum, lambda received, frame: noted.append(received))
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    try:
        conn.send_bytes(_dumps(message))
    except Exception:  # the sweep process is gone (second Ctrl-C, kill -9): the record is what counts
        return noted[0] if noted else signal.SIGTERM
    return noted[0] if noted else None


def _dumps(message: tuple) -> bytes:
    """Pickle what goes back to the sweep process. In a spawned process, classes of plugin
    modules Hydra imported a second time are not the objects pickle finds by name; cloudpickle
    sends those by value. The job's end is told in any case."""
    try:
        return pickle.dumps(message)
    except Exception as exc:
        try:
            import cloudpickle

            return cloudpickle.dumps(message)
        except Exception:
            text = f"the job's result could not be sent to the sweep process: {type(exc).__name__}: {exc}\n"
            return pickle.dumps(("error", text))


def _abandon(runner: JobRunner, overrides: Sequence[str], exc: BaseException, message: tuple) -> None:
    """A signal or SystemExit unwound the job past Hydra: its run still ends, here in its own
    process (the sweep process may be gone: kill -9). The run's own ending comes first; if the
    signal came while the run was starting, there is none, and the record is ended as the
    sweep process would end it."""
    lifecycle = getattr(getattr(runner.task_function, "experiment", None), "lifecycle", None)
    try:
        if lifecycle is not None:
            lifecycle.abandon(exc)
        run_dir = _run_dir(runner, overrides)
        if run_dir is not None and (run_dir / records.RUN_FILE).exists():
            status, reason, details = _message_verdict(message)
            _end_record(run_dir, status, reason, details)
    except BaseException as error:  # a second signal while recording: the sweep process ends the record
        log.warning(f"the run could not be ended in its process: {type(error).__name__}: {error}")


def _install_stop_handlers(take: Sequence[int], stopped: Any) -> None:
    """SIGINT, SIGTERM and SIGHUP raise ``Interrupted`` in the job (sem's task records the run
    INTERRUPTED) and tell the sweep process that this job has seen a stop signal."""

    def stop(signum: int, frame: Any) -> None:
        stopped.value = 1
        raise Interrupted(signum)

    for signum in take:
        signal.signal(signum, stop)


def _die_with_parent(parent_pid: int) -> None:
    """SIGTERM (an interrupt, see ``_install_stop_handlers``) when the sweep process dies,
    however it dies: a job must never go on alone, nor be left RUNNING."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) == 0:
                if os.getppid() != parent_pid:  # it died before prctl took effect
                    raise Interrupted(signal.SIGTERM)
                return
        except (OSError, AttributeError):
            pass
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="sem-watch-sweep", daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def _spawned_worker(payload: bytes, conn: Connection, stopped: Any, parent_pid: int, gpus: list | None) -> None:
    """A worker where fork is not used: nothing is inherited, everything is unpickled."""
    import cloudpickle  # noqa: F401  (the payload was pickled with it; installed with submitit)

    runner, state = pickle.loads(payload)
    Singleton.set_state(state)
    setup_globals()
    sys.exit(_worker_main(runner, conn, stopped, STOP_SIGNALS, parent_pid, None, gpus))


# -- workers, seen from the sweep process ---------------------------------------------------
class _Forked:
    """A worker made by ``os.fork``. Not multiprocessing.Process: at exit it joins
    every child, so a second Ctrl-C would wait for jobs that are still writing their records."""

    def __init__(self, pid: int, conn: Connection, stopped: Any) -> None:
        self.pid = pid
        self.conn = conn
        self.stopped = stopped
        self._pidfd: int | None = None
        try:  # readable when the process ends, whoever else holds its pipe open (grandchildren)
            self._pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pass

    @property
    def sentinel(self) -> int | None:
        return self._pidfd

    def fds(self) -> list[int]:
        return [self.conn.fileno()] + ([self._pidfd] if self._pidfd is not None else [])

    def reap(self) -> int:
        """Wait for the process (it has ended, or is ending); its exit code, -N for signal N."""
        while True:
            try:
                _, status = os.waitpid(self.pid, 0)
                return os.waitstatus_to_exitcode(status)
            except InterruptedError:
                continue
            except ChildProcessError:
                return 0

    def kill(self, signum: int) -> None:
        _kill(self.pid, signum)

    def close(self) -> None:
        self.conn.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:  # already gone: reaped next
        pass


class _Spawned:
    """A worker made by multiprocessing's spawn (platforms without a safe fork)."""

    def __init__(self, process: Any, conn: Connection, stopped: Any) -> None:
        self.process = process
        self.pid = process.pid
        self.conn = conn
        self.stopped = stopped

    @property
    def sentinel(self) -> int | None:
        return self.process.sentinel

    def fds(self) -> list[int]:
        return []

    def reap(self) -> int:
        self.process.join()
        return self.process.exitcode

    def kill(self, signum: int) -> None:
        _kill(self.pid, signum)

    def close(self) -> None:
        self.conn.close()
        self.process.close()


class _ForkStarter:
    """Forks a worker: it inherits the job runner, the ConfigStore rows and the imported model
    file, and starts in milliseconds (Linux)."""

    def __init__(self, runner: JobRunner) -> None:
        self.runner = runner

    def start(self, take: Sequence[int], inherited: Sequence[int], gpus: list | None) -> _Forked:
        ours, theirs = multiprocessing.Pipe(duplex=True)
        stopped = multiprocessing.RawValue(ctypes.c_byte, 0)
        parent_pid = os.getpid()
        for stream in (sys.stdout, sys.stderr):  # else buffered text is written twice
            stream.flush()
        # Blocked until the child has its own handlers: a signal in between would otherwise run
        # the sweep process's handler in the child.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            ours.close()
            theirs.close()
            raise
        if pid == 0:
            code = 1
            try:
                ours.close()
                for fd in inherited:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                code = _worker_main(self.runner, theirs, stopped, take, parent_pid, mask, gpus)
            except KeyboardInterrupt as exc:
                code = interrupt_exit_code(exc)
            finally:
                os._exit(code)  # never the sweep process's atexit handlers or finally blocks
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        theirs.close()
        return _Forked(pid, ours, stopped)


class _SpawnStarter:
    def __init__(self, runner: JobRunner) -> None:
        import cloudpickle

        self.context = multiprocessing.get_context("spawn")
        # Hydra's singletons hold OmegaConf resolvers, local functions plain pickle refuses
        self.payload = cloudpickle.dumps((runner, Singleton.get_state()))

    def start(self, take: Sequence[int], inherited: Sequence[int], gpus: list | None) -> _Spawned:
        ours, theirs = self.context.Pipe(duplex=True)
        stopped = self.context.RawValue(ctypes.c_byte, 0)
        process = self.context.Process(
            target=_spawned_worker,
            args=(self.payload, theirs, stopped, os.getpid(), gpus),
            name="sem-worker",
        )
        process.start()
        theirs.close()
        return _Spawned(process, ours, stopped)


class _StopSignals:
    """SIGINT/SIGTERM/SIGHUP in the sweep process while jobs run. The first is noted (and
    wakes the wait through a pipe); the second raises ``Interrupted`` at once. Only signals
    handled the default way or by sem (``sem_core.signals``: it raises at the first signal,
    which would leave the jobs behind) are taken; a user's own handler, or SIG_IGN, is left
    alone. Job processes convert the same signals."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.since = 0.0
        self.defaults: tuple[int, ...] = ()
        self._previous: dict[int, Any] = {}
        self.wake_r, self._wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self._wake_w, False)

    def __enter__(self) -> _StopSignals:
        self.defaults = tuple(s for s in STOP_SIGNALS if _is_default_handler(s, signal.getsignal(s)))
        if threading.current_thread() is threading.main_thread():
            for signum in self.defaults:
                self._previous[signum] = signal.signal(signum, self._note)
        return self

    def _note(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum
        self.since = time.monotonic()
        try:
            os.write(self._wake_w, b"\0")
        except OSError:
            pass

    def drain(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except OSError:  # BlockingIOError: nothing left
            pass

    def fds(self) -> list[int]:
        return [self.wake_r, self._wake_w]

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        os.close(self.wake_r)
        os.close(self._wake_w)


def _is_default_handler(signum: int, handler: Any) -> bool:
    if handler is (signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL):
        return True
    return callable(handler) and getattr(handler, "__module__", None) == "sem_core.signals"


@dataclass
class _Job:
    offset: int
    idx: int
    overrides: list
    message: tuple | None = None
    forwarded: bool = False


@dataclass
class _Worker:
    process: Any  # _Forked | _Spawned
    place: int  # which of the n_jobs places it holds (and the GPUs that go with it)
    job: _Job | None = None
    done: int = 0  # jobs it has run
    leaving: bool = False  # told to exit, or exiting by itself after its last job
    reading: bool = True  # its pipe is still open


def _launch_in_processes(
    launcher: PluginLauncher,
    runner: JobRunner,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
    n_jobs: int,
    gpu_sets: Sequence[Sequence[str]] | None,
) -> JobReturns:
    runner.prepare(job_overrides)  # composed once here: forked workers inherit it
    starter = _ForkStarter(runner) if sys.platform.startswith("linux") else _SpawnStarter(runner)
    queue = collections.deque(range(len(job_overrides)))  # offsets: each job's overrides are made when it starts
    results = JobReturns(job_overrides, keep_all=runner.keep_configs)
    workers: list[_Worker] = []
    jobs_per_worker = getattr(launcher, "max_jobs_per_worker", None)
    with _StopSignals() as stop:
        while True:
            handing_out = stop.signum is None and not launcher.stopped_early
            if handing_out:
                _hand_out(starter, stop, workers, job_overrides, queue, n_jobs, initial_job_idx, gpu_sets)
            _dismiss_idle(workers, keep=handing_out and bool(queue))
            if not workers:
                break
            _forward_stop(stop, workers)
            ready = wait(_waitables(stop, workers), timeout=_forward_timeout(stop, workers))
            if stop.wake_r in ready and stop.signum is not None:  # signum is set before the pipe is written
                stop.drain()
                log.warning(
                    f"{_signal_name(stop.signum)}: stopping {sum(w.job is not None for w in workers)} running jobs, "
                    f"{len(queue)} not started (again: stop at once)"
                )
            for worker in list(workers):
                finished, ended = _collect(runner, worker, ready, stopping=stop.signum is not None)
                if ended:
                    workers.remove(worker)
                elif jobs_per_worker and worker.done >= jobs_per_worker:
                    _dismiss(worker)
                if finished is None:
                    continue
                job, ret = finished
                results.add(job.offset, ret)
                if (
                    launcher.fail_fast
                    and ret.status == JobStatus.FAILED
                    and stop.signum is None
                    and not launcher.stopped_early
                ):
                    launcher.stopped_early = True
                    log.error(f"fail_fast: job #{job.idx} failed; {len(queue)} jobs not started")
    if stop.signum is not None:
        # the sweeper prints the summary on its way out; the exit code is 128 + the signal
        raise Interrupted(stop.signum)
    return results.in_job_order()


def _hand_out(
    starter: _ForkStarter | _SpawnStarter,
    stop: _StopSignals,
    workers: list[_Worker],
    job_overrides: Sequence[Sequence[str]],
    queue: collections.deque,
    n_jobs: int,
    initial_job_idx: int,
    gpu_sets: Sequence[Sequence[str]] | None,
) -> None:
    """Give queued rows to idle workers, forking new ones while there are fewer than n_jobs."""
    while queue:
        worker = next((w for w in workers if w.job is None and not w.leaving), None)
        if worker is None:
            if len(workers) >= n_jobs:  # a leaving worker keeps its place (and GPUs) until it is gone
                return
            worker = _start_worker(starter, stop, workers, gpu_sets)
            workers.append(worker)
        offset = queue.popleft()
        overrides = job_overrides[offset]
        idx = initial_job_idx + offset
        if not _send(worker.process.conn, (list(overrides), idx)):
            worker.leaving = True  # it died while idle; the row goes to another worker
            queue.appendleft(offset)
            continue
        _log_start(idx, offset, len(job_overrides), overrides)
        worker.job = _Job(offset, idx, list(overrides))


def _start_worker(
    starter: _ForkStarter | _SpawnStarter,
    stop: _StopSignals,
    workers: Sequence[_Worker],
    gpu_sets: Sequence[Sequence[str]] | None,
) -> _Worker:
    taken = {w.place for w in workers}
    place = next(p for p in range(len(workers) + 1) if p not in taken)
    gpus = list(gpu_sets[place]) if gpu_sets else None
    # the new worker must not hold the other workers' pipes open (their end would never show)
    inherited = stop.fds() + [fd for w in workers for fd in w.process.fds()]
    return _Worker(starter.start(stop.defaults, inherited, gpus), place)


def _send(conn: Connection, obj: Any) -> bool:
    try:
        conn.send_bytes(pickle.dumps(obj))
        return True
    except OSError:  # the worker is gone
        return False


def _dismiss(worker: _Worker) -> None:
    """Tell an idle worker to exit."""
    if worker.job is None and not worker.leaving:
        worker.leaving = True
        _send(worker.process.conn, None)


def _dismiss_idle(workers: Sequence[_Worker], keep: bool) -> None:
    if not keep:
        for worker in workers:
            _dismiss(worker)


def _waitables(stop: _StopSignals, workers: Sequence[_Worker]) -> list:
    out: list = [stop.wake_r]
    for worker in workers:
        if worker.reading:
            out.append(worker.process.conn)
        if worker.process.sentinel is not None:
            out.append(worker.process.sentinel)
    return out


def _forward_timeout(stop: _StopSignals, workers: Sequence[_Worker]) -> float | None:
    if stop.signum is None or all(w.job is None or w.job.forwarded for w in workers):
        return None
    return max(0.0, stop.since + FORWARD_AFTER_S - time.monotonic())


def _forward_stop(stop: _StopSignals, workers: Sequence[_Worker]) -> None:
    """Pass the stop on to running jobs that did not get it themselves (``kill`` of this
    process only): SIGINT as SIGINT, anything else as SIGTERM."""
    if stop.signum is None or time.monotonic() < stop.since + FORWARD_AFTER_S:
        return
    signum = signal.SIGINT if stop.signum == signal.SIGINT else signal.SIGTERM
    for worker in workers:
        if worker.job is None or worker.job.forwarded:
            continue
        if not worker.process.stopped.value:
            worker.process.kill(signum)
        worker.job.forwarded = True


def _collect(runner: JobRunner, worker: _Worker, ready: Sequence[Any], stopping: bool) -> tuple[tuple | None, bool]:
    """Read what the worker sent and see whether it has ended: (the job that ended and its
    JobReturn, or None; whether the worker is gone)."""
    if worker.reading and worker.process.conn in ready:
        _receive(worker)
    ended = _worker_ended(worker, ready)
    exitcode = worker.process.reap() if ended else 0
    finished = None
    job = worker.job
    if job is not None and (job.message is not None or ended):
        worker.job = None
        worker.done += 1
        # after anything but a plain end the worker exits by itself (see _worker_main)
        worker.leaving = worker.leaving or job.message is None or job.message[0] != "done"
        finished = (job, _job_return(runner, job, exitcode, stopping))
    if ended:
        worker.process.close()
    return finished, ended


def _worker_ended(worker: _Worker, ready: Sequence[Any]) -> bool:
    sentinel = worker.process.sentinel
    if sentinel is None:  # no pidfd: the pipe's end is the process's end
        return not worker.reading
    if sentinel not in ready:
        return False
    if worker.reading and worker.job is not None and worker.job.message is None and worker.process.conn.poll(0):
        _receive(worker)  # sent just before it ended
    return True


def _receive(worker: _Worker) -> None:
    try:
        data = worker.process.conn.recv_bytes()
    except (EOFError, OSError):
        worker.reading = False
        return
    try:
        message = pickle.loads(data)
    except Exception as exc:  # the result arrived but cannot be unpickled here
        message = ("error", f"the job's result could not be read by the sweep process: {exc!r}\n")
    if worker.job is not None and worker.job.message is None:
        worker.job.message = message


def _job_return(runner: JobRunner, job: _Job, exitcode: int, stopping: bool) -> JobReturn:
    """The job's JobReturn: the one its process sent, or a FAILED one when there is none, with
    the job's record (if it has one) ended to match."""
    message = job.message
    kind = message[0] if message else None
    if message and kind == "done":
        return message[1]
    if job.message:
        status, reason, details = _message_verdict(job.message)
    else:
        status, reason = _death_verdict(exitcode, stopping)
        details = []
    run_dir = _run_dir(runner, job.overrides)
    if run_dir is not None and (run_dir / records.RUN_FILE).exists():
        if not job.message:
            details.append(_output_tail(run_dir))
        _end_record(run_dir, status, reason, details)
    if kind != "interrupted":
        log.error(f"#{job.idx} : {reason}")
    return JobReturn(overrides=job.overrides, status=JobStatus.FAILED, _return_value=JobLost(reason))


def _message_verdict(message: tuple) -> tuple[str, str, list[str]]:
    """(status, reason, details) of a job that ended without a JobReturn but said why."""
    if message[0] == "interrupted":
        return RunStatus.INTERRUPTED, f"the job was interrupted ({_signal_name(message[1])})", []
    return RunStatus.FAILED, "the job ended with an exception that Hydra does not catch", [message[1]]


def _death_verdict(exitcode: int, stopping: bool) -> tuple[str, str]:
    """(status, reason) of a job whose process ended without a word."""
    if exitcode < 0:
        name = _signal_name(-exitcode)
        if stopping and -exitcode in STOP_SIGNALS:
            return RunStatus.INTERRUPTED, f"the job's process was stopped by {name}"
        return RunStatus.KILLED, f"the job's process died with {name}"
    if stopping and exitcode - 128 in STOP_SIGNALS:
        return RunStatus.INTERRUPTED, f"the job's process was stopped by {_signal_name(exitcode - 128)}"
    return RunStatus.FAILED, f"the job's process exited with exit code {exitcode} before the job ended"


def _run_dir(runner: JobRunner, overrides: Sequence[str]) -> Path | None:
    """The record folder of a sem job; None for any other Hydra app."""
    experiment = getattr(runner.task_function, "experiment", None)
    row = job_row(overrides)
    if experiment is None or row is None:
        return None
    return experiment.store_dir(runner.config.sem.storage) / row["global_id"]


def _output_tail(run_dir: Path, lines: int = OUTPUT_TAIL_LINES) -> str:
    path = run_dir / records.COUT_FILE
    _wait_until_still(path)
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return f"({records.COUT_FILE} could not be read)"
    tail = text.splitlines(keepends=True)[-lines:]
    if not tail:
        return f"({records.COUT_FILE} is empty)"
    return f"last {len(tail)} lines of {records.COUT_FILE}:\n" + "".join(tail)


def _wait_until_still(path: Path, quiet_s: float = 0.1, limit_s: float = 2.0) -> None:
    """Output is copied to cout.txt by a process of its own (sem_core.stdio), which may still
    be writing a dead job's last lines: wait until the file stops growing (bounded)."""
    deadline = time.monotonic() + limit_s
    size = -1
    while time.monotonic() < deadline:
        try:
            now = path.stat().st_size
        except OSError:
            return
        if now == size:
            return
        size = now
        time.sleep(quiet_s)


def _end_record(run_dir: Path, status: str, reason: str, details: Sequence[str]) -> None:
    from sem_core.slurm.reconcile import write_verdict

    try:
        write_verdict(run_dir, status, reason, details=details)
    except Exception as exc:  # one unreadable record must not stop the sweep
        log.error(f"could not end the record in {run_dir}: {exc}")
