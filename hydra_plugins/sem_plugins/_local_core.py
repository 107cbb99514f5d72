"""The work of ``LocalLauncher`` (kept out of the plugin module Hydra imports at start-up).

With ``n_jobs`` > 1 every job runs in a process of its own, at most ``n_jobs`` at a time. A job
that ends its process (``os._exit``, a segfault, the OOM killer's SIGKILL) takes nothing else
with it: the sweep process ends the job's record with the exit code or signal and the last
lines of its output, and the next row starts in a fresh process. A process per job also keeps
the memory one job leaked away from the next.

Stopping: the first SIGINT, SIGTERM or SIGHUP starts no new job and interrupts the running
ones (their records end INTERRUPTED); the sweep then prints its summary and exits 128 + the
signal number. A second one exits at once. A job's process is interrupted too when the sweep
process dies, even by SIGKILL.
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
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, List, Optional, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, run_job, setup_globals
from omegaconf import open_dict

from sem_core import records
from sem_core.signals import Interrupted, interrupt_exit_code
from sem_core.sweep import job_label, job_row

log = logging.getLogger(__name__)

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
# A Ctrl-C reaches every job's process directly (same process group); `kill PID` reaches only
# the sweep process. A job that has not seen the stop signal itself this long after the sweep
# process did gets it forwarded: one signal per job, so that the job's own handling of a
# second signal (stop at once, record or not) is kept for a real second Ctrl-C.
FORWARD_AFTER_S = 1.0
OUTPUT_TAIL_LINES = 20
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class JobError(Exception):
    """A worker job's exception that could not travel back by pickle, with its traceback."""


class JobLost(Exception):
    """A job whose process ended without handing back its result: it died, was interrupted,
    or raised what Hydra does not catch (SystemExit)."""


