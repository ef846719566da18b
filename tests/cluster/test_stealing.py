"""Work stealing: tasks queued behind a long one on a busy worker are taken by an idle worker."""

from __future__ import annotations

import os
import threading
import time

import nexus
from nexus.cluster import api


@nexus.remote
def nap(seconds, tag=None):
    time.sleep(seconds)
    return tag, os.getpid()


@nexus.remote
def get_on_a_thread(refs):
    out = []
    thread = threading.Thread(target=lambda: out.append(nexus.get(refs[0], timeout=20)))
    thread.start()
    thread.join()
    return out[0]


def test_tasks_queued_behind_a_long_task_are_stolen(cluster):
    runtime = api._runtime()
    stolen_before = runtime.stolen
    long = nap.remote(2.0, "long")
    shorts = [nap.remote(0.02, i) for i in range(12)]
    results = nexus.get(shorts, timeout=30)
    assert [tag for tag, _ in results] == list(range(12))
    ready, _ = nexus.wait([long], timeout=0)
    assert ready == []  # every short task finished while the long one still ran: none waited behind it
    long_pid = nexus.get(long)[1]
    behind = [pid for _, pid in results if pid == long_pid]
    assert behind == [] or runtime.stolen > stolen_before


def test_get_on_another_thread_of_a_task(cluster):
    ref = nexus.put("hello")
    assert nexus.get(get_on_a_thread.remote([ref]), timeout=30) == "hello"


@nexus.remote
def mostly_quick(x):
    if x < 0:
        time.sleep(-x)
    return x


def test_a_quick_function_prefetched_deep_still_gets_around_a_slow_call(cluster):
    nexus.get([mostly_quick.remote(i) for i in range(500)], timeout=30)  # known quick: prefetched many per worker
    slow = mostly_quick.remote(-2.0)
    quick = [mostly_quick.remote(i) for i in range(400)]
    assert nexus.get(quick, timeout=30) == list(range(400))
    ready, _ = nexus.wait([slow], timeout=0)
    assert ready == [], "every quick task finished while the slow one still ran: none waited behind it"
    assert nexus.get(slow, timeout=30) == -2.0
