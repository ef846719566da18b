"""ObjectRef.future() and ObjectRef._on_completed, as Ray's: a concurrent.futures.Future of the value (or of
the error get would raise), and a callback when the value is there; ObjectRef.as_future(), an asyncio future of it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import pytest

import nexus


@nexus.remote
def slow(x: int, pause: float) -> int:
    time.sleep(pause)
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x * 10


def test_a_refs_future_settles_with_its_value_or_its_error(cluster: str) -> None:
    refs = [slow.remote(i, 0.3 - i * 0.1) for i in range(3)]
    futures = [ref.future() for ref in refs]
    assert [f.result(timeout=30) for f in futures] == [0, 10, 20]
    done = concurrent.futures.wait([slow.remote(1, 0.0).future(), slow.remote(2, 0.0).future()], timeout=30)
    assert len(done.done) == 2
    failing = slow.remote(-1, 0.0).future()
    with pytest.raises(ValueError, match="negative: -1"):
        failing.result(timeout=30)
    twice = nexus.put("same")
    assert twice.future().result(timeout=30) == twice.future().result(timeout=30) == "same"


def test_on_completed_calls_back_with_the_value(cluster: str) -> None:
    got: list[object] = []
    called = threading.Event()

    def back(value: object) -> None:
        got.append(value)
        called.set()

    slow.remote(4, 0.2)._on_completed(back)
    assert called.wait(30) and got == [40]
    called.clear()
    slow.remote(-2, 0.0)._on_completed(back)
    assert called.wait(30) and isinstance(got[-1], ValueError)


def test_as_future_is_awaited_on_the_event_loop_and_cancelling_it_leaves_the_work(cluster: str) -> None:
    async def scenario() -> None:
        assert await slow.remote(3, 0.1).as_future() == 30
        with pytest.raises(ValueError, match="negative: -3"):
            await slow.remote(-3, 0.0).as_future()
        waited = slow.remote(5, 1.0)
        impatient = waited.as_future()
        assert isinstance(impatient, asyncio.Future)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(impatient, timeout=0.1)
        assert impatient.cancelled()
        assert await waited.as_future() == 50 and await waited == 50, "the value still comes, as often as asked"

    asyncio.run(scenario())
