"""A cluster survives bad peers and bad endings: corrupt rings, floods of malformed messages, workers that stop
reading or never start, drivers killed with their ZeroMQ folders."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest

import nexus
from nexus.cluster import api
from nexus.cluster.protocol import LogLimiter
from nexus.core.errors import NexusError
from transports.shm import ShmRingTransport

from ..conftest import wait_until

# A script that corrupts the header of the next record in one of a worker's rings, then keeps the cluster busy.
CORRUPT = textwrap.dedent(
    """
    import os, struct, sys, time
    import nexus
    from nexus.cluster import api

    @nexus.remote
    def square(x):
        return x * x

    nexus.init(num_cpus=2)
    assert nexus.get([square.remote(i) for i in range(10)], timeout=30) == [i * i for i in range(10)]
    runtime = api._runtime()
    w = runtime.workers[0].link
    direction, kind = sys.argv[1], sys.argv[2]
    ring = w.conn._in if direction == "up" else w.conn._out  # up: worker -> driver; down: driver -> worker
    with w.send_lock:  # nothing else writes this ring meanwhile (the worker is idle; the driver's sends hold this lock)
        tail = ring.words[8]
        header = (0xFFFFFF00, 0) if kind == "length" else (8, 0xFFFFFFF0)
        struct.pack_into("<II", ring.data, tail % ring.capacity, *header)
        ring.words[8] = tail + 8
    try:  # (the driver's receiver may have seen the record already, and dropped and closed the channel)
        os.eventfd_write(w.conn._wake_in if direction == "up" else w.conn._wake_out, 1)
    except OSError:
        pass
    for _ in range(50):
        assert nexus.get([square.remote(i) for i in range(20)], timeout=60) == [i * i for i in range(20)]
    deadline = time.monotonic() + 60
    while runtime.dropped_channels + (w.proc.poll() is not None) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert nexus.get([square.remote(i) for i in range(20)], timeout=60) == [i * i for i in range(20)]
    alive = [x for x in runtime.workers if x.alive]
    print("dropped", runtime.dropped_channels, "replaced", w.record not in runtime.workers, "alive", len(alive), flush=True)
    nexus.shutdown()
    print("shut down", flush=True)
    """
)


@pytest.mark.parametrize("kind", ["length", "frames"])
@pytest.mark.parametrize("direction", ["up", "down"])
def test_a_corrupt_ring_record_drops_the_channel_and_replaces_its_worker(direction, kind):
    proc = subprocess.run([sys.executable, "-c", CORRUPT, direction, kind], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[-1] == "shut down", proc.stdout
    dropped = 1 if direction == "up" else 0  # a worker whose incoming ring is corrupt leaves by itself
    assert lines[-2] == f"dropped {dropped} replaced True alive 2", proc.stdout
    assert len(proc.stderr.splitlines()) <= 12, f"a few lines, not one per bad read:\n{proc.stderr[:3000]}"
    assert "corrupt" in proc.stderr


@nexus.remote
def _flood(n):
    from nexus.cluster import session as context

    conn = context.current().conn
    for _ in range(n):
        conn.send(b"\xff\xfe not an envelope")
    return "sent"


def test_a_flood_of_malformed_messages_is_counted_and_logged_at_a_bounded_rate(capfd):
    nexus.init(num_cpus=1)
    try:
        runtime = api._runtime()
        assert nexus.get(_flood.remote(5000), timeout=60) == "sent"
        wait_until(lambda: runtime.rejected >= 5000, timeout=60)
        assert nexus.state.summary()["channels"] == {"rejected_messages": runtime.rejected, "dropped": 0}
        assert nexus.get(_flood.remote(0), timeout=30) == "sent", "the cluster goes on"
    finally:
        nexus.shutdown()
    err = capfd.readouterr().err
    assert 1 <= err.count("dropped a malformed message") <= 10, err[:2000]


def test_the_log_limiter_says_how_many_lines_it_left_out(capsys):
    now = [0.0]
    log = LogLimiter(burst=2, period=10.0, clock=lambda: now[0])
    for i in range(5):
        log(f"line {i}")
    now[0] = 10.0
    log("line 5")
    assert capsys.readouterr().err.splitlines() == [
        "line 0",
        "line 1",
        "nexus: ... 3 more like these in the last 10 s were not shown",
        "line 5",
    ]


@nexus.remote
class _Sink:
    def take(self, data):
        return len(data)

    def pid(self):
        return os.getpid()


def test_a_worker_that_stops_reading_does_not_hang_shutdown():
    nexus.init(num_cpus=1)
    try:
        sink = _Sink.remote()
        stopped = nexus.get(sink.pid.remote(), timeout=30)
        os.kill(stopped, signal.SIGSTOP)  # alive, but it reads nothing more: its channel fills up
        runtime = api._runtime()
        ring = runtime.actors[sink._actor_id].worker.link.conn._out
        sent: list[None] = []
        stopped_by: list[BaseException] = []

        def flood():
            try:
                for _ in range(5000):
                    sent.append(sink.take.tell(b"x" * 30_000))
            except BaseException as exc:  # what shutdown told the waiting sender: the test checks it
                stopped_by.append(exc)

        flooder = threading.Thread(target=flood, daemon=True)
        flooder.start()
        wait_until(lambda: ring.capacity - (ring.words[8] - ring.words[0]) < 64 * 30_000, timeout=60)  # full
        assert flooder.is_alive() and len(sent) < 5000, "the sender waits for room"
    finally:
        start = time.monotonic()
        nexus.shutdown()
        took = time.monotonic() - start
    assert took < 30, f"shutdown took {took:.1f} s"
    flooder.join(30)
    assert not flooder.is_alive(), "the waiting sender was let go"
    assert len(stopped_by) == 1 and isinstance(stopped_by[0], (NexusError, RuntimeError)), stopped_by
    with pytest.raises(ProcessLookupError):
        os.kill(stopped, 0)


class _CannotAttach(ShmRingTransport):
    """A transport whose workers fail as they start (as with a broken environment)."""

    @classmethod
    def attach(cls, spec):
        raise RuntimeError("this worker cannot attach to its channel")


def test_workers_that_exit_as_they_start_fail_init_at_once_without_a_storm_of_replacements(capfd):
    start = time.monotonic()
    with pytest.raises(NexusError, match=r"worker-\d+ exited with code 1 as it started"):
        nexus.init(num_cpus=2, transport=_CannotAttach())
    assert time.monotonic() - start < 30, "not the 60 s of waiting for a hello"
    assert not nexus.is_initialized()
    started = capfd.readouterr().err.count("RuntimeError: this worker cannot attach")
    assert 2 <= started <= 2 + 3, "the two, and at most 3 replacements"


def _zmq_folders(pid):
    return glob.glob(os.path.join(tempfile.gettempdir(), f"nexus-{pid}-zmq-*"))


ZMQ_DRIVER = textwrap.dedent(
    """
    import os, nexus, time
    nexus.init(num_cpus=2, transport="zmq")
    runtime = nexus.cluster.api._runtime()
    print(" ".join(str(w.pid) for w in runtime.every_worker), flush=True)
    time.sleep(600)
    """
)


def _start_zmq_driver():
    proc = subprocess.Popen([sys.executable, "-c", ZMQ_DRIVER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    workers = [int(p) for p in proc.stdout.readline().split()]
    assert workers and _zmq_folders(proc.pid), "a running zmq cluster has its socket folder"
    return proc, workers


def test_a_killed_zmq_driver_leaves_no_socket_folder():
    proc, _ = _start_zmq_driver()
    proc.kill()  # its workers notice and clean up
    proc.wait()
    proc.stdout.close()
    shm = lambda: [n for n in os.listdir("/dev/shm") if n.startswith(f"nexus-{proc.pid}-")]  # noqa: E731
    wait_until(lambda: not _zmq_folders(proc.pid) and not shm(), timeout=30)
    # Killed together with its workers, nobody cleans up: the next init does.
    proc, workers = _start_zmq_driver()
    for pid in [*workers, proc.pid]:
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    wait_until(lambda: all(not os.path.exists(f"/proc/{pid}") or _zombie(pid) for pid in workers), timeout=30)
    assert _zmq_folders(proc.pid)
    nexus.init(num_cpus=1)
    nexus.shutdown()
    assert not _zmq_folders(proc.pid), "the janitor removed the dead cluster's socket folder"


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_ref_dropped_on_another_thread_while_the_lock_is_held_does_not_wait_for_it():
    # A finalizer runs wherever the garbage collector does, for instance in a thread that another one, holding the
    # driver's lock, is starting and waits for: a finalizer that waited for the lock deadlocked the driver.
    nexus.init(num_cpus=1)
    try:
        runtime = api._runtime()
        ref = nexus.put(b"x" * 100)
        oid = ref.id
        holder = [ref]
        del ref
        dropper = threading.Thread(target=holder.clear)  # the last ref dies on this thread
        with runtime.lock:
            dropper.start()
            dropper.join(10)
            assert not dropper.is_alive(), "the finalizer waited for the lock"
            assert oid in runtime.objects.entries, "counted later, not inside the locked section"
        wait_until(lambda: oid not in runtime.objects.entries, timeout=30)
    finally:
        nexus.shutdown()


def test_an_actor_is_reported_exited_once_however_many_calls_it_gets_afterwards():
    from nexus.cluster.events import ActorExited
    from nexus.core.errors import ActorDiedError

    nexus.init(num_cpus=1)
    try:
        seen: list[ActorExited] = []
        subscription = nexus.event_stream().subscribe(ActorExited, seen.append)
        sink = _Sink.remote()
        assert nexus.get(sink.pid.remote(), timeout=30) > 0
        nexus.kill(sink)
        for _ in range(3):
            with pytest.raises(ActorDiedError):
                nexus.get(sink.pid.remote(), timeout=30)
        wait_until(lambda: seen, timeout=30)
        assert len(seen) == 1, seen
        subscription.unsubscribe()
    finally:
        nexus.shutdown()
