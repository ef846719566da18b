"""MpmcQueue: bounded and unbounded, blocking and non-blocking, close, statistics, stress."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from nexus.core.mpmc import MpmcQueue, QueueClosed, QueueEmpty, QueueFull, QueueStatistics

BOTH = pytest.mark.parametrize("capacity", [None, 4], ids=["unbounded", "bounded"])


class Outcome:
    """Runs ``fn`` on a helper thread and records what it returned or raised."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.started = threading.Event()
        self._fn = fn
        self.thread = threading.Thread(target=self._run, name="test-mpmc-helper", daemon=True)
        self.thread.start()
        assert self.started.wait(5)

    def _run(self) -> None:
        self.started.set()
        try:
            self.value = self._fn()
        except BaseException as e:
            self.error = e

    def done(self) -> bool:
        return not self.thread.is_alive()

    def join(self) -> Outcome:
        self.thread.join(5)
        assert not self.thread.is_alive(), "helper thread is still blocked"
        return self


def _still_blocked(outcome: Outcome, for_seconds: float = 0.05) -> bool:
    outcome.thread.join(for_seconds)
    return outcome.thread.is_alive()


# ---- non-blocking put and get -----------------------------------------------------


@BOTH
def test_put_nowait_and_get_nowait_are_fifo(capacity: int | None) -> None:
    q: MpmcQueue[int] = MpmcQueue(capacity)
    assert q.capacity == capacity
    for i in range(4):
        q.put_nowait(i)
    assert len(q) == 4
    assert [q.get_nowait() for _ in range(4)] == [0, 1, 2, 3]
    assert len(q) == 0


@BOTH
def test_get_nowait_on_an_empty_queue_raises_queue_empty(capacity: int | None) -> None:
    q: MpmcQueue[int] = MpmcQueue(capacity)
    with pytest.raises(QueueEmpty):
        q.get_nowait()
    q.put_nowait(1)
    q.get_nowait()
    with pytest.raises(QueueEmpty):
        q.get_nowait()


def test_put_nowait_on_a_full_bounded_queue_raises_queue_full_and_stores_nothing() -> None:
    q: MpmcQueue[int] = MpmcQueue(2)
    q.put_nowait(1)
    q.put_nowait(2)
    with pytest.raises(QueueFull):
        q.put_nowait(3)
    assert len(q) == 2
    assert q.get_nowait() == 1
    q.put_nowait(3)
    assert q.drain() == [2, 3]


def test_an_unbounded_queue_never_fills() -> None:
    q: MpmcQueue[int] = MpmcQueue()
    for i in range(10_000):
        q.put_nowait(i)
    q.put(10_000, timeout=0)
    assert len(q) == 10_001
    assert q.get_nowait() == 0


def test_falsy_items_are_queued_like_any_other() -> None:
    q: MpmcQueue[Any] = MpmcQueue(3)
    q.put_nowait(None)
    q.put_nowait(0)
    q.put_nowait("")
    assert [q.get_nowait(), q.get_nowait(), q.get_nowait()] == [None, 0, ""]


@pytest.mark.parametrize("capacity", [0, -1])
def test_a_bounded_queue_needs_a_positive_capacity(capacity: int) -> None:
    with pytest.raises(ValueError):
        MpmcQueue(capacity)


# ---- blocking put and get across threads -------------------------------------------


@BOTH
def test_get_waits_for_an_item_from_another_thread(capacity: int | None) -> None:
    q: MpmcQueue[str] = MpmcQueue(capacity)
    getter = Outcome(lambda: q.get(timeout=10))
    assert _still_blocked(getter), "get returned without an item"
    q.put("hello")
    assert getter.join().value == "hello"
    assert getter.error is None
    assert len(q) == 0


def test_get_without_timeout_waits_until_an_item_arrives() -> None:
    q: MpmcQueue[int] = MpmcQueue(1)
    getter = Outcome(q.get)
    assert _still_blocked(getter)
    q.put_nowait(5)
    assert getter.join().value == 5


def test_put_waits_for_space_in_a_full_bounded_queue() -> None:
    q: MpmcQueue[int] = MpmcQueue(2)
    q.put_nowait(1)
    q.put_nowait(2)
    putter = Outcome(lambda: q.put(3, timeout=10))
    assert _still_blocked(putter), "put on a full queue returned without space"
    assert len(q) == 2
    assert q.get(timeout=1) == 1
    putter.join()
    assert putter.error is None
    assert q.drain() == [2, 3]


