"""The live run: metric points and output reach the observers exactly once, in order."""

import sys
import time

import pytest

from sem_core.observers.base import RunObserver
from sem_core.run import Run


class Recorder(RunObserver):
    def __init__(self):
        self.points = {}
        self.out = []
        self.events = []

    def started_event(self, *args, **kwargs):
        self.events.append("started")

    def log_metrics(self, metrics_by_name, info):
        for name, series in metrics_by_name.items():
            self.points.setdefault(name, []).extend(zip(series["steps"], series["values"]))

    def heartbeat_event(self, info, captured_out, beat_time, result):
        self.out.append(captured_out)

    def completed_event(self, stop_time, result):
        self.events.append(("completed", result))

    def failed_event(self, fail_time, fail_trace):
        self.events.append(("failed", "".join(fail_trace)))


def make_run(observer, interval=0.001):
    return Run(
        global_id="g",
        config={},
        ex_info={},
        host_info={},
        command="main",
        meta_info={},
        observers=[observer],
        heartbeat_interval=interval,
    )


def test_points_logged_during_heartbeats_arrive_once_in_order():
    rec = Recorder()
    run = make_run(rec)
    run.start()
    for i in range(50_000):
        run.log_scalar("a", i)
        if i % 2:
            run.log_scalar("b", -i, step=i)
    print("hello from the job")
    run.complete(7)
    assert rec.points["a"] == [(i, i) for i in range(50_000)]
    assert rec.points["b"] == [(i, -i) for i in range(1, 50_000, 2)]
    assert "hello from the job\n" in "".join(rec.out)
    assert rec.events == ["started", ("completed", 7)]
    assert not isinstance(sys.stdout, type(run)) and "Tee" not in type(sys.stdout).__name__


def test_numpy_values_become_python_numbers():
    np = pytest.importorskip("numpy")
    rec = Recorder()
    run = make_run(rec, interval=60)
    run.start()
    run.log_scalar("x", np.float32(0.5))
    run.log_scalar("x", np.int64(3))
    run.complete(None)
    assert rec.points["x"] == [(0, 0.5), (1, 3)]
    assert all(type(v) in (int, float) for _, v in rec.points["x"])


def test_default_steps_continue_from_the_step_before_across_heartbeats():
    np = pytest.importorskip("numpy")
    rec = Recorder()
    run = make_run(rec, interval=60)
    run.start()
    run.log_scalar("a", 0)
    run.log_scalar("a", 1, step=10)
    run.log_scalar("a", 2)
    run.heartbeat()
    run.log_scalar("a", 3)
    run.log_scalar("a", 4, step=np.int64(20))
    run.heartbeat()
    run.log_scalar("a", 5)
    run.log_scalar("b", 6, step=2.5)
    run.log_scalar("b", 7)
    with pytest.raises(TypeError, match="a step must be a number, got str '3'"):
        run.log_scalar("a", 8, step="3")
    run.complete(None)
    assert rec.points["a"] == [(0, 0), (10, 1), (11, 2), (12, 3), (20, 4), (21, 5)]
    assert type(rec.points["a"][4][0]) is int
    assert rec.points["b"] == [(2.5, 6), (3.5, 7)]


def test_failure_records_the_traceback():
    rec = Recorder()
    run = make_run(rec, interval=60)
    run.start()
    try:
        raise KeyError("missing")
    except KeyError as exc:
        run.fail(exc)
    kind, trace = rec.events[-1]
    assert kind == "failed" and "KeyError: 'missing'" in trace and "Traceback" in trace


class Terminated(Exception):
    pass


@pytest.fixture
def raising_sigterm_handler():
    """A model's own SIGTERM handler that raises (as training frameworks install)."""
    import signal

    def raise_terminated(signum, frame):
        raise Terminated("SIGTERM")

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    yield
    signal.signal(signal.SIGTERM, previous)


class SignalledRecorder(Recorder):
    """Receives a SIGTERM while the run ends - in the last flush and again in the final write,
    as when srun forwards Slurm's SIGTERM twice."""

    holds_the_record = True

    def __init__(self):
        super().__init__()
        self.ending = False

    def heartbeat_event(self, info, captured_out, beat_time, result):
        super().heartbeat_event(info, captured_out, beat_time, result)
        if self.ending:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGTERM)

    def failed_event(self, fail_time, fail_trace):
        import os
        import signal

        os.kill(os.getpid(), signal.SIGTERM)
        super().failed_event(fail_time, fail_trace)


