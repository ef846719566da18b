"""Back-pressure: bounded actor mailboxes (the core's MailboxSpec) and a bounded task queue at the driver."""

from __future__ import annotations

import os
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
