"""Races between threads of the driver, and between a worker's death and what it asked for (review of issue 16)."""

from __future__ import annotations

import collections
import os
import threading
import time

import numpy as np
import pytest

import nexus
from nexus.cluster import store
from nexus.cluster.config import ClusterConfig
from nexus.cluster.head.lock import TableLock
from nexus.cluster.node.outbox import Outbox
from nexus.core.mailbox import MailboxSpec, OverflowPolicy

MiB = 1 << 20


def _slow(monkeypatch: pytest.MonkeyPatch, method: str, seconds: float) -> None:
    """The spill folder's ``method`` takes ``seconds`` first: a slow disk, so that threads meet in the middle."""
    real = getattr(store.SpillFolder, method)

    def slow(self, *args):
        time.sleep(seconds)
        return real(self, *args)

    monkeypatch.setattr(store.SpillFolder, method, slow)


def test_two_readers_of_one_spilled_object_both_get_it(monkeypatch):
    _slow(monkeypatch, "write", 0.5)
    nexus.init(num_cpus=1, object_store_memory=64 * MiB)
    try:
        a = nexus.put(np.full(20 * MiB, 1, dtype=np.uint8))
        b, c = (nexus.put(np.full(20 * MiB, k, dtype=np.uint8)) for k in (2, 3))
        d = nexus.put(np.full(20 * MiB, 4, dtype=np.uint8))  # a goes to disk
        del d  # room for one copy of a: the slower reader finds it restored by the other
        got = {}

        def read(key):
            try:
                got[key] = int(nexus.get(a, timeout=60)[0])
            except Exception as exc:
                got[key] = repr(exc)

        readers = [threading.Thread(target=read, args=(k,)) for k in ("first", "second")]
        for t in readers:
            t.start()
        for t in readers:
            t.join(60)
        assert got == {"first": 1, "second": 1}
        assert int(nexus.get(b)[0]) == 2 and int(nexus.get(c)[0]) == 3
    finally:
        nexus.shutdown()


def test_an_allocation_waits_for_another_threads_spill_rather_than_failing(monkeypatch):
    _slow(monkeypatch, "write", 1.0)
    nexus.init(num_cpus=1, object_store_memory=64 * MiB)
    try:
        kept = [nexus.put(np.ones(60 * MiB, dtype=np.uint8))]
        outcome = {}

        def put(key):
            try:
                kept.append(nexus.put(np.ones(30 * MiB, dtype=np.uint8)))
                outcome[key] = "stored"
            except Exception as exc:
                outcome[key] = repr(exc)

        first = threading.Thread(target=put, args=("first",))
        first.start()
        time.sleep(0.3)  # the first put is writing the 60 MiB object to disk
        second = threading.Thread(target=put, args=("second",))
        second.start()
        first.join(60)
        second.join(60)
        assert outcome == {"first": "stored", "second": "stored"}
    finally:
        nexus.shutdown()


@nexus.remote
def read_first(refs):
    start = time.monotonic()
    try:
        return nexus.get(refs[0], timeout=20).nbytes
    except Exception as exc:
        return f"{type(exc).__name__} after {time.monotonic() - start:.1f} s"


def test_a_worker_asking_for_a_spilled_object_that_cannot_come_back_is_told_at_once():
    nexus.init(num_cpus=1, object_store_memory=64 * MiB)
    try:
        a = nexus.put(np.ones(30 * MiB, dtype=np.uint8))
        b = nexus.put(np.ones(30 * MiB, dtype=np.uint8))
        views = [nexus.get(b)]  # pinned while read
        c = nexus.put(np.ones(30 * MiB, dtype=np.uint8))  # a goes to disk
        views.append(nexus.get(c))  # nothing left to spill for a to come back
        answer = nexus.get(read_first.remote([a]), timeout=60)
        assert isinstance(answer, str) and answer.startswith("ObjectStoreFullError") and float(answer.split()[2]) < 10, answer
        del views
    finally:
        nexus.shutdown()


@nexus.remote
class _Gate:
    def __init__(self):
        self.seen = None

    def hold(self, seconds, release=None):
        if release is None:
            time.sleep(seconds)
            return
        deadline = time.monotonic() + seconds  # until the test says so (a failed test must not hold it for ever)
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.005)

    def take(self, data):
        self.seen = int(data[0])

    def seen_value(self):
        return self.seen


@nexus.remote
def call_then_linger(gate, calling):
    open(calling, "w").close()
    gate.take.remote(np.full(8 * MiB, 7, dtype=np.uint8))  # waits at the driver for room in the mailbox
    time.sleep(60)


