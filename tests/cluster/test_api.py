"""The Ray-style API over a real local cluster (worker processes, shared-memory rings or ZeroMQ)."""

from __future__ import annotations

import asyncio
import collections
import os
import re
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import nexus
from nexus.cluster.values import TaskError
from nexus.core.errors import (
    ActorDiedError,
    GetTimeoutError,
    NexusError,
    SerializationError,
    TaskCancelledError,
    WorkerCrashedError,
)

from ..conftest import wait_until
from .conftest import local_only


@nexus.remote
def double(x):
    return x * 2


@nexus.remote
def add(a, b):
    return a + b


@nexus.remote
def where():
    return os.getpid()


@nexus.remote
def fail(message):
    raise KeyError(message)


@nexus.remote
def sleep_then(seconds, value):
    time.sleep(seconds)
    return value


@nexus.remote
def wait_for_file(path):
    deadline = time.monotonic() + 60  # a failed test must not hold a worker for ever
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)
    return "released"


@nexus.remote
def bad_call_from_a_task(handle):
    return handle.incr.remote(1, 2)


@nexus.remote
def fib(n):
    if n < 2:
        return n
    return sum(nexus.get([fib.remote(n - 1), fib.remote(n - 2)]))


@nexus.remote(num_returns=2)
def pair(x):
    return x, -x


@nexus.remote
def inspect_args(top, nested):
    return type(top).__name__, type(nested[0]).__name__, nexus.get(nested[0])


@nexus.remote
def array_sum(a):
    return float(a.sum()), a.flags.writeable


@nexus.remote
def make_array(n):
    return np.ones(n, dtype=np.int64)


@nexus.remote
def call_actor(handle, k):
    return nexus.get(handle.incr.remote(k))


@nexus.remote
class Counter:
    def __init__(self, start=0):
        self.n = start

    def incr(self, k=1):
        self.n += k
        return self.n

    def get(self):
        return self.n

    def boom(self):
        raise ValueError("boom")

    def pid(self):
        return os.getpid()

    def spawn_child(self):
        child = Counter.remote(100)
        return nexus.get(child.incr.remote(1))


@nexus.remote
class Rendezvous:
    """Its calls wait for one another: they can only all return if they run at the same time."""

    def __init__(self, parties):
        self.barrier = threading.Barrier(parties, timeout=20)

    def meet(self):
        self.barrier.wait()  # raises BrokenBarrierError after 20 s if the others never come
        return threading.current_thread().name


@nexus.remote
class Awaiter:
    async def double_of(self, x):
        return await double.remote(x)


@nexus.remote
class AsyncActor:
    def __init__(self):
        self.log = []
        self.b_done = asyncio.Event()

    async def step(self, name):
        self.log.append(f"{name}-start")
        if name == "a":
            await asyncio.wait_for(self.b_done.wait(), 20)  # only b, running meanwhile, can set it
        else:
            self.b_done.set()
        self.log.append(f"{name}-end")
        return name

    def history(self):
        return self.log


def test_task_round_trip_and_placement(cluster):
    assert nexus.get(double.remote(21)) == 42
    assert nexus.get([add.remote(i, i) for i in range(20)]) == [2 * i for i in range(20)]
    pids = set(nexus.get([where.remote() for _ in range(20)]))
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert nexus.is_initialized()


def test_object_refs_as_arguments(cluster):
    a = double.remote(5)
    assert nexus.get(add.remote(a, double.remote(a))) == 30, "top-level refs are resolved before the task runs"
    stored = nexus.put({"k": [1, 2]})
    assert nexus.get(stored) == {"k": [1, 2]}
    inner = nexus.put(7)
    assert nexus.get(inspect_args.remote(stored, [inner])) == ("dict", "ObjectRef", 7), "nested refs arrive as refs"


def test_num_returns(cluster):
    a, b = pair.remote(3)
    assert nexus.get([a, b]) == [3, -3]
    c, d = double.options(num_returns=2).remote((1, 2))  # a tuple * 2 has four items: a clear error
    with pytest.raises(ValueError, match="num_returns=2"):
        nexus.get(c)