def test_put_without_timeout_waits_until_space_appears() -> None:
    q: MpmcQueue[int] = MpmcQueue(1)
    q.put_nowait(1)
    putter = Outcome(lambda: q.put(2))
    assert _still_blocked(putter)
    assert q.get_nowait() == 1
    putter.join()
    assert q.get_nowait() == 2


def test_drain_wakes_every_blocked_putter() -> None:
    q: MpmcQueue[int] = MpmcQueue(2)
    q.put_nowait(0)
    q.put_nowait(1)
    putters = [Outcome(lambda i=i: q.put(10 + i, timeout=10)) for i in range(2)]
    assert _still_blocked(putters[0])
    assert q.drain() == [0, 1]
    for p in putters:
        p.join()
        assert p.error is None
    assert sorted(q.drain()) == [10, 11]


def test_several_blocked_getters_each_get_one_item() -> None:
    q: MpmcQueue[int] = MpmcQueue()
    getters = [Outcome(lambda: q.get(timeout=10)) for _ in range(4)]
    assert _still_blocked(getters[0])
    for i in range(4):
        q.put(i)
    assert sorted(g.join().value for g in getters) == [0, 1, 2, 3]


@BOTH
def test_get_times_out_with_queue_empty(capacity: int | None) -> None:
    q: MpmcQueue[int] = MpmcQueue(capacity)
    start = time.monotonic()
    with pytest.raises(QueueEmpty):
        q.get(timeout=0.02)
    assert time.monotonic() - start >= 0.02 - 1e-3, "get gave up before its timeout"
    with pytest.raises(QueueEmpty):
        q.get(timeout=0)
    with pytest.raises(QueueEmpty):
        q.get(timeout=-1)


def test_put_times_out_with_queue_full_and_stores_nothing() -> None:
    q: MpmcQueue[int] = MpmcQueue(1)
    q.put_nowait(1)
    start = time.monotonic()
    with pytest.raises(QueueFull):
        q.put(2, timeout=0.02)
    assert time.monotonic() - start >= 0.02 - 1e-3, "put gave up before its timeout"
    with pytest.raises(QueueFull):
        q.put(2, timeout=0)
    assert q.drain() == [1]


def test_a_timed_get_returns_an_item_that_arrives_in_time() -> None:
    q: MpmcQueue[int] = MpmcQueue(1)
    getter = Outcome(lambda: q.get(timeout=10))
    time.sleep(0.01)
    q.put_nowait(3)
    assert getter.join().value == 3


def test_put_with_timeout_succeeds_at_once_when_there_is_space() -> None:
    q: MpmcQueue[int] = MpmcQueue(1)
    q.put(1, timeout=0)
    assert q.get(timeout=0) == 1


# ---- put_evicting and put_front ----------------------------------------------------


def test_put_evicting_returns_the_evicted_oldest_item() -> None:
    q: MpmcQueue[int] = MpmcQueue(3)
    assert q.put_evicting(1) is None
    assert q.put_evicting(2) is None
    assert q.put_evicting(3) is None
    assert q.put_evicting(4) == 1
    assert q.put_evicting(5) == 2
    assert len(q) == 3
    assert q.drain() == [3, 4, 5]


def test_put_evicting_on_an_unbounded_queue_never_evicts() -> None:
    q: MpmcQueue[int] = MpmcQueue()
    for i in range(100):
        assert q.put_evicting(i) is None
    assert q.drain() == list(range(100))


def test_put_evicting_wakes_a_blocked_getter() -> None:
    q: MpmcQueue[int] = MpmcQueue(1)
    getter = Outcome(lambda: q.get(timeout=10))
    assert _still_blocked(getter)
    assert q.put_evicting(7) is None
    assert getter.join().value == 7


@BOTH
def test_put_front_puts_items_back_at_the_head_in_their_order(capacity: int | None) -> None:
    q: MpmcQueue[str] = MpmcQueue(capacity)
    q.put_nowait("c")
    q.put_nowait("d")
    q.put_front(["a", "b"])
    assert len(q) == 4
    assert [q.get_nowait() for _ in range(4)] == ["a", "b", "c", "d"]


def test_put_front_with_nothing_is_a_no_op() -> None:
    q: MpmcQueue[int] = MpmcQueue(1)
    q.put_nowait(1)
    q.put_front([])
    assert q.drain() == [1]


