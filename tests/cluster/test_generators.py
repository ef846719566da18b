"""Generator tasks and methods, as Ray's: ``yield`` in remote code, ``num_returns="streaming"`` (the default for a
generator), ``"dynamic"`` and an int; ObjectRefGenerator (next, iteration, async iteration, errors mid-stream,
cancel, back-pressure), in the driver and inside workers, and nothing left behind."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import numpy as np
import pytest

import nexus
from nexus.cluster import api
from nexus.cluster.generators import DynamicObjectRefGenerator, ObjectRefGenerator
from nexus.core.errors import SerializationError
from nexus.exceptions import GetTimeoutError, TaskCancelledError, TaskError
from tests.conftest import wait_until

from .conftest import local_only


@nexus.remote
def count(n: int, pause: float = 0.0):
    for i in range(n):
        if pause:
            time.sleep(pause)
        yield i * 10


@nexus.remote
def fails_after(n: int):
    yield from range(n)
    raise ValueError(f"failed after {n}")


@nexus.remote(num_returns="dynamic")
def dynamic(n: int):
    for i in range(n):
        yield np.full(4, i)


@nexus.remote(num_returns=3)
def three():
    yield "a"
    yield "b"
    yield "c"


@nexus.remote
def not_a_generator() -> int:
    return 1


@nexus.remote
def sum_of_stream(n: int) -> int:  # (a consumer inside a worker)
    return sum(nexus.get(ref) for ref in count.remote(n))


@nexus.remote
class Progress:
    def __init__(self) -> None:
        self.made = 0

    def made_one(self) -> None:
        self.made += 1

    def seen(self) -> int:
        return self.made


@nexus.remote
def counted(n: int, progress):
    for i in range(n):
        nexus.get(progress.made_one.remote())
        yield i


@nexus.remote
class Streamer:
    def items(self, n: int):
        for i in range(n):
            yield f"item {i}"

    async def slowly(self, n: int):
        for i in range(n):
            await asyncio.sleep(0.01)
            yield i

    @nexus.method(num_returns="dynamic")
    def all_at_once(self, n: int):
        yield from range(n)

    def plain(self) -> str:
        return "plain"


@nexus.remote(max_concurrency=2)
class ThreadedStreamer:
    def items(self, n: int):
        yield from range(n)


def test_a_generator_task_streams_its_values_in_order(cluster: str) -> None:
    gen = count.remote(5)
    assert isinstance(gen, ObjectRefGenerator)
    refs = list(gen)
    assert [nexus.get(r) for r in refs] == [0, 10, 20, 30, 40]
    assert gen.is_finished()
    with pytest.raises(StopIteration):
        next(gen)
    assert nexus.get(gen.completed()) is None
    assert [nexus.get(r) for r in count.remote(0)] == []


def test_values_come_while_the_generator_still_runs(cluster: str) -> None:
    gen = count.remote(3, 1.0)
    first = next(gen)
    assert nexus.get(first) == 0
    ready, _ = nexus.wait([gen.completed()], timeout=0)
    assert not ready, "the first value came only once the generator had ended"
    assert [nexus.get(r) for r in gen] == [10, 20]


def test_next_sync_times_out_and_the_stream_goes_on(cluster: str) -> None:
    gen = count.remote(2, 1.5)
    with pytest.raises(GetTimeoutError):
        gen._next_sync(timeout_s=0.1)
    assert nexus.get(gen._next_sync(timeout_s=60)) == 0
    assert not gen.next_ready() or nexus.get(next(gen)) == 10


def test_an_error_mid_stream_comes_as_the_next_value_then_the_end(cluster: str) -> None:
    gen = fails_after.remote(2)
    assert [nexus.get(next(gen)), nexus.get(next(gen))] == [0, 1]
    broken = next(gen)
    with pytest.raises(ValueError, match="failed after 2") as raised:
        nexus.get(broken)
    assert isinstance(raised.value, TaskError)
    with pytest.raises(StopIteration):
        next(gen)
    with pytest.raises(ValueError):
        nexus.get(gen.completed())


def test_async_iteration(cluster: str) -> None:
    async def read() -> list[int]:
        return [await ref async for ref in count.remote(4)]

    assert asyncio.run(read()) == [0, 10, 20, 30]


def test_dynamic_returns_every_values_ref_at_once(cluster: str) -> None:
    refs = nexus.get(dynamic.remote(3))
    assert isinstance(refs, DynamicObjectRefGenerator) and len(refs) == 3
    assert [int(nexus.get(r)[0]) for r in refs] == [0, 1, 2]
    again = nexus.get(count.options(num_returns="dynamic").remote(2))
    assert [nexus.get(r) for r in again] == [0, 10]


def test_an_int_num_returns_takes_the_yielded_values_as_results(cluster: str) -> None:
    assert nexus.get(three.remote()) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="num_returns=3 but yielded 2"):
        nexus.get(count.options(num_returns=3).remote(2))
    assert nexus.get(count.options(num_returns=2).remote(3)) == [0, 10]  # (more are dropped, as Ray's)


def test_a_generator_that_fails_keeps_the_values_it_yielded(cluster: str) -> None:
    first, second, third = fails_after.options(num_returns=3).remote(1)
    assert nexus.get(first) == 0
    for ref in (second, third):
        with pytest.raises(ValueError, match="failed after 1"):
            nexus.get(ref)
    refs = list(nexus.get(fails_after.options(num_returns="dynamic").remote(2)))
    assert len(refs) == 3 and nexus.get(refs[:2]) == [0, 1]
    with pytest.raises(ValueError, match="failed after 2"):
        nexus.get(refs[2])


def test_streaming_a_function_that_does_not_yield_is_an_error(cluster: str) -> None:
    gen = not_a_generator.options(num_returns="streaming").remote()
    with pytest.raises(TypeError, match="not a generator"):
        nexus.get(next(gen))
    with pytest.raises(ValueError, match="The keyword 'num_returns' only accepts None, a non-negative integer, or \"dynamic\""):
        count.options(num_returns="lots")


def test_a_worker_consumes_a_stream(cluster: str) -> None:
    assert nexus.get(sum_of_stream.remote(4), timeout=60) == 60


def test_actor_methods_stream_sync_async_threaded_and_dynamic(cluster: str) -> None:
    streamer = Streamer.remote()
    assert [nexus.get(r) for r in streamer.items.remote(3)] == ["item 0", "item 1", "item 2"]
    assert [nexus.get(r) for r in streamer.slowly.remote(3)] == [0, 1, 2]
    assert [nexus.get(r) for r in nexus.get(streamer.all_at_once.remote(2))] == [0, 1]
    assert nexus.get(streamer.plain.remote()) == "plain"
    assert [nexus.get(r) for r in nexus.get(streamer.items.options(num_returns="dynamic").remote(2))] == ["item 0", "item 1"]
    assert nexus.get(streamer.items.options(num_returns=2).remote(2)) == ["item 0", "item 1"]
    assert [nexus.get(r) for r in streamer.all_at_once.options(num_returns="streaming").remote(2)] == [0, 1]
    threaded = ThreadedStreamer.remote()
    assert [nexus.get(r) for r in threaded.items.remote(3)] == [0, 1, 2]
    nexus.kill(streamer)
    nexus.kill(threaded)


def test_back_pressure_holds_the_generator_until_its_values_are_read(cluster: str) -> None:
    progress = Progress.remote()
    gen = counted.options(_generator_backpressure_num_objects=2).remote(10, progress)
    assert nexus.get(next(gen)) == 0
    time.sleep(1.0)
    made = nexus.get(progress.seen.remote())
    assert 2 <= made <= 4, f"{made} values were made while the consumer read one (room for 2)"
    assert [nexus.get(r) for r in gen] == list(range(1, 10))
    free = Progress.remote()
    unbounded = counted.remote(10, free)
    next(unbounded)
    deadline = time.monotonic() + 30
    while nexus.get(free.seen.remote()) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert nexus.get(free.seen.remote()) == 10, "without back-pressure the generator runs ahead"


def test_cancel_stops_a_running_generator(cluster: str) -> None:
    gen = count.remote(1000, 0.05)
    assert nexus.get(next(gen)) == 0
    nexus.cancel(gen)
    got = 0
    with pytest.raises(TaskCancelledError):
        for ref in gen:
            nexus.get(ref)
            got += 1
    assert got < 900
    with pytest.raises(StopIteration):
        next(gen)


def test_large_values_travel_through_the_store(cluster: str) -> None:
    @nexus.remote
    def arrays(n: int):
        for i in range(n):
            yield np.full(1 << 18, i, dtype=np.float64)  # 2 MiB each

    assert [float(nexus.get(r)[-1]) for r in arrays.remote(4)] == [0.0, 1.0, 2.0, 3.0]


def _entries() -> int:
    return len(api._runtime().objects.entries)


@local_only
def test_nothing_is_left_behind(cluster: str) -> None:
    runtime = api._runtime()
    list(count.remote(1))
    before = _entries()
    assert [nexus.get(r) for r in count.remote(5)] == [0, 10, 20, 30, 40]
    refs = list(fails_after.remote(3))
    assert nexus.get(refs[:3]) == [0, 1, 2] and len(refs) == 4
    del refs
    wait_until(lambda: _entries() <= before, timeout=30)  # values of streams read to the end stay stored
    dropped = count.remote(5)
    next(dropped)
    waiting = count.remote(5, 0.5)
    next(waiting)
    next(waiting)  # (asked for while it was being made)
    del dropped, waiting
    wait_until(lambda: not runtime.streams.streams and _entries() <= before, timeout=30)  # a dropped stream's values stay


@local_only
def test_a_retried_generator_does_not_repeat_its_values(cluster: str, tmp_path: Path) -> None:
    @nexus.remote(max_retries=1)
    def dies_once(marker: str):
        for i in range(4):
            yield i
            if i == 1 and not os.path.exists(marker):
                Path(marker).write_text("died")
                os._exit(1)

    assert [nexus.get(r) for r in dies_once.remote(str(tmp_path / "marker"))] == [0, 1, 2, 3]


class FlakyError(Exception):
    pass


@nexus.remote(num_returns="dynamic", max_retries=1)
def fails_the_first_time(progress):
    for i in range(3):
        yield i
        nexus.get(progress.made_one.remote())
        if i == 1 and nexus.get(progress.seen.remote()) == 2:  # (the first run only)
            raise FlakyError("first run")


@local_only
def test_a_dynamic_generator_that_raises_is_retried_as_retry_exceptions_says(cluster: str) -> None:
    before = _entries()
    progress = Progress.remote()
    refs = list(nexus.get(fails_the_first_time.options(retry_exceptions=[FlakyError]).remote(progress)))
    assert nexus.get(refs) == [0, 1, 2], "the second run's values, all of them"
    assert nexus.get(progress.seen.remote()) == 5
    progress = Progress.remote()
    refs = list(nexus.get(fails_the_first_time.options(retry_exceptions=[KeyError]).remote(progress)))
    assert len(refs) == 3 and nexus.get(refs[:2]) == [0, 1], "not retried: its values, then its error"
    with pytest.raises(FlakyError, match="first run"):
        nexus.get(refs[2])
    del refs, progress
    wait_until(lambda: _entries() <= before, timeout=30)  # (the first run's values and error are let go too)


def test_the_generator_itself_does_not_travel(cluster: str) -> None:
    with pytest.raises((TypeError, SerializationError), match="pass the refs"):
        sum_of_stream.remote(count.remote(1))