def test_errors_keep_their_type_and_remote_traceback(cluster):
    ref = fail.remote("missing")
    with pytest.raises(KeyError, match="missing") as info:
        nexus.get(ref)
    cause = info.value.__cause__
    assert cause is not None and "in fail" in str(cause) and "worker-" in str(cause)
    with pytest.raises(KeyError, match="missing") as info:  # a task depending on a failed one fails with the same cause
        nexus.get(add.remote(ref, 1))
    cause = info.value.__cause__
    assert cause is not None and "in fail" in str(cause), "the remote traceback is the failed task's"


def test_get_timeout(cluster, tmp_path):
    release = tmp_path / "release"
    ref = wait_for_file.remote(str(release))
    try:
        with pytest.raises(GetTimeoutError) as info:
            nexus.get(ref, timeout=0.05)
        assert isinstance(info.value, TimeoutError)
    finally:
        release.touch()
    assert nexus.get(ref, timeout=30) == "released", "the ref stays valid after a timeout"


def test_wait_keeps_input_order(cluster, tmp_path):
    release = tmp_path / "release"
    slow = wait_for_file.remote(str(release))
    fast = [double.remote(i) for i in range(3)]
    refs = [slow, *fast]
    try:
        ready, pending = nexus.wait(refs, num_returns=3, timeout=30)
        assert ready == fast and pending == [slow]
        ready, pending = nexus.wait([slow], timeout=0.01)
        assert ready == [] and pending == [slow], "a timeout returns what is not ready as pending"
    finally:
        release.touch()
    ready, pending = nexus.wait(refs, num_returns=4, timeout=30)
    assert ready == refs and pending == []
    with pytest.raises(ValueError):
        nexus.wait(refs, num_returns=5)


def test_nested_and_recursive_tasks_do_not_deadlock_a_small_pool(cluster):
    assert nexus.get(fib.remote(10), timeout=60) == 55
    # ~1,000 tasks, nested over 120 deep on one worker (tasks run on top of the one waiting in get): past
    # Python's default recursion limit, where tasks used to be lost and the caller waited for ever.
    assert nexus.get(fib.remote(14), timeout=60) == 377


def test_large_array_through_shared_memory(cluster):
    big = np.arange(40_000_000, dtype=np.int64)  # 320 MB
    ref = nexus.put(big)
    total, writeable = nexus.get(array_sum.remote(ref), timeout=60)
    assert total == float(big.sum()) and writeable is False
    back = nexus.get(make_array.remote(30_000_000), timeout=60)  # 240 MB made by a worker
    assert back.shape == (30_000_000,) and int(back[-1]) == 1
    with pytest.raises(ValueError, match="read-only"):
        back[0] = 5


def test_actor_calls_run_in_order(cluster):
    counter = Counter.remote(10)
    refs = [counter.incr.remote() for _ in range(50)]
    assert nexus.get(refs) == list(range(11, 61))
    counter.incr.tell(100)
    assert nexus.get(counter.get.remote()) == 160, "tell is ordered with the caller's other calls"
    assert nexus.get(counter.pid.remote()) != os.getpid()


def test_actor_errors_and_handles_passed_around(cluster):
    counter = Counter.remote()
    with pytest.raises(ValueError, match="boom"):
        nexus.get(counter.boom.remote())
    assert nexus.get(counter.incr.remote()) == 1, "an exception in a method leaves the actor alive"
    assert nexus.get(call_actor.remote(counter, 5)) == 6, "a handle passed to a task"
    assert nexus.get(counter.spawn_child.remote()) == 101, "an actor creating an actor"
    with pytest.raises(AttributeError, match="no method 'nope'"):
        counter.nope


def test_named_actors(cluster):
    named = Counter.options(name="shared-counter").remote()
    nexus.get(named.incr.remote(3))
    again = nexus.get_actor("shared-counter")
    assert nexus.get(again.get.remote()) == 3
    with pytest.raises(ValueError, match="already exists"):
        Counter.options(name="shared-counter").remote()
    same = Counter.options(name="shared-counter", get_if_exists=True).remote()
    assert nexus.get(same.get.remote()) == 3
    with pytest.raises(ValueError, match="no actor named 'nobody'"):
        nexus.get_actor("nobody")
    nexus.kill(named)
    with pytest.raises(ValueError):
        nexus.get_actor("shared-counter")