def test_put_front_may_exceed_capacity_and_keeps_order() -> None:
    q: MpmcQueue[int] = MpmcQueue(3)
    q.put_nowait(4)
    q.put_nowait(5)
    q.put_front([1, 2, 3])
    assert len(q) == 5
    assert q.capacity == 3
    with pytest.raises(QueueFull):
        q.put_nowait(6)
    assert [q.get_nowait() for _ in range(3)] == [1, 2, 3]
    # back below capacity: the original bound applies again
    q.put_nowait(6)
    with pytest.raises(QueueFull):
        q.put_nowait(7)
    assert q.drain() == [4, 5, 6]
    for i in range(3):
        q.put_nowait(i)
    with pytest.raises(QueueFull):
        q.put_nowait(3)


def test_put_front_into_a_full_queue_then_put_evicting_evicts_the_head() -> None:
    q: MpmcQueue[int] = MpmcQueue(2)
    q.put_nowait(3)
    q.put_nowait(4)
    q.put_front([1, 2])
    assert q.put_evicting(5) == 1
    assert q.drain() == [2, 3, 4, 5]


def test_put_front_after_wrap_around_keeps_order() -> None:
    q: MpmcQueue[int] = MpmcQueue(4)
    for i in range(4):
        q.put_nowait(i)
    q.get_nowait()
    q.get_nowait()
    q.put_nowait(4)  # the ring has wrapped
    q.put_front([0, 1])
    assert q.drain() == [0, 1, 2, 3, 4]


def test_put_front_wakes_blocked_getters() -> None:
    q: MpmcQueue[int] = MpmcQueue(2)
    getters = [Outcome(lambda: q.get(timeout=10)) for _ in range(2)]
    assert _still_blocked(getters[0])
    q.put_front([1, 2])
    assert sorted(g.join().value for g in getters) == [1, 2]


# ---- close ------------------------------------------------------------------------


@BOTH
def test_close_wakes_blocked_getters_with_queue_closed(capacity: int | None) -> None:
    q: MpmcQueue[int] = MpmcQueue(capacity)
    getters = [Outcome(lambda: q.get(timeout=10)) for _ in range(3)] + [Outcome(q.get)]
    assert _still_blocked(getters[0])
    q.close()
    for g in getters:
        g.join()
        assert isinstance(g.error, QueueClosed)
    assert q.closed


def test_close_wakes_blocked_putters_with_queue_closed() -> None:
    q: MpmcQueue[int] = MpmcQueue(1)
    q.put_nowait(0)
    putters = [Outcome(lambda: q.put(1, timeout=10)), Outcome(lambda: q.put(2))]
    assert _still_blocked(putters[0])
    q.close()
    for p in putters:
        p.join()
        assert isinstance(p.error, QueueClosed)
    assert q.drain() == [0], "a put woken by close must not store its item"


@BOTH
def test_get_drains_remaining_items_before_raising_queue_closed(capacity: int | None) -> None:
    q: MpmcQueue[int] = MpmcQueue(capacity)
    for i in range(3):
        q.put_nowait(i)
    q.close()
    assert q.get(timeout=1) == 0
    assert q.get_nowait() == 1
    assert q.get() == 2
    with pytest.raises(QueueClosed):
        q.get(timeout=1)
    with pytest.raises(QueueClosed):
        q.get()
    with pytest.raises(QueueClosed):
        q.get_nowait()


@BOTH
def test_every_put_on_a_closed_queue_raises_queue_closed(capacity: int | None) -> None:
    q: MpmcQueue[int] = MpmcQueue(capacity)
    assert not q.closed
    q.close()
    assert q.closed
    with pytest.raises(QueueClosed):
        q.put_nowait(1)
    with pytest.raises(QueueClosed):
        q.put(1)
    with pytest.raises(QueueClosed):
        q.put(1, timeout=0)
    with pytest.raises(QueueClosed):
        q.put_evicting(1)
    assert len(q) == 0


def test_put_on_a_full_closed_queue_raises_queue_closed_not_queue_full() -> None:
    q: MpmcQueue[int] = MpmcQueue(1)
    q.put_nowait(1)
    q.close()
    with pytest.raises(QueueClosed):
        q.put_nowait(2)
    with pytest.raises(QueueClosed):
        q.put(2, timeout=0.01)


def test_close_is_idempotent() -> None:
    q: MpmcQueue[int] = MpmcQueue()
    q.close()
    q.close()
    assert q.closed


# ---- drain and statistics ------------------------------------------------------------


@BOTH
def test_drain_returns_everything_oldest_first(capacity: int | None) -> None:
    q: MpmcQueue[int] = MpmcQueue(capacity)
    assert q.drain() == []
    for i in range(4):
        q.put_nowait(i)
    assert q.drain() == [0, 1, 2, 3]
    assert len(q) == 0
    with pytest.raises(QueueEmpty):
        q.get_nowait()


