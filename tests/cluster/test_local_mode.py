"""nexus.init(local_mode=True), as Ray's: tasks and actors run in the driver's own process when they are
called, with the API unchanged (get, wait, put, errors, named actors, nested tasks)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

import nexus
from nexus.exceptions import ActorDiedError, TaskError

SEEN: list[str] = []  # (in this process: local mode runs the functions themselves, not copies)


@nexus.remote
def square(x: int) -> int:
    SEEN.append(f"square {x}")
    return x * x


@nexus.remote(num_returns=2)
def both(x: int) -> tuple[int, int]:
    return x, -x


@nexus.remote
def total(*xs: int) -> int:
    return sum(xs) + nexus.get(square.remote(2))  # (a nested task)


@nexus.remote
def fails() -> None:
    raise KeyError("nope")


@nexus.remote
class Counter:
    def __init__(self, start: int) -> None:
        self.n = start

    def add(self, by: int) -> int:
        self.n += by
        return self.n

    async def later(self) -> int:
        return self.n

    def pid(self) -> int:
        return os.getpid()


@pytest.fixture
def local() -> Iterator[None]:
    info = nexus.init(local_mode=True, num_cpus=2)
    assert info["transport"] == "local" and info["workers"] == 0
    try:
        yield
    finally:
        nexus.shutdown()


def test_tasks_run_in_this_process_when_called_and_get_wait_put_work(local: None) -> None:
    SEEN.clear()
    ref = square.remote(3)
    assert SEEN == ["square 3"], "it ran at .remote(), here"
    assert nexus.get(ref) == 9 and nexus.get([square.remote(4), nexus.put(5)]) == [16, 5]
    assert nexus.get(list(both.remote(7))) == [7, -7]
    assert nexus.get(total.remote(ref, 1)) == 9 + 1 + 4, "refs as arguments resolved, nested tasks run"
    ready, rest = nexus.wait([ref, square.remote(1)], num_returns=2, timeout=1)
    assert len(ready) == 2 and rest == []
    with pytest.raises(KeyError) as caught:
        nexus.get(fails.remote())
    assert isinstance(caught.value, TaskError)
    assert nexus.cluster_resources()["CPU"] == 2.0 and len(nexus.nodes()) == 1


def test_actors_are_instances_here_called_in_order_named_and_killed(local: None) -> None:
    counter = Counter.options(name="count").remote(10)
    assert nexus.get([counter.add.remote(1), counter.add.remote(2)]) == [11, 13]
    assert nexus.get(counter.later.remote()) == 13 and nexus.get(counter.pid.remote()) == os.getpid()
    assert nexus.get(nexus.get_actor("count").add.remote(0)) == 13
    assert nexus.get(counter.__ray_ready__.remote()) is True
    with pytest.raises(ValueError, match="already exists"):
        Counter.options(name="count").remote(0)
    nexus.kill(counter)
    with pytest.raises(ActorDiedError, match="killed"):
        nexus.get(counter.add.remote(1))
    with pytest.raises(ValueError, match="no actor named 'count'"):
        nexus.get_actor("count")


@nexus.remote
class Waiting:
    def __init__(self) -> None:
        self.ready: asyncio.Event | None = None

    async def arm(self) -> None:
        self.ready = asyncio.Event()  # (bound to the actor's loop: the next call must run on the same one)

    async def fire(self) -> bool:
        assert self.ready is not None
        self.ready.set()
        await asyncio.wait_for(self.ready.wait(), 5)
        return True


def test_an_async_actor_keeps_one_event_loop_for_its_life_and_local_mode_takes_no_address(local: None) -> None:
    waiting = Waiting.remote()
    nexus.get(waiting.arm.remote())
    assert nexus.get(waiting.fire.remote()) is True
    with pytest.raises(ValueError, match="takes no address"):
        nexus.shutdown()
        nexus.init(local_mode=True, address="127.0.0.1:1")
    nexus.init(local_mode=True)


@nexus.remote
def counting(n: int):
    yield from range(n)
    raise ValueError("the end")


@nexus.remote
class Yielder:
    def items(self, n: int):
        yield from range(n)

    async def later(self, n: int):
        for i in range(n):
            await asyncio.sleep(0)
            yield i * 2


def test_generators_stream_their_values_and_the_error_last(local: None) -> None:
    gen = counting.remote(3)
    refs = list(gen)
    assert nexus.get(refs[:3]) == [0, 1, 2] and len(refs) == 4
    with pytest.raises(ValueError, match="the end"):
        nexus.get(refs[3])
    with pytest.raises(ValueError, match="the end"):  # (a dynamic call fails as a whole)
        nexus.get(counting.options(num_returns="dynamic").remote(0))
    yielder = Yielder.remote()
    assert [nexus.get(r) for r in yielder.items.remote(2)] == [0, 1]
    assert [nexus.get(r) for r in yielder.later.remote(3)] == [0, 2, 4]


def test_a_definition_too_large_for_a_cluster_is_refused_here_too(local: None) -> None:
    big = bytes(61 << 20)  # (captured: the definition would travel with it)

    @nexus.remote
    def heavy() -> int:
        return len(big)

    @nexus.remote
    class Heavy:
        def size(self) -> int:
            return len(big)

    with pytest.raises(ValueError, match="The remote function .*heavy is too large"):
        heavy.remote()
    with pytest.raises(ValueError, match="The actor .*Heavy is too large"):
        Heavy.remote()
    assert nexus.get(square.remote(3)) == 9  # (and the rest goes on)