@nexus.remote
def _count_on_the_named(name):
    counter = Counter.options(name=name, get_if_exists=True, lifetime="detached").remote()
    return nexus.get(counter.incr.remote(), timeout=60)


def test_get_if_exists_from_racing_tasks_gives_them_all_one_actor(cluster):
    # Each task looks the name up, finds nothing and creates it: only one creation wins, the others get that actor
    # (not "already exists").
    for round_ in range(5):
        name = f"raced-{round_}"
        counts = nexus.get([_count_on_the_named.remote(name) for _ in range(4)], timeout=120)
        assert sorted(counts) == [1, 2, 3, 4]
        nexus.kill(nexus.get_actor(name))


@nexus.remote(max_calls=2)
def _pid_of_a_bounded_function():
    return os.getpid()


@nexus.remote
def _bumps(counter):
    nexus.get(counter.incr.remote())
    return "dropped"


def test_max_calls_retires_a_worker_after_that_many_tasks_of_the_function(cluster):
    pids = nexus.get([_pid_of_a_bounded_function.remote() for _ in range(8)], timeout=120)
    ran = collections.Counter(pids)
    assert max(ran.values()) <= 2 and len(ran) >= 4, ran
    assert nexus.get([double.remote(i) for i in range(20)], timeout=60) == [2 * i for i in range(20)], "the pool goes on"


def test_num_returns_0_runs_the_task_or_call_and_returns_none(cluster):
    counter = Counter.remote()
    assert _bumps.options(num_returns=0).remote(counter) is None
    assert counter.incr.options(num_returns=0).remote(10) is None
    wait_until(lambda: nexus.get(counter.get.remote()) == 11)


def test_options_are_checked_in_rays_words() -> None:
    def f():
        return 1

    class A:
        pass

    for key in ("max_retries", "max_calls"):
        with pytest.raises(TypeError, match=re.escape(f"The type of keyword '{key}' must be (<class 'int'>, <class 'NoneType'>)")):
            nexus.remote(**{key: 0.5})(f)
    with pytest.raises(TypeError, match=re.escape("'max_restarts' must be (<class 'int'>, <class 'NoneType'>), but received")):
        nexus.remote(max_restarts=1.5)(A)
    with pytest.raises(ValueError, match="The keyword 'max_calls' only accepts None, 0 or a positive integer"):
        nexus.remote(max_calls=-1)(f)
    with pytest.raises(ValueError, match="'max_task_retries' only accepts None, 0, -1 or a positive integer, where -1 represents"):
        nexus.remote(max_task_retries=-3)(A)
    with pytest.raises(ValueError, match="The keyword 'num_returns' only accepts None, a non-negative integer"):
        nexus.remote(num_returns=-1)(f)
    with pytest.raises(TypeError, match=re.escape("'_metadata' must be (<class 'dict'>, <class 'NoneType'>)")):
        nexus.remote(_metadata=3.14)(A)
    with pytest.raises(ValueError, match="The precision of the fractional quantity of resource num_gpus cannot go beyond 0.0001"):
        nexus.remote(num_gpus=1e-7)(f)
    with pytest.raises(ValueError, match="resource disk cannot go beyond 0.0001"):
        nexus.remote(resources={"disk": 0.00001})(f)
    nexus.remote(_metadata={"data": 1}, num_cpus=0.5, max_calls=0, max_retries=-1)(f)
    with pytest.raises(TypeError, match="is remote already: give it options with"):
        nexus.remote(num_cpus=1)(double)


@nexus.remote
class Echo:
    def echo(self, x):
        return x


@nexus.remote
def _value_after(seconds):
    time.sleep(seconds)
    return seconds


@nexus.remote
def _echo_via(echo, held):
    return nexus.get(echo.echo.remote(held[0]), timeout=120)  # (held: a list, so the ref goes as it is, unresolved)


