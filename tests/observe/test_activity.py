"""nexus.state.activity(): what each worker really runs (not what was sent ahead to it), blocked workers, the
backlog at the head and each host's object store, on a real one-CPU cluster."""

from __future__ import annotations

import os
import time

import pytest

import nexus

from ..conftest import wait_until


@nexus.remote
def _held(path):
    while not os.path.exists(path):
        time.sleep(0.005)
    return 1


@nexus.remote
def _waits_for(path):
    return nexus.get(_held.remote(path))


@nexus.remote
class _Holder:
    def hold(self, path):
        while not os.path.exists(path):
            time.sleep(0.005)
        return 2


@pytest.fixture()
def cluster():
    nexus.init(num_cpus=1)
    try:
        yield
    finally:
        nexus.shutdown()


def _task_workers():
    return [w for w in nexus.state.activity().workers if w.kind == "task" and w.state != "dead"]


def test_a_worker_runs_one_task_and_the_rest_wait_ahead_of_it_or_at_the_head(cluster, tmp_path):
    release = tmp_path / "go"
    refs = [_held.remote(str(release)) for _ in range(6)]
    try:
        busy = wait_until(lambda: [w for w in _task_workers() if w.running], timeout=60)
        (worker,) = busy
        assert worker.state == "running" and len(worker.running) == 1, "one CPU: one task runs, however many were sent"
        (running,) = worker.running
        assert running.name == "_held" and running.since > 0
        activity = nexus.state.activity()
        sent_ahead = sum(w.prefetched for w in activity.workers)
        assert sent_ahead + activity.queued == 5, f"the other five wait: {sent_ahead} sent ahead, {activity.queued} at the head"
        (host,) = activity.hosts
        assert host.store_capacity > 0 and 0 <= host.store_used <= host.store_capacity
    finally:
        release.write_text("go")
    assert nexus.get(refs, timeout=60) == [1] * 6
    wait_until(lambda: all(not w.running for w in nexus.state.activity().workers), timeout=30)


def test_a_task_waiting_in_get_shows_blocked_and_an_actors_call_runs_on_its_worker(cluster, tmp_path):
    release = tmp_path / "go"
    holder = _Holder.remote()
    call = holder.hold.remote(str(release))
    outer = _waits_for.remote(str(release))
    try:

        def seen():
            activity = nexus.state.activity()
            blocked = [w for w in activity.workers if w.state == "blocked"]
            actor = [w for w in activity.workers if w.kind == "actor" and w.running]
            return (blocked, actor) if blocked and actor else None

        blocked, actor = wait_until(seen, timeout=60)
        assert [r.name for r in blocked[0].running] == ["_waits_for"], "a task waiting in get still runs: blocked"
        assert actor[0].actor.startswith("_Holder") and [r.name for r in actor[0].running] == ["_Holder.hold"]
    finally:
        release.write_text("go")
    assert nexus.get([outer, call], timeout=60) == [1, 2]
