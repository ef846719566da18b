"""nexus.util.queue.Queue on a real local cluster: blocking and non-blocking put and get, timeouts, batches,
order, producers and consumers in tasks and actors, async use, shutdown with callers waiting."""

from __future__ import annotations

import asyncio
import queue as stdlib_queue
import time
from typing import Any

import pytest

import nexus
from nexus.util.queue import Empty, Full, Queue


@nexus.remote
def produce(q: Queue, items: list[Any], pause: float = 0.0) -> int:
    time.sleep(pause)
    for item in items:
        q.put(item)
    return len(items)


@nexus.remote
def consume(q: Queue, n: int, timeout: float | None = None) -> list[Any]:
    return [q.get(timeout=timeout) for _ in range(n)]


@nexus.remote
class Collector:
    def __init__(self, q: Queue) -> None:
        self.q = q

    def drain(self, n: int) -> list[Any]:
        return [self.q.get(timeout=30) for _ in range(n)]


def test_items_come_out_in_order_and_size_empty_full_say_how_it_stands(cluster: str) -> None:
    q = Queue(maxsize=3)
    assert q.empty() and not q.full() and len(q) == q.qsize() == q.size() == 0
    for i in range(3):
        q.put(i)
    assert q.full() and len(q) == 3 and not q.empty()
    assert [q.get() for _ in range(3)] == [0, 1, 2]
    q.put_nowait_batch(["a", "b"])
    assert q.get_nowait_batch(2) == ["a", "b"] and q.get_nowait_batch(0) == []
    assert repr(q) == "Queue(maxsize=3)"
    q.shutdown()


def test_non_blocking_and_timed_calls_raise_full_and_empty(cluster: str) -> None:
    q = Queue(maxsize=1)
    with pytest.raises(Empty):
        q.get_nowait()
    with pytest.raises(Empty):
        q.get(block=False)
    started = time.monotonic()
    with pytest.raises(Empty, match="stayed empty"):
        q.get(timeout=0.3)
    assert time.monotonic() - started >= 0.3
    q.put_nowait(1)
    with pytest.raises(Full):
        q.put_nowait(2)
    with pytest.raises(Full, match="stayed full"):
        q.put(2, timeout=0.2)
    with pytest.raises(stdlib_queue.Full):  # (the standard library's exceptions catch them too)
        q.put(2, block=False)
    with pytest.raises(Full, match="do not fit"):
        q.put_nowait_batch([2, 3])
    with pytest.raises(Empty, match="not the 2 asked for"):
        q.get_nowait_batch(2)
    assert q.get() == 1, "a refused batch took nothing out, nor put anything in"
    with pytest.raises(ValueError, match="'timeout'"):
        q.put(1, timeout=-1)
    with pytest.raises(ValueError, match="'timeout'"):
        q.get(timeout=-1)
    with pytest.raises(TypeError):
        q.put_nowait_batch(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="0 or more"):
        q.get_nowait_batch(-1)
    with pytest.raises(ValueError, match="maxsize"):
        Queue(maxsize=-1)
    q.shutdown()


def test_a_blocked_get_waits_for_a_put_from_a_task_and_a_blocked_put_for_room(cluster: str) -> None:
    q = Queue(maxsize=1)
    producer = produce.remote(q, ["late"], 0.3)
    assert q.get(timeout=30) == "late" and nexus.get(producer, timeout=30) == 1
    q.put("first")
    blocked = produce.remote(q, ["second"])  # (waits for room, in the task's worker)
    time.sleep(0.3)
    assert q.get() == "first"
    assert nexus.get(blocked, timeout=30) == 1 and q.get(timeout=30) == "second"
    q.shutdown()


def test_producers_in_tasks_and_consumers_in_actors_lose_and_repeat_nothing(cluster: str) -> None:
    q = Queue(maxsize=5)  # (the producers wait for room most of the time)
    producers = [produce.remote(q, [(p, i) for i in range(40)]) for p in range(2)]
    collectors = [Collector.remote(q) for _ in range(2)]
    consumers = [c.drain.remote(25) for c in collectors]
    mine = [q.get(timeout=30) for _ in range(30)]
    theirs = nexus.get(consumers, timeout=60)
    assert nexus.get(producers, timeout=60) == [40, 40]
    got = mine + [x for part in theirs for x in part]
    assert sorted(got) == sorted((p, i) for p in range(2) for i in range(40)), "each item once"
    for p in range(2):
        for seen in (mine, *theirs):
            own = [i for q_, i in seen if q_ == p]
            assert own == sorted(own), "one producer's items come out in its order"
    assert q.empty()
    q.shutdown()


def test_async_put_and_get_and_many_waiting_getters_served_in_their_order(cluster: str) -> None:
    q = Queue()

    async def main() -> list[Any]:
        getters = [asyncio.ensure_future(q.get_async(timeout=30)) for _ in range(3)]
        await asyncio.sleep(0.3)
        for i in range(3):
            await q.put_async(i)
        return list(await asyncio.gather(*getters))

    assert sorted(asyncio.run(main())) == [0, 1, 2]
    with pytest.raises(Empty):
        asyncio.run(q.get_async(block=False))
    q.shutdown()


def test_shutdown_fails_waiting_callers_and_later_use_says_so(cluster: str) -> None:
    q = Queue()
    waiting = consume.remote(q, 1)  # (no timeout: it would wait for ever)
    time.sleep(0.5)
    q.shutdown()
    with pytest.raises(Exception, match="shut down|died|killed"):
        nexus.get(waiting, timeout=30)
    with pytest.raises(RuntimeError, match="shut down"):
        q.put(1)
    q.shutdown()  # (again: nothing to do)
    forced = Queue(actor_options={"name": "forced-queue"})
    assert nexus.get_actor("forced-queue") is not None
    forced.shutdown(force=True)
