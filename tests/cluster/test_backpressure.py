"""Back-pressure: bounded actor mailboxes (the core's MailboxSpec) and a bounded task queue at the driver."""

from __future__ import annotations

import os
import threading
import time

import pytest

import nexus
from nexus.cluster import api
from nexus.cluster.events import CallDropped
from nexus.core.errors import MailboxFullError
from nexus.core.mailbox import MailboxSpec, OverflowPolicy


def _wait_for_file(path, timeout=60.0):
    deadline = time.monotonic() + timeout  # a failed test must not hold a worker for ever
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)


@nexus.remote
class Slow:
    def __init__(self, started_when=None):
        if started_when is not None:  # the constructor runs until the test touches this file
            _wait_for_file(started_when)
        self.seen = []

    def nap(self, seconds, tag=None):
        time.sleep(seconds)
        self.seen.append(tag)
        return tag

    def held(self, release, tag):
        _wait_for_file(release)
        self.seen.append(tag)
        return tag

    def history(self):
        return self.seen


@nexus.remote
def nap(seconds):
    time.sleep(seconds)
    return seconds


def test_a_blocking_mailbox_makes_the_caller_wait(cluster):
    actor = Slow.options(mailbox=MailboxSpec.bounded(2, OverflowPolicy.BLOCK)).remote()
    nexus.get(actor.nap.remote(0, "warm"))
    start = time.monotonic()
    refs = [actor.nap.remote(0.15, i) for i in range(6)]
    waited = time.monotonic() - start
    assert nexus.get(refs) == list(range(6)), "nothing is lost, and the order holds"
    assert waited >= 0.3, "the caller waited for room instead of queueing without bound"


def test_a_failing_mailbox_raises(cluster, tmp_path, request):
    release = tmp_path / "release"
    actor = Slow.options(mailbox=MailboxSpec.bounded(1, OverflowPolicy.FAIL)).remote()
    first = actor.held.remote(str(release), "first")  # unanswered until released
    try:
        with pytest.raises(MailboxFullError, match="capacity"):
            actor.nap.remote(0, "second")
    finally:
        release.touch()
    assert nexus.get(first, timeout=30) == "first"


def test_drop_newest_and_drop_oldest(cluster, tmp_path, request):
    release, started = tmp_path / "release", tmp_path / "started"
    seen = []
    sub = nexus.event_stream().subscribe(CallDropped, seen.append)
    try:
        newest = Slow.options(mailbox=MailboxSpec.bounded(1, OverflowPolicy.DROP_NEWEST)).remote()
        kept = newest.held.remote(str(release), "kept")  # unanswered until released
        dropped = newest.nap.remote(0, "dropped")
        release.touch()
        with pytest.raises(MailboxFullError, match="drop-newest"):
            nexus.get(dropped, timeout=30)
        assert nexus.get(kept, timeout=30) == "kept"
        # while the actor starts, calls wait at the driver: the oldest of them make room for newer ones
        oldest = Slow.options(mailbox=MailboxSpec.bounded(2, OverflowPolicy.DROP_OLDEST)).remote(str(started))
        refs = [oldest.nap.remote(0, i) for i in range(4)]
        started.touch()  # the constructor ends only now
        with pytest.raises(MailboxFullError, match="drop-oldest"):
            nexus.get(refs[0], timeout=30)
        assert nexus.get(refs[2:], timeout=30) == [2, 3]
        assert nexus.get(oldest.history.remote(), timeout=30) == [2, 3]
        assert {e.policy for e in seen} == {"drop-newest", "drop-oldest"}
    finally:
        release.touch()
        started.touch()
        sub.unsubscribe()


def test_a_mailbox_must_be_bounded():
    with pytest.raises(ValueError, match="bounded MailboxSpec"):
        Slow.options(mailbox=MailboxSpec())


def test_the_task_queue_is_bounded(cluster, request):
    before = api._runtime().configure(max_queued_tasks=20)
    request.addfinalizer(lambda: api._runtime().configure(max_queued_tasks=before.max_queued_tasks))
    runtime = api._runtime()
    deepest = 0
    refs = []
    for _ in range(120):
        refs.append(nap.remote(0.002))
        deepest = max(deepest, len(runtime.tasks))
    assert nexus.get(refs) == [0.002] * 120
    assert deepest <= 21, "the submitter waited for the workers instead of queueing without bound"