def _run_one(launcher, overrides: Sequence[str], idx: int) -> JobReturn:
    sweep_config = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = idx
        sweep_config.hydra.job.num = idx
    return run_job(
        hydra_context=launcher.hydra_context,
        task_function=launcher.task_function,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


def launch(launcher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> List[JobReturn]:
    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    Path(str(launcher.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    n_jobs = launcher.n_jobs or os.cpu_count() or 1
    if n_jobs == 1:
        log.info(f"Launching {len(job_overrides)} jobs in this process")
        return _launch_in_process(launcher, job_overrides, initial_job_idx)
    log.info(f"Launching {len(job_overrides)} jobs, {n_jobs} at a time, each in its own process")
    return _launch_in_processes(launcher, job_overrides, initial_job_idx, n_jobs)


def _launch_in_process(launcher, job_overrides, initial_job_idx) -> List[JobReturn]:
    runs: List[JobReturn] = []
    for offset, overrides in enumerate(job_overrides):
        idx = initial_job_idx + offset
        log.info(f"\t#{idx} : {job_label(overrides)}")
        ret = _run_one(launcher, overrides, idx)
        runs.append(ret)
        configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
        if launcher.fail_fast and ret.status == JobStatus.FAILED:
            launcher.stopped_early = True
            log.error(f"fail_fast: job #{idx} failed; {len(job_overrides) - offset - 1} jobs not started")
            break
    return runs


def _portable(ret: JobReturn) -> JobReturn:
    """Make a JobReturn safe to send back: an unpicklable result or exception is replaced
    by its repr / formatted traceback instead of aborting the sweep."""
    value = ret._return_value
    try:
        pickle.dumps(value)
    except Exception:
        if isinstance(value, BaseException):
            text = "".join(traceback.format_exception(type(value), value, value.__traceback__))
            ret._return_value = JobError(text)
        else:
            ret._return_value = f"<unpicklable {type(value).__name__}: {value!r:.200}>"
    return ret


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


# -- inside a job's process -----------------------------------------------------------------
def _child_main(
    launcher,
    overrides: Sequence[str],
    idx: int,
    conn: Connection,
    stopped: Any,
    take: Sequence[int],
    parent_pid: int,
    mask: Optional[set],
) -> int:
    """Run one job and send how it ended to the sweep process; return the exit code.

    Messages: ``("done", JobReturn)``; ``("interrupted", signum)`` when a stop signal ended
    the job; ``("error", traceback)`` for what Hydra's run_job does not catch."""
    code = 0
    try:
        _install_stop_handlers(take, stopped)
        _die_with_parent(parent_pid)
        if mask is not None:  # forked with the stop signals blocked: handlers are in place now
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        message: tuple = ("done", _portable(_run_one(launcher, overrides, idx)))
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        message, code = ("interrupted", signum), interrupt_exit_code(exc)
        _abandon(launcher, overrides, exc, message)
    except BaseException as exc:
        message, code = ("error", "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))), 1
        _abandon(launcher, overrides, exc, message)
    # The job has ended (its record too): nothing is left to interrupt, and a late signal
    # (the sweep process dying meanwhile) must not cut the report short.
    for signum in take:
        signal.signal(signum, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    try:
        conn.send_bytes(_dumps(message))
    except Exception:  # the sweep process is gone (second Ctrl-C, kill -9): the record is what counts
        pass
    return code


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


def _abandon(launcher, overrides: Sequence[str], exc: BaseException, message: tuple) -> None:
    """A signal or SystemExit unwound the job past Hydra: its run still ends, here in its own
    process (the sweep process may be gone: kill -9). The run's own ending comes first; if the
    signal came while the run was starting, there is none, and the record is ended as the
    sweep process would end it."""
    lifecycle = getattr(getattr(launcher.task_function, "experiment", None), "lifecycle", None)
    try:
        if lifecycle is not None:
            lifecycle.abandon(exc)
        run_dir = _run_dir(launcher, overrides)
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


def _spawned_job(payload: bytes, overrides: list, idx: int, conn: Connection, stopped: Any, parent_pid: int) -> None:
    """A job's process where fork is not used: nothing is inherited, everything is unpickled."""
    import cloudpickle  # noqa: F401  (the payload was pickled with it; installed with submitit)

    launcher, state = pickle.loads(payload)
    Singleton.set_state(state)
    setup_globals()
    sys.exit(_child_main(launcher, overrides, idx, conn, stopped, STOP_SIGNALS, parent_pid, None))


# -- job processes, seen from the sweep process ---------------------------------------------
class _Forked:
    """A job's process made by ``os.fork``. Not multiprocessing.Process: at exit it joins
    every child, so a second Ctrl-C would wait for jobs that are still writing their records."""

    def __init__(self, pid: int, conn: Connection, stopped: Any) -> None:
        self.pid = pid
        self.conn = conn
        self.stopped = stopped
        self._pidfd: Optional[int] = None
        try:  # readable when the process ends, whoever else holds its pipe open (grandchildren)
            self._pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pass

    @property
    def sentinel(self) -> Optional[int]:
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
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        self.conn.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


class _Spawned:
    """A job's process made by multiprocessing's spawn (platforms without a safe fork)."""

    def __init__(self, process: Any, conn: Connection, stopped: Any) -> None:
        self.process = process
        self.pid = process.pid
        self.conn = conn
        self.stopped = stopped

    @property
    def sentinel(self) -> Optional[int]:
        return self.process.sentinel

    def fds(self) -> list[int]:
        return []

    def reap(self) -> int:
        self.process.join()
        return self.process.exitcode

    def kill(self, signum: int) -> None:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        self.conn.close()
        self.process.close()


class _ForkStarter:
    """Forks a job's process: it inherits the launcher, the ConfigStore rows and the imported
    model file, and starts in milliseconds (Linux)."""

    def __init__(self, launcher) -> None:
        self.launcher = launcher

    def start(self, overrides: list, idx: int, take: Sequence[int], inherited: Sequence[int]) -> _Forked:
        conn_r, conn_w = multiprocessing.Pipe(duplex=False)
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
            conn_r.close()
            conn_w.close()
            raise
        if pid == 0:
            code = 1
            try:
                conn_r.close()
                for fd in inherited:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                code = _child_main(self.launcher, overrides, idx, conn_w, stopped, take, parent_pid, mask)
            except KeyboardInterrupt as exc:
                code = interrupt_exit_code(exc)
            finally:
                os._exit(code)  # never the sweep process's atexit handlers or finally blocks
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        conn_w.close()
        return _Forked(pid, conn_r, stopped)


class _SpawnStarter:
    def __init__(self, launcher) -> None:
        import cloudpickle

        self.context = multiprocessing.get_context("spawn")
        # Hydra's singletons hold OmegaConf resolvers, local functions plain pickle refuses
        self.payload = cloudpickle.dumps((launcher, Singleton.get_state()))

    def start(self, overrides: list, idx: int, take: Sequence[int], inherited: Sequence[int]) -> _Spawned:
        conn_r, conn_w = self.context.Pipe(duplex=False)
        stopped = self.context.RawValue(ctypes.c_byte, 0)
        process = self.context.Process(
            target=_spawned_job,
            args=(self.payload, overrides, idx, conn_w, stopped, os.getpid()),
            name=f"sem-job-{idx}",
        )
        process.start()
        conn_w.close()
        return _Spawned(process, conn_r, stopped)


class _StopSignals:
    """SIGINT/SIGTERM/SIGHUP in the sweep process while jobs run. The first is noted (and
    wakes the wait through a pipe); the second raises ``Interrupted`` at once. Only signals
    handled the default way or by sem (``sem_core.signals``: it raises at the first signal,
    which would leave the jobs behind) are taken; a user's own handler, or SIG_IGN, is left
    alone. Job processes convert the same signals."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self.since = 0.0
        self.defaults: tuple[int, ...] = ()
        self._previous: dict[int, Any] = {}
        self.wake_r, self._wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self._wake_w, False)

    def __enter__(self) -> "_StopSignals":
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
    process: Any  # _Forked | _Spawned
    message: Optional[tuple] = None
    reading: bool = True  # the result pipe is still open
    forwarded: bool = False


def _launch_in_processes(launcher, job_overrides, initial_job_idx, n_jobs) -> List[JobReturn]:
    starter = _ForkStarter(launcher) if sys.platform.startswith("linux") else _SpawnStarter(launcher)
    queue = collections.deque(enumerate(job_overrides))
    results: List[Optional[JobReturn]] = [None] * len(job_overrides)
    running: list[_Job] = []
    with _StopSignals() as stop:
        while True:
            if stop.signum is None and not launcher.stopped_early:
                while queue and len(running) < n_jobs:
                    offset, overrides = queue.popleft()
                    idx = initial_job_idx + offset
                    log.info(f"\t#{idx} : {job_label(overrides)}")
                    inherited = stop.fds() + [fd for job in running for fd in job.process.fds()]
                    process = starter.start(list(overrides), idx, stop.defaults, inherited)
                    running.append(_Job(offset, idx, list(overrides), process))
            if not running:
                break
            _forward_stop(stop, running)
            ready = wait(_waitables(stop, running), timeout=_forward_timeout(stop, running))
            if stop.wake_r in ready:
                stop.drain()
                log.warning(
                    f"{_signal_name(stop.signum)}: no new jobs ({len(queue)} not started); interrupting "
                    f"{len(running)} running jobs (again to stop at once)"
                )
            for job in [j for j in running if _ended(j, ready)]:
                running.remove(job)
                ret = _job_return(launcher, job, job.process.reap(), stopping=stop.signum is not None)
                job.process.close()
                results[job.offset] = ret
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
    return [r for r in results if r is not None]


def _waitables(stop: _StopSignals, running: Sequence[_Job]) -> list:
    out: list = [stop.wake_r]
    for job in running:
        if job.reading:
            out.append(job.process.conn)
        if job.process.sentinel is not None:
            out.append(job.process.sentinel)
    return out


def _forward_timeout(stop: _StopSignals, running: Sequence[_Job]) -> Optional[float]:
    if stop.signum is None or all(job.forwarded for job in running):
        return None
    return max(0.0, stop.since + FORWARD_AFTER_S - time.monotonic())


def _forward_stop(stop: _StopSignals, running: Sequence[_Job]) -> None:
    """Pass the stop on to running jobs that did not get it themselves (``kill`` of this
    process only): SIGINT as SIGINT, anything else as SIGTERM."""
    if stop.signum is None or time.monotonic() < stop.since + FORWARD_AFTER_S:
        return
    signum = signal.SIGINT if stop.signum == signal.SIGINT else signal.SIGTERM
    for job in running:
        if not job.forwarded and not job.process.stopped.value:
            job.process.kill(signum)
        job.forwarded = True


def _ended(job: _Job, ready: Sequence[Any]) -> bool:
    """Read what the job sent; True once its process has ended."""
    conn = job.process.conn
    if job.reading and conn in ready:
        _receive(job)
    sentinel = job.process.sentinel
    if sentinel is None:  # no pidfd: the pipe's end is the process's end
        return not job.reading
    if sentinel not in ready:
        return False
    if job.reading and job.message is None and conn.poll(0):  # sent just before it ended
        _receive(job)
    return True


def _receive(job: _Job) -> None:
    try:
        data = job.process.conn.recv_bytes()
    except (EOFError, OSError):
        job.reading = False
        return
    try:
        job.message = pickle.loads(data)
    except Exception as exc:  # the result arrived but cannot be unpickled here
        job.message = ("error", f"the job's result could not be read by the sweep process: {exc!r}\n")


def _job_return(launcher, job: _Job, exitcode: int, stopping: bool) -> JobReturn:
    """The job's JobReturn: the one its process sent, or a FAILED one when there is none, with
    the job's record (if it has one) ended to match."""
    kind = job.message[0] if job.message else None
    if kind == "done":
        return job.message[1]
    if job.message:
        status, reason, details = _message_verdict(job.message)
    else:
        status, reason = _death_verdict(exitcode, stopping)
        details = []
    run_dir = _run_dir(launcher, job.overrides)
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
        return "INTERRUPTED", f"the job was interrupted ({_signal_name(message[1])})", []
    return "FAILED", "the job ended with an exception that Hydra does not catch", [message[1]]


def _death_verdict(exitcode: int, stopping: bool) -> tuple[str, str]:
    """(status, reason) of a job whose process ended without a word."""
    if exitcode < 0:
        name = _signal_name(-exitcode)
        if stopping and -exitcode in STOP_SIGNALS:
            return "INTERRUPTED", f"the job's process was stopped by {name}"
        return "KILLED", f"the job's process died with {name}"
    if stopping and exitcode - 128 in STOP_SIGNALS:
        return "INTERRUPTED", f"the job's process was stopped by {_signal_name(exitcode - 128)}"
    return "FAILED", f"the job's process exited with exit code {exitcode} before the job ended"


def _run_dir(launcher, overrides: Sequence[str]) -> Optional[Path]:
    """The record folder of a sem job; None for any other Hydra app."""
    experiment = getattr(launcher.task_function, "experiment", None)
    row = job_row(overrides)
    if experiment is None or row is None:
        return None
    return experiment.store_dir(launcher.config.sem.storage) / row["global_id"]


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
