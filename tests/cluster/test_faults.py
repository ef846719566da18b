"""Fault tolerance: real worker processes die (SIGKILL, os._exit) and every call ends in a defined outcome."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import nexus
from nexus.cluster import api
from nexus.cluster.events import ActorExited, ActorRestarting, ClusterEvent, TaskRetried, WorkerDied
from nexus.core.errors import ActorDiedError, TaskCancelledError, WorkerCrashedError


@pytest.fixture()
def events(cluster):
    seen: list[ClusterEvent] = []
    sub = nexus.event_stream().subscribe(ClusterEvent, seen.append)
    yield seen
    sub.unsubscribe()


@nexus.remote
class Counter:
    def __init__(self):
        self.n = 0

    def incr(self):
        self.n += 1
        return self.n

    def pid(self):
        return os.getpid()

    def exit_once(self, marker):
        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(3)
        return "survived"

    def nap(self, seconds):
        time.sleep(seconds)
        return seconds

    def hold(self, started, release):
        """Mark that it runs, then run until the test touches ``release``; return where it ran."""
        open(started, "w").close()
        _wait_for_file(release)
        return os.getpid()


@nexus.remote
def die_once(marker):
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return "second try"


@nexus.remote
def fail_times(marker, times):
    count = int(open(marker).read()) if os.path.exists(marker) else 0
    with open(marker, "w") as f:
        f.write(str(count + 1))
    if count < times:
        raise ValueError(f"attempt {count + 1}")
    return count + 1


@nexus.remote
def sleeper(seconds, started=None):
    if started is not None:
        open(started, "w").close()  # the test waits for this before it acts on the running task
    time.sleep(seconds)
    return os.getpid()


def _wait_for_file(path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)


@nexus.remote
def pid_of_worker():
    return os.getpid()


def _kill(pid):
    os.kill(pid, signal.SIGKILL)


def _wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_an_actor_restarts_with_fresh_state_until_its_restarts_are_spent(cluster, events):
    counter = Counter.options(max_restarts=2).remote()
    assert nexus.get([counter.incr.remote() for _ in range(3)]) == [1, 2, 3]
    for attempt in (1, 2):
        pid = nexus.get(counter.pid.remote())
        _kill(pid)
        # a call sent before the death is noticed fails (it is not retried); one sent after it waits for the restart
        assert _wait_for(lambda attempt=attempt: any(isinstance(e, ActorRestarting) and e.attempt == attempt for e in events))
        assert nexus.get(counter.incr.remote(), timeout=30) == 1, "the constructor ran again"
        assert nexus.get(counter.pid.remote()) != pid
    _kill(nexus.get(counter.pid.remote()))
    assert _wait_for(lambda: any(isinstance(e, ActorExited) for e in events))
    start = time.monotonic()
    with pytest.raises(ActorDiedError, match="max_restarts"):
        nexus.get(counter.incr.remote(), timeout=30)
    assert time.monotonic() - start < 10, "a dead actor fails calls promptly"
    assert [e.attempt for e in events if isinstance(e, ActorRestarting)] == [1, 2], "restarted exactly max_restarts times"
    exits = [e.reason for e in events if isinstance(e, ActorExited)]
    assert exits and all("restarts (max_restarts) are spent" in reason for reason in exits), exits
    assert len([e for e in events if isinstance(e, WorkerDied) and e.actor == "Counter"]) == 3, "each kill was noticed"


def test_os_exit_in_a_method_restarts_the_actor_and_the_call_fails_or_is_retried(cluster, tmp_path):
    plain = Counter.options(max_restarts=1).remote()
    with pytest.raises(ActorDiedError, match="not retried"):
        nexus.get(plain.exit_once.remote(str(tmp_path / "a")), timeout=30)
    assert nexus.get(plain.incr.remote(), timeout=30) == 1
    retrying = Counter.options(max_restarts=1, max_task_retries=1).remote()
    assert nexus.get(retrying.exit_once.remote(str(tmp_path / "b")), timeout=30) == "survived"


def test_calls_in_flight_are_retried_in_order_after_a_restart(cluster, tmp_path):
    started, release = tmp_path / "started", tmp_path / "release"
    counter = Counter.options(max_restarts=-1, max_task_retries=-1).remote()
    pid = nexus.get(counter.pid.remote())
    slow = counter.hold.remote(str(started), str(release))
    after = [counter.incr.remote() for _ in range(5)]
    try:
        assert _wait_for(started.exists), "the slow call started"
        _kill(pid)  # while it runs, with the others queued behind it
    finally:
        release.touch()  # the retried call, on the new instance, finds it at once
    assert nexus.get(slow, timeout=30) != pid, "the call in flight ran again on the restarted actor"
    assert nexus.get(after, timeout=30) == [1, 2, 3, 4, 5], "retried calls keep their order on the new instance"


def test_a_task_is_retried_when_its_worker_dies(cluster, events, tmp_path):
    assert nexus.get(die_once.remote(str(tmp_path / "m")), timeout=30) == "second try"
    assert _wait_for(lambda: any(isinstance(e, TaskRetried) for e in events))
    with pytest.raises(WorkerCrashedError, match="max_retries"):
        nexus.get(die_once.options(max_retries=0).remote(str(tmp_path / "n")), timeout=30)


def test_retry_exceptions(cluster, tmp_path):
    assert nexus.get(fail_times.options(max_retries=3, retry_exceptions=[ValueError]).remote(str(tmp_path / "a"), 2)) == 3
    with pytest.raises(ValueError, match="attempt 1"):
        nexus.get(fail_times.remote(str(tmp_path / "b"), 2))  # retry_exceptions is off by default
    with pytest.raises(ValueError, match="attempt 2"):
        nexus.get(fail_times.options(max_retries=1, retry_exceptions=True).remote(str(tmp_path / "c"), 5))
    with pytest.raises(ValueError, match="attempt 1"):  # a list names the exceptions to retry
        nexus.get(fail_times.options(max_retries=3, retry_exceptions=[KeyError]).remote(str(tmp_path / "d"), 2))


def test_the_pool_replaces_a_dead_worker(cluster):
    runtime = api._runtime()
    pids = set(nexus.get([sleeper.remote(0.2) for _ in range(4)]))
    victim = next(iter(pids))
    _kill(victim)
    assert _wait_for(lambda: len([w for w in runtime.workers if w.alive and w.link.ready.is_set()]) == runtime.num_cpus)
    after = set(nexus.get([sleeper.remote(0.2) for _ in range(4)], timeout=30))
    assert victim not in after


def test_cancel_interrupts_a_running_task_and_force_kills_its_worker(cluster, tmp_path):
    ref = sleeper.remote(30, str(tmp_path / "first"))
    assert _wait_for((tmp_path / "first").exists), "the task started"
    start = time.monotonic()
    nexus.cancel(ref)
    with pytest.raises(TaskCancelledError):
        nexus.get(ref, timeout=15)
    assert time.monotonic() - start < 10, "the sleep was interrupted"
    runtime = api._runtime()
    before = {w.pid for w in runtime.workers}
    ref = sleeper.remote(30, str(tmp_path / "second"))
    assert _wait_for((tmp_path / "second").exists), "the task started"
    nexus.cancel(ref, force=True)
    with pytest.raises(TaskCancelledError):
        nexus.get(ref, timeout=15)
    assert _wait_for(lambda: len([w for w in runtime.workers if w.alive and w.link.ready.is_set()]) == runtime.num_cpus)
    assert {w.pid for w in runtime.workers} != before, "the worker was killed and replaced"
    assert len(nexus.get([pid_of_worker.remote() for _ in range(4)], timeout=30)) == 4


def test_a_corrupted_message_is_rejected_and_counted(cluster, capfd):
    runtime = api._runtime()
    workers = {w.pid: w.name for w in runtime.workers}
    for w in runtime.workers:  # driver -> worker: the worker drops it and goes on
        w.link.conn.send(b"\x00garbage, not an envelope" * 3)
    pids = nexus.get([pid_of_worker.remote() for _ in range(4)], timeout=30)
    assert len(pids) == 4 and set(pids) <= set(workers), "the workers that got the garbage still run tasks"
    err = ""

    def every_worker_reported():
        nonlocal err
        err += capfd.readouterr().err
        return all(f"nexus {name} (pid {pid}): dropped a malformed message" in err for pid, name in workers.items())

    assert _wait_for(every_worker_reported), f"each worker says it dropped the garbage: {err!r}"
    before = runtime.rejected
    assert nexus.get(_send_garbage.remote(), timeout=30) == "sent"  # worker -> driver
    assert _wait_for(lambda: runtime.rejected > before)
    assert nexus.get(pid_of_worker.remote(), timeout=30) > 0, "the cluster keeps working"


@nexus.remote
def _send_garbage():
    from nexus.cluster import session as context

    context.current().conn.send(b"\xff\xfe not an envelope at all")
    return "sent"


def test_a_new_driver_starts_right_after_one_is_killed():
    script = textwrap.dedent(
        """
        import nexus, sys, time
        nexus.init(num_cpus=1)
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    first = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert first.stdout is not None and first.stdout.readline().strip() == "ready"
    first.send_signal(signal.SIGKILL)
    first.wait()
    first.stdout.close()
    second = textwrap.dedent(
        """
        import nexus
        nexus.init(num_cpus=1)
        @nexus.remote
        def f():
            return 42
        print(nexus.get(f.remote()))
        nexus.shutdown()
        """
    )
    out = subprocess.run([sys.executable, "-c", second], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "42", out.stderr


@nexus.remote
def _put_here(n):
    import numpy as np

    return [nexus.put(np.full(n, 3.0))], os.getpid()


def test_objects_a_worker_made_outlive_it(cluster, events):
    """No object lives only in a worker: values go to the driver or the host's arena as they are made."""
    for n in (10, 1 << 17):  # inline, and in the arena
        box, pid = nexus.get(_put_here.remote(n))
        _kill(pid)
        assert _wait_for(lambda pid=pid: any(isinstance(e, WorkerDied) and e.pid == pid for e in events)), "the death was noticed"
        assert float(nexus.get(box[0], timeout=30).sum()) == 3.0 * n
