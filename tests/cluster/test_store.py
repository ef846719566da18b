"""The shared-memory object store: zero-copy reads, reference counting, spilling, nothing left behind."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import nexus
from nexus.cluster import api
from nexus.cluster.store import PAGE, Allocator, Arena, default_capacity
from nexus.core.errors import ActorDiedError

MiB = 1 << 20


def _stats():
    return api._runtime().store_stats()


def _stored(oid):
    return oid in api._runtime().objects.entries


def _settle(predicate, timeout=10.0):
    """Wait until ``predicate`` holds: workers report ref and pin changes before they next park, a little later."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gc.collect()
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _holds(predicate, seconds=1.0):
    """``predicate`` stays true while every worker has had time to report what it dropped."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        gc.collect()
        nexus.get([_touch.remote() for _ in range(4)])
        if not predicate():
            return False
        time.sleep(0.1)
    return True


@nexus.remote
def _touch():
    return None


@nexus.remote
def first_and_writable(a):
    return int(a[0]), a.flags.writeable


@nexus.remote
def try_to_write(a):
    try:
        a[0] = 1
    except ValueError as exc:
        return str(exc)
    return "wrote"


@nexus.remote
def resolve(box):
    return [int(nexus.get(ref).sum()) for ref in box]


@nexus.remote
def call_closure(fn):
    return int(nexus.get(fn()).sum())


@nexus.remote
def put_in_worker_and_return_ref(n):
    return [nexus.put(np.full(n, 7, dtype=np.int64))]


@nexus.remote
class Holder:
    def __init__(self, payload=None):  # a payload only to make the arguments large
        self.kept = None

    def keep(self, a):
        self.kept = a
        return True

    def first(self):
        return int(self.kept[0])

    def drop(self):
        self.kept = None
        gc.collect()
        return True


# -- the allocator, alone ------------------------------------------------------------------------------


def test_allocator_first_fit_and_coalescing():
    a = Allocator(16 * PAGE)
    x = a.alloc(1)
    y = a.alloc(3 * PAGE)
    z = a.alloc(PAGE + 1)
    assert (x, y, z) == (0, PAGE, 4 * PAGE)
    assert a.used == 6 * PAGE
    a.free(y, 3 * PAGE)
    assert a.alloc(2 * PAGE) == PAGE, "the lowest free block first: memory that was touched before"
    a.free(PAGE, 2 * PAGE)
    a.free(x, 1)
    a.free(z, PAGE + 1)
    assert a.used == 0 and a.free_blocks == 1 and a.largest_free == 16 * PAGE
    assert a.alloc(17 * PAGE) is None
    with pytest.raises(ValueError, match="already free"):
        a.free(0, PAGE)
    with pytest.raises(ValueError, match="not a region"):
        a.free(3, PAGE)


def test_small_dev_shm_warns_and_caps(monkeypatch):
    from nexus.cluster import store

    monkeypatch.setattr(store, "_dev_shm", lambda: (64 * MiB, 60 * MiB))
    with pytest.warns(ResourceWarning, match="--shm-size"):
        capacity = default_capacity(None)
    assert capacity <= 60 * MiB
    monkeypatch.setattr(store, "_dev_shm", lambda: (64 << 30, 10 << 30))
    with pytest.warns(ResourceWarning, match="more than /dev/shm has free"):
        assert default_capacity(20 << 30) < 10 << 30
    with pytest.raises(ValueError, match="object_store_memory"):
        default_capacity(-1)


def test_attaching_does_not_let_a_resource_tracker_remove_the_arena():
    arena = Arena.create(4 * PAGE)
    try:
        script = f"from nexus.cluster.store import Arena; a = Arena.attach({arena.name!r}); a.write(0, b'hi'); a.close()"
        subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
        time.sleep(0.2)
        assert os.path.exists(f"/dev/shm/{arena.name}"), "a process that attached and exited removed nothing"
        assert bytes(arena.read(0, 2)) == b"hi"
    finally:
        arena.close(unlink=True)


# -- zero copy ---------------------------------------------------------------------------------------


def test_readers_see_the_same_memory_zero_copy(cluster):
    a = np.arange(1_000_000, dtype=np.int64)
    ref = nexus.put(a)
    holder = Holder.remote()
    assert nexus.get(holder.keep.remote(ref))
    local = nexus.get(ref)
    assert not local.flags.writeable and not local.flags.owndata
    # The store's own writable mapping (what a writer uses) changes the bytes every reader maps.
    runtime = api._runtime()
    region = runtime.objects.entries[ref.id].region
    assert region is not None
    np.frombuffer(runtime.arena.view[region[0] : region[0] + 8], dtype=np.int64)[0] = 424242
    assert local[0] == 424242, "the driver's view is the arena's memory"
    assert nexus.get(holder.first.remote()) == 424242, "so is the actor's, in another process"
    assert nexus.get(first_and_writable.remote(ref)) == (424242, False), "and a task's"


def test_writing_through_a_read_view_raises(cluster):
    ref = nexus.put(np.zeros(100_000))
    with pytest.raises(ValueError, match="read-only"):
        nexus.get(ref)[0] = 1
    assert "read-only" in nexus.get(try_to_write.remote(ref))
    copy = nexus.get(ref).copy()
    copy[0] = 1  # an explicit copy is the way to write
    assert copy[0] == 1


def test_small_values_stay_inline(cluster):
    ref = nexus.put(np.zeros(16))
    assert api._runtime().objects.entries[ref.id].region is None
    big = nexus.put(np.zeros(1 << 17))
    assert api._runtime().objects.entries[big.id].region is not None


# -- reference counting ------------------------------------------------------------------------------


def test_memory_comes_back_when_the_last_ref_dies(cluster):
    ref = nexus.put(np.ones(4 * MiB))
    oid = ref.id
    region = api._runtime().objects.entries[oid].region
    assert region is not None and region[1] >= 32 * MiB, "the array lives in the arena"
    # Measured with the object in: earlier tests' objects released late only lower the use from here.
    with_it = _stats()["used"]
    view = nexus.get(ref)
    del ref
    gc.collect()
    assert _stored(oid), "a live view pins the object"
    del view
    assert _settle(lambda: not _stored(oid))
    assert _stats()["used"] <= with_it - region[1], "its region went back to the arena"


def test_refs_in_nested_containers_keep_objects_alive(cluster):
    inner = nexus.put(np.ones(1 * MiB, dtype=np.int64))
    inner_id = inner.id
    outer = nexus.put({"box": [inner]})
    del inner
    gc.collect()
    assert nexus.get(resolve.remote(nexus.get(outer)["box"])) == [MiB]
    assert _holds(lambda: _stored(inner_id)), "the outer object holds the inner one"
    del outer
    assert _settle(lambda: not _stored(inner_id))


def _closure_over(ref):
    def fetch():
        return ref

    return fetch


def test_refs_captured_in_closures(cluster):
    ref = nexus.put(np.ones(1 * MiB, dtype=np.int64))
    oid = ref.id
    fetch = _closure_over(ref)
    result = call_closure.remote(fetch)
    del ref
    del fetch
    gc.collect()
    assert nexus.get(result) == MiB
    assert _settle(lambda: not _stored(oid))


def test_refs_made_in_a_worker_and_returned(cluster):
    box = nexus.get(put_in_worker_and_return_ref.remote(1 << 18))
    oid = box[0].id
    assert int(nexus.get(box[0]).sum()) == 7 << 18
    del box
    assert _settle(lambda: not _stored(oid))


def test_large_arguments_and_results_are_freed(cluster):
    runtime = api._runtime()
    a = np.ones(2 * MiB)
    assert nexus.get(first_and_writable.remote(a)) == (1, False)
    holder = Holder.remote()
    known = set(runtime.objects.entries)
    assert nexus.get(holder.keep.remote(a))
    kept = [oid for oid, obj in runtime.objects.entries.items() if oid not in known and obj.region is not None]
    assert kept and _holds(lambda: all(_stored(oid) for oid in kept)), "the actor's view keeps its argument"
    assert nexus.get(holder.drop.remote())
    assert _settle(lambda: not any(_stored(oid) for oid in kept))


# -- regressions a review reproduced -------------------------------------------------------------------


@nexus.remote
def _slow(seconds):
    time.sleep(seconds)
    return 0


@nexus.remote
def _first(a):
    return int(a[0])


@nexus.remote
def _make_later(release):
    deadline = time.monotonic() + 60  # a failed test must not hold a worker for ever
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.005)
    return np.ones(1 << 17)


@nexus.remote
class _User:
    def use(self, a, b):
        return int(a[0] + b[0])


@nexus.remote(num_returns=2)
def _second_does_not_pickle():
    import threading

    return np.ones(1 << 17), threading.Lock()


@nexus.remote
class _ThreadPutter:
    def __init__(self):
        import threading

        out = []
        thread = threading.Thread(target=lambda: out.append(nexus.put(np.ones(1 << 17))))
        thread.start()
        thread.join(20)
        self.ok = bool(out)

    def ok_(self):
        return self.ok


def test_tasks_sharing_an_argument_in_one_message_release_every_pin(cluster):
    ref = nexus.put(np.ones(1 << 17))
    oid = ref.id
    nexus.get([_first.remote(ref) for _ in range(2)])
    out = [_slow.remote(0.3)] + [_first.remote(ref) for _ in range(12)]  # coalesced, some stolen
    assert nexus.get(out)[1:] == [1] * 12
    del out, ref
    assert _settle(lambda: not _stored(oid))


def test_an_actor_dying_with_calls_waiting_for_arguments_releases_them(cluster, tmp_path):
    release = tmp_path / "release"
    ready = nexus.put(np.ones(1 << 17))
    pending = _make_later.remote(str(release))  # not ready until released
    ids = (ready.id, pending.id)
    user = _User.remote()
    assert nexus.get(user.use.remote(ready, ready), timeout=30) == 2  # the actor is up
    call = user.use.remote(ready, pending)  # waits for its second argument
    try:
        nexus.kill(user)
        with pytest.raises(ActorDiedError):
            nexus.get(call, timeout=30)
    finally:
        release.touch()
    nexus.get(pending, timeout=30)
    del ready, pending, call
    assert _settle(lambda: not any(_stored(oid) for oid in ids))


def test_failures_after_the_arguments_were_stored_leave_nothing(cluster):
    before = _stats()["used"]
    big = np.ones(1 << 17)
    first = Holder.options(name="only-one").remote()
    for _ in range(3):
        with pytest.raises(ValueError, match="already exists"):
            Holder.options(name="only-one").remote(big)
        with pytest.raises(ValueError, match="can never run"):
            Holder.options(num_cpus=64).remote(big)
    for _ in range(3):
        a, _b = _second_does_not_pickle.remote()
        with pytest.raises(Exception, match="pickle|lock"):
            nexus.get(a)
    nexus.kill(first)
    assert _settle(lambda: _stats()["used"] <= before)


def test_a_thread_of_an_actor_constructor_can_put_large_values(cluster):
    assert nexus.get(_ThreadPutter.remote().ok_.remote(), timeout=30)


def test_a_killed_actor_gives_back_its_refs_and_views(cluster):
    ref = nexus.put(np.ones(1 << 17))
    oid = ref.id
    holder = Holder.remote()
    assert nexus.get(holder.keep.remote(ref))  # the actor holds a view (a pin) of it
    assert nexus.get(holder.first.remote()) == 1
    del ref
    assert _holds(lambda: _stored(oid)), "the actor's view keeps it"
    nexus.kill(holder)
    assert _settle(lambda: not _stored(oid))


@nexus.remote
def _sum_refs(box):
    return sum(nexus.get(box))


def test_a_value_holding_many_refs_counts_them_in_one_batch(cluster):
    inner = [nexus.put(i) for i in range(50)]
    ids = [r.id for r in inner]
    outer = nexus.put(inner)
    del inner
    gc.collect()
    assert _holds(lambda: all(_stored(oid) for oid in ids)), "the outer value holds them"
    box = nexus.get(outer)  # 50 refs rebuilt in the driver, counted in one go
    assert nexus.get(_sum_refs.remote(box)) == sum(range(50))  # and in a worker
    del outer
    gc.collect()
    assert _holds(lambda: all(_stored(oid) for oid in ids)), "the driver's copies still hold them"
    del box
    assert _settle(lambda: not any(_stored(oid) for oid in ids))