def test_a_call_waiting_for_its_argument_holds_back_only_its_own_callers_calls(cluster):
    echo = Echo.remote()
    nexus.get(echo.echo.remote(0), timeout=60)
    slow = _value_after.remote(60)
    first = _echo_via.remote(echo, [slow])
    time.sleep(1.0)  # (its call is queued at the actor by now, waiting for slow)
    second = _echo_via.remote(echo, [nexus.put(5)])
    assert nexus.get(second, timeout=60) == 5, "a call of another task went ahead of the waiting one"
    assert not nexus.wait([first], timeout=0)[0]
    nexus.cancel(slow)
    with pytest.raises(Exception):
        nexus.get(first, timeout=60)


def test_kill_makes_calls_fail_promptly(cluster):
    counter = Counter.remote()
    assert nexus.get(counter.incr.remote()) == 1
    nexus.kill(counter)
    start = time.monotonic()
    with pytest.raises(ActorDiedError):
        nexus.get(counter.incr.remote(), timeout=30)
    assert time.monotonic() - start < 10, "not after the get's timeout"


def test_constructor_failure_kills_the_actor(cluster):
    broken = Counter.remote("not a number")
    with pytest.raises(TypeError):
        nexus.get(broken.incr.remote(1), timeout=10)


def test_max_concurrency_runs_methods_on_threads(cluster):
    rendezvous = Rendezvous.options(max_concurrency=4).remote(4)
    names = nexus.get([rendezvous.meet.remote() for _ in range(4)], timeout=30)  # all four ran at the same time
    assert len(set(names)) == 4 and all(name.startswith("nexus-actor") for name in names), names


def test_async_actor_interleaves_at_await(cluster):
    actor = AsyncActor.remote()
    assert nexus.get([actor.step.remote("a"), actor.step.remote("b")], timeout=30) == ["a", "b"]
    assert nexus.get(actor.history.remote(), timeout=30) == ["a-start", "b-start", "b-end", "a-end"]


@nexus.remote
class AsyncMixed:
    def __init__(self):
        self.arrived = 0
        self.all_here = asyncio.Event()

    async def nap(self, seconds):
        await asyncio.sleep(seconds)
        return seconds

    async def meet(self, n):
        """Returns once ``n`` calls are here: they all return only if they ran at the same time on the loop."""
        self.arrived += 1
        if self.arrived == n:
            self.all_here.set()
        await asyncio.wait_for(self.all_here.wait(), 20)
        return n

    async def blocking_get(self, x):
        return nexus.get(double.remote(x), timeout=20)

    async def block(self, seconds):
        time.sleep(seconds)  # blocks the loop: calls behind it wait, none is lost
        return "blocked"

    async def where(self):
        return threading.current_thread().name, os.getpid()


def test_async_actor_runs_calls_on_its_workers_main_thread(cluster):
    actor = AsyncMixed.remote()
    name, pid = nexus.get(actor.where.remote(), timeout=20)
    assert name == "MainThread" and pid != os.getpid(), "the loop runs where the worker receives: no hand-over"
    assert nexus.get([actor.meet.remote(50) for _ in range(50)], timeout=30) == [50] * 50, "50 calls overlap on the loop"
    assert nexus.get(actor.blocking_get.remote(4), timeout=20) == 8, "a blocking get inside a coroutine receives for itself"
    refs = [actor.block.remote(0.3), *[actor.nap.remote(0) for _ in range(5)]]
    assert nexus.get(refs, timeout=20) == ["blocked", 0, 0, 0, 0, 0]
    assert nexus.get(actor.where.remote(), timeout=20) == (name, pid)


@nexus.remote
class Forwarder:
    """Forwards each call to ``sink``, awaiting its answer (in an executor's thread: the worker's monitor
    receives the calls that come meanwhile, while the main thread receives others)."""

    def __init__(self, sink):
        self.sink = sink

    async def add(self, name):
        return await self.sink.add.remote(name)


def test_an_async_actor_starts_calls_in_the_order_they_came_whichever_thread_received_them(cluster):
    sink = Ordered.remote()
    forwarder = Forwarder.options(max_concurrency=1000).remote(sink)
    for start in range(0, 2400, 300):
        refs = []
        for i in range(start, start + 300):
            if i % 3:
                forwarder.add.tell(i)
            else:
                refs.append(forwarder.add.remote(i))
        nexus.get(refs, timeout=60)
    seen = nexus.get(sink.add.remote("end"), timeout=30)
    assert seen[:-1] == list(range(2400)), "each call reached the sink, once, in the order it was sent"