@BOTH
def test_statistics_count_puts_gets_depth_and_high_water(capacity: int | None) -> None:
    q: MpmcQueue[int] = MpmcQueue(capacity)
    assert q.statistics() == QueueStatistics(depth=0, capacity=capacity, puts=0, gets=0, high_water=0)
    for i in range(3):
        q.put_nowait(i)
    q.get_nowait()
    q.get_nowait()
    q.put(3, timeout=1)  # a put below the earlier peak keeps the peak
    q.get(timeout=1)
    stats = q.statistics()
    assert stats == QueueStatistics(depth=1, capacity=capacity, puts=4, gets=3, high_water=3)
    q.put_nowait(4)
    q.drain()
    stats = q.statistics()
    assert (stats.depth, stats.puts, stats.gets, stats.high_water) == (0, 5, 5, 3)


def test_statistics_count_put_evicting() -> None:
    q: MpmcQueue[int] = MpmcQueue(2)
    for i in range(5):
        q.put_evicting(i)
    stats = q.statistics()
    assert stats.puts == 5
    assert stats.depth == 2
    assert stats.high_water == 2


def test_failed_puts_and_gets_are_not_counted() -> None:
    q: MpmcQueue[int] = MpmcQueue(1)
    with pytest.raises(QueueEmpty):
        q.get_nowait()
    q.put_nowait(1)
    with pytest.raises(QueueFull):
        q.put_nowait(2)
    with pytest.raises(QueueFull):
        q.put(2, timeout=0)
    stats = q.statistics()
    assert (stats.puts, stats.gets, stats.depth) == (1, 0, 1)


def test_high_water_is_never_below_the_depth_after_put_front() -> None:
    q: MpmcQueue[int] = MpmcQueue(2)
    q.put_nowait(3)
    q.put_front([1, 2])
    stats = q.statistics()
    assert stats.depth == 3
    assert stats.high_water >= stats.depth


def test_statistics_is_an_immutable_snapshot() -> None:
    q: MpmcQueue[int] = MpmcQueue()
    stats = q.statistics()
    q.put_nowait(1)
    assert stats.depth == 0
    with pytest.raises(AttributeError):
        stats.depth = 5  # type: ignore[misc]


# ---- multi-producer, multi-consumer stress ----------------------------------------------


@pytest.mark.parametrize("capacity", [None, 16], ids=["unbounded", "bounded"])
def test_many_producers_and_consumers_deliver_every_item_exactly_once(capacity: int | None) -> None:
    producers, consumers, per_producer = 4, 4, 5_000
    q: MpmcQueue[tuple[int, int]] = MpmcQueue(capacity)
    start = threading.Barrier(producers + consumers)
    received: list[list[tuple[int, int]]] = [[] for _ in range(consumers)]
    errors: list[BaseException] = []

    def produce(p: int) -> None:
        try:
            start.wait(5)
            for i in range(per_producer):
                q.put((p, i), timeout=10)
        except BaseException as e:
            errors.append(e)

    def consume(c: int) -> None:
        out = received[c]
        try:
            start.wait(5)
            while True:
                try:
                    out.append(q.get(timeout=10))
                except QueueClosed:
                    return
        except BaseException as e:
            errors.append(e)

    producer_threads = [threading.Thread(target=produce, args=(p,), name=f"test-producer-{p}") for p in range(producers)]
    consumer_threads = [threading.Thread(target=consume, args=(c,), name=f"test-consumer-{c}") for c in range(consumers)]
    for t in producer_threads + consumer_threads:
        t.start()
    for t in producer_threads:
        t.join(30)
    q.close()
    for t in consumer_threads:
        t.join(30)
    assert not any(t.is_alive() for t in producer_threads + consumer_threads), "a thread hung"
    assert errors == []

    everything = [item for out in received for item in out]
    assert len(everything) == producers * per_producer, "items lost or duplicated"
    assert set(everything) == {(p, i) for p in range(producers) for i in range(per_producer)}
    # FIFO: each consumer sees any one producer's items in the order they were put
    for out in received:
        for p in range(producers):
            seq = [i for (pp, i) in out if pp == p]
            assert seq == sorted(seq)
    stats = q.statistics()
    assert (stats.puts, stats.gets, stats.depth) == (producers * per_producer, producers * per_producer, 0)
    if capacity is not None:
        assert stats.high_water <= capacity