def test_a_signal_while_the_run_ends_does_not_cost_the_run_its_record(raising_sigterm_handler):
    rec = SignalledRecorder()
    run = make_run(rec, interval=60)
    run.start()
    rec.ending = True
    with pytest.raises(Terminated):  # delivered, but only once the record is written
        run.fail(ValueError("the model's own error"))
    assert rec.events[-1][0] == "failed" and "ValueError: the model's own error" in rec.events[-1][1]
    assert run.recorded and run.status == "FAILED"


def test_signals_held_delivers_each_held_signal_once_after_the_body(raising_sigterm_handler):
    import os
    import signal

    from sem_core.signals import signals_held

    done = []
    with pytest.raises(Terminated), signals_held():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        done.append("body finished")
    assert done == ["body finished"]
    assert signal.getsignal(signal.SIGTERM).__name__ == "raise_terminated"  # the model's handler is back


def test_ctrl_c_pressed_twice_while_signals_are_held_stops_at_once():
    import os
    import signal

    from sem_core.signals import signals_held

    reached = []
    with pytest.raises(KeyboardInterrupt), signals_held():
        os.kill(os.getpid(), signal.SIGINT)
        reached.append("after one Ctrl-C")  # held
        os.kill(os.getpid(), signal.SIGINT)
        reached.append("after two")  # never: the second one stops the body
    assert reached == ["after one Ctrl-C"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


class FlakyRecord(Recorder):
    """A record holder whose writes fail while ``failing`` is set (a disk full for a while)."""

    holds_the_record = True

    def __init__(self):
        super().__init__()
        self.failing = False
        self.beats = 0

    def log_metrics(self, metrics_by_name, info):
        if self.failing:
            raise OSError(28, "No space left on device")
        super().log_metrics(metrics_by_name, info)

    def heartbeat_event(self, info, captured_out, beat_time, result):
        if self.failing:
            raise RuntimeError("an observer bug, not only OSError")
        self.beats += 1
        super().heartbeat_event(info, captured_out, beat_time, result)


def wait_until(predicate, timeout=60.0):
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "hang guard"
        time.sleep(0.01)


def test_a_failing_flush_keeps_its_data_and_the_heartbeat_goes_on():
    rec = FlakyRecord()
    run = make_run(rec, interval=0.01)
    run.start()
    run.log_scalar("a", 0)
    wait_until(lambda: rec.points.get("a"))
    rec.failing = True
    for i in range(1, 100):
        run.log_scalar("a", i)
    print("written while the record failed")
    beats = rec.beats
    import time

    time.sleep(0.2)  # many beats fail meanwhile; none may kill the heartbeat thread
    rec.failing = False
    wait_until(lambda: rec.beats > beats)  # the same thread beats again
    run.complete(1)
    assert rec.points["a"] == [(i, i) for i in range(100)]
    assert "written while the record failed\n" in "".join(rec.out)
    assert rec.events[-1] == ("completed", 1) and run.record_errors == []


def test_a_record_that_refuses_data_for_too_long_stops_the_run_and_bounds_memory(monkeypatch):
    from sem_core import run as run_module

    monkeypatch.setattr(run_module, "MAX_PENDING_POINTS", 1000)
    monkeypatch.setattr(run_module, "FINAL_WRITE_RETRY_S", 0.1)
    rec = FlakyRecord()
    run = make_run(rec, interval=0.01)
    run.start()
    rec.failing = True
    with pytest.raises(run_module.RecordError):
        # stopped by the heartbeat thread well before this ends; bounded so that a failure of
        # the mechanism fails this test instead of filling the machine's memory
        for i in range(3_000_000):
            run.log_scalar("a", i)
            if i % 10_000 == 0:
                time.sleep(0.001)  # the heartbeat thread gets its turn even on a busy machine
    # three items per point not drained yet
    assert sum(map(len, run._points.values())) // 3 + run._pending[id(rec)].points < 10**7
    rec.failing = False
    run.fail(run_module.RecordError("stopped"))
    kind, trace = rec.events[-1]
    assert kind == "failed" and "metric points could not be written" in trace