@nexus.remote
class Blocker:
    async def wait_for(self, path, started):
        open(started, "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(path) and time.monotonic() < deadline:  # sync code in a coroutine: the loop is blocked
            time.sleep(0.01)
        return "saw it"

    async def size(self, payload):
        return len(payload)


@nexus.remote
def touch(path):
    open(path, "w").close()
    return True


def test_a_blocked_async_actor_still_receives(cluster, tmp_path):
    flag, started = str(tmp_path / f"flag-{cluster}"), tmp_path / f"started-{cluster}"
    actor = Blocker.remote()
    assert nexus.get(actor.size.remote(b""), timeout=20) == 0
    waiting = actor.wait_for.remote(flag, str(started))
    wait_until(started.exists, timeout=30)  # the actor's loop is blocked from here on
    sizes = [actor.size.remote(b"x" * (32 << 10)) for _ in range(600)]  # ~19 MB: more than its channel holds
    assert nexus.get(touch.remote(flag), timeout=20), "the cluster goes on while the actor's loop is blocked"
    assert nexus.get(waiting, timeout=20) == "saw it"
    assert nexus.get(sizes, timeout=30) == [32 << 10] * 600


def test_a_failed_tell_to_an_async_actor_is_reported(cluster, capfd):
    actor = Blocker.remote()
    actor.size.tell(None)  # len(None) raises in the coroutine
    err = ""

    def reported():
        nonlocal err
        err += capfd.readouterr().err
        return "a tell) failed" in err and "TypeError" in err

    wait_until(reported, timeout=30, interval=0.05)
    assert "Blocker.size (a tell) failed" in err and "TypeError" in err


def test_cancel_a_queued_task(cluster, tmp_path):
    release = tmp_path / "release"
    blockers = [wait_for_file.remote(str(release)) for _ in range(2)]  # both workers busy until released
    queued = sleep_then.remote(0, "never")
    try:
        nexus.cancel(queued)
        with pytest.raises(TaskCancelledError):
            nexus.get(queued, timeout=30)
    finally:
        release.touch()
    assert nexus.get(blockers, timeout=30) == ["released", "released"]


def test_unpicklable_argument_fails_at_the_call_site(cluster):
    lock = threading.Lock()
    with pytest.raises(SerializationError, match=r"lock object .* at \[0\]\[1\]"):
        add.remote(1, lock)


def test_calling_remote_things_directly_is_a_clear_error(cluster):
    with pytest.raises(TypeError, match=r"double.remote"):
        double(1)
    with pytest.raises(TypeError, match=r"Counter.remote"):
        Counter()


def test_worker_output_reaches_the_driver(cluster, capfd):
    @nexus.remote
    def shout(text):
        print(text)
        return True

    assert nexus.get(shout.remote("hello from a worker"))
    out = ""

    def printed():
        nonlocal out
        out += capfd.readouterr().out
        return "hello from a worker" in out

    wait_until(printed, timeout=30, interval=0.05)
    assert "(worker-" in out


def test_errors_are_in_one_hierarchy():
    assert issubclass(GetTimeoutError, NexusError) and issubclass(ActorDiedError, NexusError)


def test_await_a_ref_in_the_driver_and_in_an_async_actor(cluster):
    async def main():
        return await double.remote(4)

    assert asyncio.run(main()) == 8
    awaiter = Awaiter.remote()
    assert nexus.get(awaiter.double_of.remote(5), timeout=20) == 10


@nexus.remote
def echo(value):
    return value


@nexus.remote
def crash():
    os._exit(3)


@nexus.remote
class Ordered:
    def __init__(self):
        self.log = []

    def add(self, name, after=None):  # a ref passed as ``after`` is resolved before the call runs
        self.log.append(name)
        return list(self.log)


def test_big_values_without_buffers_travel_through_shared_memory(cluster):
    blob = os.urandom(6 * 1024 * 1024)
    assert nexus.get(echo.remote(blob), timeout=30) == blob
    text = "x" * (5 * 1024 * 1024)
    assert nexus.get(echo.remote([text]), timeout=30) == [text]


def test_calls_stay_in_order_while_one_of_them_waits(cluster, tmp_path):
    release = tmp_path / "release"
    actor = Ordered.remote()
    slow = wait_for_file.remote(str(release))
    try:
        first = actor.add.remote("a", slow)  # waits for its argument...
        second = actor.add.remote("b")  # ...and these wait behind it
        third = actor.add.remote("c")
    finally:
        release.touch()
    assert nexus.get([first, second, third], timeout=30)[-1] == ["a", "b", "c"]


def test_a_crashed_worker_is_replaced_and_queued_tasks_run(cluster):
    from nexus.core.errors import WorkerCrashedError

    with pytest.raises(WorkerCrashedError, match="exit code 3"):
        nexus.get(crash.remote(), timeout=20)
    assert nexus.get([double.remote(i) for i in range(6)], timeout=20) == [0, 2, 4, 6, 8, 10]


def test_a_function_or_class_defined_again_runs_its_own_definition(cluster):
    # Each definition replaces the one before, which is then freed: Python reuses its id(), which must not
    # make the workers run the predecessor's code (as it did when definitions were identified by id()).
    results = []
    for i in range(20):

        @nexus.remote
        def g():
            return i

        results.append(nexus.get(g.remote(), timeout=20))
    assert results == list(range(20))
    values = []
    for i in range(10):

        @nexus.remote
        class A:
            def value(self):
                return i

        actor = A.remote()
        values.append(nexus.get(actor.value.remote(), timeout=20))
        nexus.kill(actor)
        del actor, A
    assert values == list(range(10))
    same = [double.options(num_cpus=1) for _ in range(3)]
    nexus.get([f.remote(1) for f in same], timeout=20)
    assert len({f._def.id for f in [double, *same]}) == 1, "copies with other options share the definition"


@nexus.remote
def defines_and_calls_its_own():
    @nexus.remote
    def inner():
        return 1

    assert nexus.get(inner.remote(), timeout=20) == 1
    return int.from_bytes(inner._def.id, "big")


@local_only
def test_definition_ids_are_ids_of_the_node_and_process_that_first_used_them(cluster):
    from nexus.cluster import session
    from nexus.cluster.state.ids import node_of, process_of

    runtime = session.current_driver("this test")
    nexus.get(double.remote(1), timeout=20)
    mine = int.from_bytes(double._def.id, "big")
    assert (node_of(mine), process_of(mine)) == (runtime.node_id, 0)
    theirs = nexus.get(defines_and_calls_its_own.remote(), timeout=20)
    assert node_of(theirs) == runtime.node_id and process_of(theirs) >= 1  # a worker's


def test_sys_exit_in_a_task_is_its_worker_exiting_and_is_retried(cluster, tmp_path):
    @nexus.remote(max_retries=0)
    def quits():
        sys.exit(3)

    @nexus.remote(max_retries=1)
    def quits_once(marker):
        if not os.path.exists(marker):
            open(marker, "w").close()
            sys.exit()
        return "second attempt"

    with pytest.raises(WorkerCrashedError, match="exit code 3"):
        nexus.get(quits.remote(), timeout=30)
    assert nexus.get(quits_once.remote(str(tmp_path / "marker")), timeout=30) == "second attempt"
    assert nexus.get(double.remote(21), timeout=30) == 42, "the pool replaced the worker"


def test_a_remote_exception_that_is_not_an_exception_does_not_pose_as_the_callers(cluster):
    @nexus.remote
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(TaskError, match="KeyboardInterrupt"):
        nexus.get(interrupted.remote(), timeout=20)


def test_an_exception_class_defined_in_a_script_is_caught_as_itself():
    script = textwrap.dedent(
        """
        import nexus

        class MyError(Exception):
            pass

        @nexus.remote
        def fails():
            raise MyError("mine")

        @nexus.remote
        class Actor:
            def fails(self):
                raise MyError("from an actor")

        nexus.init(num_cpus=1)
        for ref in (fails.remote(), Actor.remote().fails.remote()):
            try:
                nexus.get(ref, timeout=30)
            except MyError as exc:
                print("caught", exc)
        nexus.shutdown()
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["caught mine", "caught from an actor"], proc.stdout + proc.stderr


def test_cancel_a_task_waiting_for_an_argument(cluster, tmp_path):
    release = tmp_path / "release"
    blocker = wait_for_file.remote(str(release))
    waiting = double.remote(blocker)
    nexus.cancel(waiting)
    with pytest.raises(TaskCancelledError, match="waited for its arguments"):
        nexus.get(waiting, timeout=10)
    release.touch()
    assert nexus.get(blocker, timeout=30) == "released", "the argument's task itself ran on"


def test_arguments_that_do_not_fit_the_signature_fail_at_the_call(cluster):
    with pytest.raises(TypeError, match=r"double.remote\(\) does not fit double\(x\): too many positional arguments"):
        double.remote(1, 2)
    with pytest.raises(TypeError, match="missing a required argument: 'b'"):
        add.remote(1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'c'"):
        add.remote(1, 2, c=3)
    assert nexus.get(add.remote(1, b=2)) == 3
    with pytest.raises(TypeError, match=r"Counter.remote\(\) does not fit"):
        Counter.remote(1, 2)
    counter = Counter.remote()
    with pytest.raises(TypeError, match=r"Counter.incr.remote\(\) does not fit Counter.incr\(k=...\)"):
        counter.incr.remote(1, 2)
    with pytest.raises(TypeError, match="does not fit"):
        counter.incr.tell(1, 2)
    assert nexus.get(call_actor.remote(counter, 5)) == 5, "a handle passed to a task checks there too"
    with pytest.raises(TypeError, match="does not fit"):
        nexus.get(bad_call_from_a_task.remote(counter), timeout=20)


def test_get_and_wait_of_something_else_say_what_they_take(cluster):
    with pytest.raises(TypeError, match="takes an ObjectRef or a list of ObjectRefs, not int 42"):
        nexus.get(42)
    with pytest.raises(TypeError, match="the list holds str 'x'"):
        nexus.get([double.remote(1), "x"])
    with pytest.raises(TypeError, match="nexus.wait takes a list of ObjectRefs, not int 42"):
        nexus.wait(42)


@nexus.remote
def resources_seen_inside():
    return nexus.cluster_resources(), [n["NodeID"] for n in nexus.nodes()]


@local_only  # (one node, this process's; across hosts: tests/remote)
def test_nodes_and_resources_as_ray_gives_them(cluster):
    from nexus.cluster import session

    runtime = session.current_driver("this test")
    (node,) = nexus.nodes()
    assert node["Alive"] and node["NodeID"] == f"{runtime.node_id:06x}"
    assert node["Resources"]["CPU"] == runtime.num_cpus
    total = nexus.cluster_resources()
    assert total["CPU"] == runtime.num_cpus and total["object_store_memory"] > 0
    assert nexus.available_resources()["CPU"] <= total["CPU"]
    (listed,) = nexus.state.list_nodes()
    assert listed.node_id == node["NodeID"] and listed.alive and listed.workers == len(runtime.workers)
    inside_total, inside_nodes = nexus.get(resources_seen_inside.remote(), timeout=20)
    assert inside_total == total and inside_nodes == [node["NodeID"]], "a task sees the same cluster"

    @nexus.remote(num_cpus=0)
    class Holder:
        def ping(self):
            return True

    holder = Holder.options(num_cpus=1).remote()
    assert nexus.get(holder.ping.remote(), timeout=20)
    held = nexus.available_resources().get("CPU", 0.0)
    assert held <= total["CPU"] - 1, "an actor holding a CPU makes it unavailable"
    nexus.kill(holder)


@local_only
def test_memory_is_a_resource_tasks_and_actors_reserve(cluster):
    total = nexus.cluster_resources()["memory"]
    assert total > 0, "70% of the RAM less the object store's share"

    @nexus.remote(num_cpus=0, memory=100 << 20)
    class Reserves:
        def free_memory(self):
            return nexus.available_resources()["memory"]

    holder = Reserves.remote()
    assert nexus.get(holder.free_memory.remote(), timeout=20) == total - (100 << 20)
    nexus.kill(holder)
    wait_until(lambda: nexus.available_resources()["memory"] == total)
    with pytest.raises(ValueError, match=r"can never run: it needs [\d.e+]+ memory"):
        double.options(memory=2 * total).remote(1)


def never_runs(submit, match: str) -> None:
    """What no node could ever run, or options the head cannot place by, fail with ``match``: at ``.remote()`` in
    a driver of this process, at ``get`` in one attached to a head (it does not wait for the head's answer to a
    submission)."""
    with pytest.raises(ValueError, match=match):
        nexus.get(submit(), timeout=20)


def test_scheduling_strategies_as_in_ray(cluster):
    here = next(n["NodeID"] for n in nexus.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) >= 1)
    assert nexus.get(double.options(scheduling_strategy="SPREAD").remote(2), timeout=20) == 4
    pinned = nexus.NodeAffinitySchedulingStrategy(here)
    assert nexus.get(double.options(scheduling_strategy=pinned).remote(3), timeout=20) == 6
    nowhere = nexus.NodeAffinitySchedulingStrategy("abcdef" if here != "abcdef" else "abcdee")
    never_runs(lambda: double.options(scheduling_strategy=nowhere).remote(1), "can never run: node .* is not alive")
    soft = nexus.NodeAffinitySchedulingStrategy(nowhere.node_id, soft=True)
    assert nexus.get(double.options(scheduling_strategy=soft).remote(4), timeout=20) == 8, "soft: runs elsewhere"
    never_runs(lambda: double.options(scheduling_strategy="EVERYWHERE").remote(1), "scheduling_strategy is 'DEFAULT', 'SPREAD'")
    never_runs(lambda: double.options(scheduling_strategy=nexus.NodeAffinitySchedulingStrategy("not hex")).remote(1), "takes a NodeID")


@local_only  # (it holds every CPU of a one-node cluster; across hosts: tests/remote)
def test_a_queued_task_says_why_it_waits_in_the_state_api(cluster):
    @nexus.remote(num_cpus=0)
    class Holder:
        def ping(self):
            return True

    holder = Holder.options(num_cpus=2).remote()  # every CPU of the cluster
    assert nexus.get(holder.ping.remote(), timeout=20)
    ref = double.remote(5)
    queued = wait_for_state(lambda: [t for t in nexus.state.list_tasks() if t.name == "double" and t.state == "queued"])
    assert re.fullmatch(r"waiting for 1 CPU: node [0-9a-f]{6} has 0 CPU free", queued[0].waiting_for or ""), queued
    nexus.kill(holder)
    assert nexus.get(ref, timeout=20) == 10, "it runs once the actor gives its CPUs back"
    assert all(t.waiting_for is None for t in nexus.state.list_tasks() if t.state != "queued")


def wait_for_state(probe, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError("the state API never showed it")


def test_a_label_selector_as_in_ray(cluster):
    """This host has no labels: a selector that needs one can never run here, one that excludes it runs."""
    never_runs(lambda: double.options(label_selector={"zone": "a"}).remote(1), "can never run: no node has the labels it asks for")
    assert nexus.get(double.options(label_selector={"zone": "!a"}).remote(2), timeout=20) == 4
    assert nexus.get(double.options(label_selector={"zone": "!in(a,b)"}).remote(3), timeout=20) == 6
    never_runs(
        lambda: double.options(label_selector={"zone": "in()"}).remote(1), r"label_selector\['zone'\] is a value, '!value', 'in\(a,b\)'"
    )
    never_runs(lambda: double.options(label_selector={"zone": 1}).remote(1), "label_selector maps label names to values")
    never_runs(lambda: Counter.options(label_selector={"gpu": "a100"}).remote().get.remote(), "can never run: no node has the labels")


@nexus.remote
def _streamed(n):
    for i in range(n):
        yield np.full(1 << 17, i)  # (1 MiB each: through the store)


def test_a_generator_streams_its_values(cluster):
    gen = _streamed.remote(3)
    assert [int(nexus.get(ref)[0]) for ref in gen] == [0, 1, 2]
    with pytest.raises(StopIteration):
        next(gen)