def test_a_bounded_call_of_a_worker_that_died_waiting_is_dropped_not_run_on_reused_memory(tmp_path):
    nexus.init(num_cpus=1, object_store_memory=64 * MiB)
    try:
        gate = _Gate.options(mailbox=MailboxSpec.bounded(1, OverflowPolicy.BLOCK)).remote()
        nexus.get(gate.seen_value.remote())
        release, calling = tmp_path / "release", tmp_path / "calling"
        held = gate.hold.remote(60, str(release))  # the mailbox is full until the test releases it
        caller = call_then_linger.remote(gate, str(calling))
        deadline = time.monotonic() + 60
        while not calling.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(1.0)  # the caller's call is at the driver, waiting for room
        nexus.cancel(caller, force=True)  # its worker dies: its argument's region comes back
        nexus.wait([caller], timeout=30)  # (settled once the head has seen that worker die: not a guess at how long)
        other = nexus.put(np.full(8 * MiB, 9, dtype=np.uint8))  # may take that region
        release.touch()
        nexus.get(held, timeout=30)
        time.sleep(0.5)
        assert nexus.get(gate.seen_value.remote(), timeout=30) is None, "the dead worker's call was not run"
        assert int(nexus.get(other)[0]) == 9, "the region reused is not written over"
    finally:
        nexus.shutdown()  # (a region freed twice made shutdown fail)


@nexus.remote
def call_once(gate):
    gate.take.remote(np.zeros(1, dtype=np.uint8))
    return 1


def test_shutdown_does_not_wait_for_bounded_calls_waiting_for_room():
    nexus.init(num_cpus=2)
    gate = _Gate.options(mailbox=MailboxSpec.bounded(1, OverflowPolicy.BLOCK)).remote()
    gate.hold.remote(60)
    [call_once.remote(gate) for _ in range(2)]
    time.sleep(1.5)
    start = time.monotonic()
    nexus.shutdown()
    assert time.monotonic() - start < 5, "shutdown waited for the callers' waits"


class _Channel:
    room = True

    def try_send(self, data):
        return self.room


class _Link:
    def __init__(self):
        self.unsent = collections.deque()
        self.send_lock = threading.Lock()
        self.conn = _Channel()
        self.alive = True
        self.name = "worker-1"
        self.push_queued = False


def test_a_message_queued_while_another_thread_finishes_sending_is_retried():
    """The outbox's logic, with a stand-in channel: one thread sends the last message as another finds no room."""
    at_the_end, go_on = threading.Event(), threading.Event()

    class PausingSet(set):
        def discard(self, item):
            if threading.current_thread().name == "receiver":
                at_the_end.set()
                go_on.wait(10)
            super().discard(item)

    outbox = Outbox(TableLock(), ClusterConfig(), lambda: None, print)
    outbox.backed_up = PausingSet()
    link = _Link()
    link.unsent.append(b"first")
    outbox.backed_up.add(link)
    receiver = threading.Thread(target=outbox.retry, name="receiver")
    receiver.start()  # sends "first", then stops just before it says the channel is no longer backed up
    if at_the_end.wait(2):  # (with the discard under the send lock, the other thread waits there instead)
        link.conn.room = False
        link.unsent.append(b"second")
        outbox.push(link)  # no room for "second"
    go_on.set()
    receiver.join(10)
    link.conn.room = True
    outbox.retry()  # what the receiver does each round while a channel is backed up
    assert list(link.unsent) == [], "the second message is sent once there is room"


@nexus.remote
class _Ticker:
    def __init__(self):
        self.n = 0

    def start(self, me):
        me.step.tell()  # schedules its own next step: it must not wait for room in its own mailbox
        return "scheduled"

    async def start_async(self, me):
        me.step.tell()
        return "scheduled"

    def step(self):
        self.n += 1

    def count(self):
        return self.n


@pytest.mark.parametrize("method", ["start", "start_async"])
def test_a_bounded_actor_calling_itself_does_not_wait_for_its_own_room(method):
    nexus.init(num_cpus=1)
    try:
        ticker = _Ticker.options(mailbox=MailboxSpec.bounded(1, OverflowPolicy.BLOCK)).remote()
        assert nexus.get(getattr(ticker, method).remote(ticker), timeout=30) == "scheduled"
        deadline = time.monotonic() + 30
        while nexus.get(ticker.count.remote(), timeout=30) != 1:
            assert time.monotonic() < deadline, "the step it scheduled never ran"
            time.sleep(0.01)
    finally:
        nexus.shutdown()


@nexus.remote
def _fails():
    raise KeyError("the first")


@nexus.remote
def _sleeps(seconds):
    time.sleep(seconds)
    return seconds


def test_get_of_a_list_raises_the_first_failure_without_waiting_for_the_rest():
    nexus.init(num_cpus=2)
    try:
        failed, slow = _fails.remote(), _sleeps.remote(30)
        with pytest.raises(KeyError):
            nexus.get(failed, timeout=30)  # it has failed by now
        start = time.monotonic()
        with pytest.raises(KeyError):
            nexus.get([failed, slow], timeout=20)
        assert time.monotonic() - start < 10, "the failure was raised at once, as in Ray"
        nexus.cancel(slow, force=True)
    finally:
        nexus.shutdown()
