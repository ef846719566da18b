"""Calls and answers submitted in a burst travel coalesced; order, results and latency must not change."""

from __future__ import annotations

import os
import time

import nexus
from nexus.cluster import api

GATE_GUARD = 60.0
"""A gated call gives up waiting for its release file after this long, so a failed test does not hold a worker for ever."""


@nexus.remote
class Log:
    def __init__(self):
        self.seen = []

    def add(self, x):
        self.seen.append(x)
        return x

    def work(self, seconds, release=None):
        time.sleep(seconds)
        if release is not None:  # the slow call: it runs until the test touches its release file
            deadline = time.monotonic() + GATE_GUARD
            while not os.path.exists(release) and time.monotonic() < deadline:
                time.sleep(0.005)
            return "released"
        return seconds

    def history(self):
        return self.seen


@nexus.remote
def square(x):
    return x * x


@nexus.remote
def nap(seconds, release=None):
    time.sleep(seconds)
    if release is not None:  # a slow task: it runs until the test touches its release file
        deadline = time.monotonic() + GATE_GUARD
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.005)
        return "released"
    return seconds


def _messages_sent():
    """Messages the driver sent its workers (both transports count them)."""
    runtime = api._runtime()
    return sum(getattr(w.conn, "sent", 0) for w in runtime.every_worker if w.conn is not None)


def test_a_burst_of_calls_and_tells_keeps_its_order(cluster):
    log = Log.remote()
    refs = []
    for i in range(3000):
        if i % 3 == 0:
            log.add.tell(i)
        else:
            refs.append(log.add.remote(i))
    assert nexus.get(refs) == [i for i in range(3000) if i % 3]
    assert nexus.get(log.history.remote()) == list(range(3000))


def test_a_burst_of_calls_travels_in_fewer_messages(cluster):
    log = Log.remote()
    nexus.get(log.add.remote(0))
    before = _messages_sent()
    assert nexus.get([log.add.remote(i) for i in range(5000)]) == list(range(5000))
    sent = _messages_sent() - before
    assert 0 < sent < 5000, f"{sent} messages for 5000 calls"


def test_a_burst_of_calls_with_ref_arguments(cluster):
    log = Log.remote()
    squares = [square.remote(i) for i in range(200)]
    echoed = [log.add.remote(ref) for ref in squares]
    assert nexus.get(echoed) == [i * i for i in range(200)]


def test_an_answer_is_not_held_behind_a_slow_call(cluster, tmp_path):
    release = tmp_path / "release"
    log = Log.remote()
    for _ in range(20):
        nexus.get(log.work.remote(0))  # the method is known to be quick...
    quick = [log.work.remote(0) for _ in range(50)]
    slow = log.work.remote(0, str(release))  # ...until this call, which runs until released
    try:
        assert nexus.get(quick, timeout=30) == [0] * 50, "the quick answers came while the slow call still ran"
        ready, _ = nexus.wait([slow], timeout=0)
        assert ready == []
    finally:
        release.touch()
    assert nexus.get(slow, timeout=30) == "released"


def test_a_task_answer_is_not_held_behind_a_slow_task(cluster, tmp_path):
    release = tmp_path / "release"
    for _ in range(10):
        nexus.get(nap.remote(0))
    quick = [nap.remote(0) for _ in range(40)]
    slow = [nap.remote(0, str(release)) for _ in range(2)]  # both workers busy until released
    try:
        assert nexus.get(quick, timeout=30) == [0] * 40, "the quick answers came while the slow tasks still ran"
        ready, _ = nexus.wait(slow, num_returns=2, timeout=0)
        assert ready == []
    finally:
        release.touch()
    assert nexus.get(slow, timeout=30) == ["released", "released"]


def test_a_flood_of_tasks(cluster):
    refs = [square.remote(i) for i in range(5000)]
    assert nexus.get(refs) == [i * i for i in range(5000)]


@nexus.remote
class Gate:
    """Calls that wait for a later call: only safe to coalesce beyond what may run at once."""

    def __init__(self):
        import threading

        self.opened = threading.Event()

    def wait_open(self, i):
        assert self.opened.wait(20), "the opening call never arrived"
        return i

    def open(self):
        self.opened.set()
        return "open"

    def echo(self, i):
        return i


@nexus.remote
class AsyncGate:
    def __init__(self):
        import asyncio

        self.opened = asyncio.Event()

    async def wait_open(self, i):
        await self.opened.wait()
        return i

    async def open(self):
        self.opened.set()
        return "open"


def test_a_concurrent_actors_burst_travels_in_fewer_messages_and_in_full(cluster):
    gate = Gate.options(max_concurrency=4).remote()
    nexus.get(gate.echo.remote(0))
    before = _messages_sent()
    assert nexus.get([gate.echo.remote(i) for i in range(3000)], timeout=30) == list(range(3000))
    sent = _messages_sent() - before
    assert 0 < sent < 3000, f"{sent} messages for 3000 calls"


def test_calls_waiting_for_a_later_call_are_not_held_back(cluster):
    gate = Gate.options(max_concurrency=4).remote()
    waiting = [gate.wait_open.remote(i) for i in range(3)]  # three threads wait; the fourth must get the opener
    assert nexus.get(gate.open.remote(), timeout=20) == "open"
    assert nexus.get(waiting, timeout=20) == [0, 1, 2]
    async_gate = AsyncGate.remote()
    waiting = [async_gate.wait_open.remote(i) for i in range(500)]
    assert nexus.get(async_gate.open.remote(), timeout=20) == "open"
    assert nexus.get(waiting, timeout=20) == list(range(500))
