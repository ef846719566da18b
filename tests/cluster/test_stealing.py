"""Work stealing: tasks queued behind a long one on a busy worker are taken by an idle worker."""

from __future__ import annotations

import os
import threading
import time

import nexus
from nexus.cluster import api

GATE_GUARD = 60.0
"""A gated task gives up waiting for its release file after this long, so a failed test does not hold a worker for ever."""


def _wait_for_file(path):
    deadline = time.monotonic() + GATE_GUARD
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)


@nexus.remote
def nap(seconds, tag=None, release=None):
    time.sleep(seconds)
    if release is not None:  # runs until the test touches the release file
        _wait_for_file(release)
    return tag, os.getpid()


@nexus.remote
def get_on_a_thread(refs):
    out = []
    thread = threading.Thread(target=lambda: out.append(nexus.get(refs[0], timeout=20)))
    thread.start()
    thread.join()
    return out[0]


def test_tasks_queued_behind_a_long_task_are_stolen(cluster, tmp_path, request):
    # Every worker counts as having just started its task, so the backlog is prefetched behind the long
    # one too (otherwise that depends on the submitter beating a 2 ms window): stealing must take it back.
    before = api._runtime().configure(prefetch_young=3600.0)
    request.addfinalizer(lambda: api._runtime().configure(prefetch_young=before.prefetch_young))
    runtime = api._runtime()
    stolen_before = runtime.stolen
    go, release = tmp_path / "go", tmp_path / "release"
    long = nap.remote(0, "long", str(release))  # runs until released
    shorts = [nap.remote(0.02, i, str(go)) for i in range(12)]  # the first holds the other worker until go
    try:
        go.touch()
        results = nexus.get(shorts, timeout=30)  # only possible if none waited behind the long one
        assert [tag for tag, _ in results] == list(range(12))
        ready, _ = nexus.wait([long], timeout=0)
        assert ready == []
        assert runtime.stolen > stolen_before, "the tasks prefetched behind the long one were taken back"
    finally:
        release.touch()
    long_pid = nexus.get(long, timeout=30)[1]
    assert [pid for _, pid in results if pid == long_pid] == [], "no short task ran on the long one's worker"


def test_get_on_another_thread_of_a_task(cluster):
    ref = nexus.put("hello")
    assert nexus.get(get_on_a_thread.remote([ref]), timeout=30) == "hello"


@nexus.remote
def mostly_quick(x, release=None):
    if release is not None:  # the slow call: runs until the test touches the release file
        _wait_for_file(release)
    return x


def test_a_quick_function_prefetched_deep_still_gets_around_a_slow_call(cluster, tmp_path, request):
    release = tmp_path / "release"
    nexus.get([mostly_quick.remote(i) for i in range(500)], timeout=30)  # known quick: prefetched many per worker
    slow = mostly_quick.remote(-1, str(release))
    quick = [mostly_quick.remote(i) for i in range(400)]
    try:
        assert nexus.get(quick, timeout=30) == list(range(400)), "none waited behind the slow one"
        ready, _ = nexus.wait([slow], timeout=0)
        assert ready == []
    finally:
        release.touch()
    assert nexus.get(slow, timeout=30) == -1