@nexus.remote
def flood_from_a_task(n):
    return len(nexus.get([nap.remote(0.001) for _ in range(n)], timeout=120))


def test_a_task_that_floods_the_queue_waits_for_room_as_the_driver_does(cluster, request):
    runtime = api._runtime()
    before = runtime.configure(max_queued_tasks=20)
    request.addfinalizer(lambda: api._runtime().configure(max_queued_tasks=before.max_queued_tasks))
    deepest, done = [0], threading.Event()

    def watch():
        while not done.is_set():
            deepest[0] = max(deepest[0], len(runtime.tasks))
            time.sleep(0.0002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert nexus.get(flood_from_a_task.remote(300), timeout=120) == 300
    finally:
        done.set()
        watcher.join()
    # Each worker may run a window (a tenth of the bound) past it before it asks for room; two workers here. The
    # tasks prefetched to the flooding task's worker come back to the queue when it waits (for a surplus worker).
    bound = 20 + 2 * 2 + runtime.config.prefetch_quick
    assert deepest[0] <= bound, f"the queue grew to {deepest[0]} tasks: the task did not wait for room"


@nexus.remote
def call_twice(actor, release, wait_for_first=False):
    """From inside a task: a first call the actor holds until ``release`` exists, then a second one."""
    first = actor.held.remote(release, "first")
    if wait_for_first:
        _wait_for_file(release + ".taken")
    try:
        second = actor.nap.remote(0, "second")
    except Exception as exc:  # what .remote() raised, to the test
        return type(exc).__name__, str(exc)
    finally:
        open(release, "w").close()
    return nexus.get(first, timeout=30), nexus.get(second, timeout=30)


@nexus.remote
class Held:
    def held(self, release, tag):
        open(release + ".taken", "w").close()  # the first call runs: the mailbox is full from here on
        _wait_for_file(release)
        return tag

    def nap(self, seconds, tag=None):
        time.sleep(seconds)
        return tag


def test_calls_from_inside_a_task_meet_the_actors_mailbox_and_pending_limit(cluster, tmp_path):
    failing = Held.options(mailbox=MailboxSpec.bounded(1, OverflowPolicy.FAIL)).remote()
    kind, message = nexus.get(call_twice.remote(failing, str(tmp_path / "a"), True), timeout=60)
    assert kind == "MailboxFullError" and "capacity" in message
    limited = Held.options(max_pending_calls=1).remote()
    kind, message = nexus.get(call_twice.remote(limited, str(tmp_path / "b"), True), timeout=60)
    assert kind == "PendingCallsLimitExceededError" and "max_pending_calls" in message
    newest = Held.options(mailbox=MailboxSpec.bounded(1, OverflowPolicy.DROP_NEWEST)).remote()
    with pytest.raises(MailboxFullError, match="drop-newest"):
        nexus.get(call_twice.remote(newest, str(tmp_path / "c"), True), timeout=60)
    by_name = Held.options(name="bounded", mailbox=MailboxSpec.bounded(1, OverflowPolicy.FAIL)).remote()
    kind, _ = nexus.get(call_twice.remote(nexus.get_actor("bounded"), str(tmp_path / "d"), True), timeout=60)
    assert kind == "MailboxFullError", "a handle got by name knows the actor is bounded"
    nexus.kill(by_name)


@nexus.remote
def calls_with_room_for_two(actor):
    start = time.monotonic()
    refs = [actor.nap.remote(0.15, i) for i in range(6)]
    return time.monotonic() - start, nexus.get(refs, timeout=30)


def test_a_blocking_mailbox_makes_a_caller_inside_a_task_wait(cluster):
    actor = Slow.options(mailbox=MailboxSpec.bounded(2, OverflowPolicy.BLOCK)).remote()
    nexus.get(actor.nap.remote(0, "warm"))
    waited, tags = nexus.get(calls_with_room_for_two.remote(actor), timeout=60)
    assert tags == list(range(6)), "nothing is lost, and the order holds"
    assert waited >= 0.3, "the task waited for room instead of queueing without bound"
