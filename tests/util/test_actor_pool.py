"""nexus.util.ActorPool on a real local cluster: map and map_unordered, submit and the get_next forms, work that
waits for a free actor, timeouts that drop a result (its actor back only once that work is done), failures,
push and pop_idle, and the work waiting for an actor (``_pending_submits``, as Ray's)."""

from __future__ import annotations

import time
from typing import Any

import pytest

import nexus
from nexus.util import ActorPool


@nexus.remote
class Doubler:
    def __init__(self) -> None:
        self.calls = 0

    def double(self, v: int, pause: float = 0.0) -> int:
        self.calls += 1
        time.sleep(pause)
        if v < 0:
            raise ValueError(f"no negative numbers: {v}")
        return 2 * v

    def pair(self, v: int) -> tuple[int, int]:
        return v, -v

    def count(self) -> int:
        return self.calls


def _double(actor: Any, v: Any) -> Any:
    return actor.double.remote(*v) if isinstance(v, tuple) else actor.double.remote(v)


def test_map_keeps_the_order_and_map_unordered_gives_them_as_they_finish(cluster: str) -> None:
    actors = [Doubler.remote() for _ in range(2)]
    pool = ActorPool(actors)
    assert list(pool.map(_double, range(8))) == [2 * v for v in range(8)]
    finished = list(pool.map_unordered(_double, [(1, 2.0), (2, 0.0), (3, 0.0)]))
    assert sorted(finished) == [2, 4, 6] and finished[-1] == 2, "the slow one comes last"
    assert sum(nexus.get([a.count.remote() for a in actors], timeout=30)) == 11, "each value ran once"
    assert not pool.has_next() and pool.has_free()


def test_submit_waits_for_a_free_actor_and_get_next_takes_results_in_submit_order(cluster: str) -> None:
    pool = ActorPool([Doubler.remote()])
    for v in range(4):
        pool.submit(_double, v)  # (one actor: three wait in the pool)
    assert pool.has_next() and not pool.has_free() and pool.pop_idle() is None
    assert [pool.get_next() for _ in range(4)] == [0, 2, 4, 6]
    with pytest.raises(StopIteration, match="No more results"):
        pool.get_next()
    with pytest.raises(StopIteration):
        pool.get_next_unordered()
    pool.submit(lambda a, v: a.pair.remote(v), 5)
    assert pool.get_next() == (5, -5)


def test_a_timed_out_result_is_dropped_and_its_actor_comes_back_only_when_its_work_is_done(cluster: str) -> None:
    pool = ActorPool([Doubler.remote()])
    pool.submit(_double, (1, 1.0))
    with pytest.raises(TimeoutError, match="Timed out"):
        pool.get_next(timeout=0.1)
    assert pool.has_next(), "without ignore_if_timedout the result stays"
    with pytest.raises(TimeoutError, match="dropped"):
        pool.get_next(timeout=0.1, ignore_if_timedout=True)
    assert not pool.has_next() and not pool.has_free(), "its actor is still busy with the dropped work"
    pool.submit(_double, 7)  # (waits for that work to end)
    started = time.monotonic()
    assert pool.get_next(timeout=30) == 14 and time.monotonic() - started > 0.3
    assert pool.has_free()


def test_get_next_unordered_gives_none_when_told_to_ignore_a_timeout_and_drops_nothing(cluster: str) -> None:
    pool = ActorPool([Doubler.remote()])
    pool.submit(_double, (2, 1.0))
    with pytest.raises(TimeoutError, match="Timed out"):
        pool.get_next_unordered(timeout=0.1)
    assert pool.get_next_unordered(timeout=0.1, ignore_if_timedout=True) is None
    assert pool.has_next(), "the work goes on: its result can still be taken"
    assert pool.get_next_unordered(timeout=30) == 4 and not pool.has_next() and pool.has_free()


def test_a_failed_piece_of_work_raises_its_error_and_frees_its_actor(cluster: str) -> None:
    pool = ActorPool([Doubler.remote()])
    pool.submit(_double, -1)
    pool.submit(_double, 4)
    with pytest.raises(ValueError, match="no negative numbers"):
        pool.get_next()
    assert pool.get_next() == 8 and pool.has_free()


def test_push_and_pop_idle_change_the_pool_and_an_actor_is_in_it_once(cluster: str) -> None:
    first, second = Doubler.remote(), Doubler.remote()
    pool = ActorPool([first])
    pool.submit(_double, (1, 0.3))
    pool.submit(_double, 2)  # (waits: the one actor is busy)
    pool.push(second)  # (takes the waiting work at once)
    assert sorted([pool.get_next_unordered(), pool.get_next_unordered()]) == [2, 4]
    with pytest.raises(ValueError, match="in this pool already"):
        pool.push(first)
    taken = pool.pop_idle()
    assert taken in (first, second) and pool.pop_idle() not in (None, taken) and pool.pop_idle() is None
    assert not pool.has_free()
    with pytest.raises(ValueError, match="cannot follow"):
        pool.push(first)
        pool.push(second)
        pool.submit(_double, (1, 0.5))
        pool.submit(_double, 2)
        pool.get_next_unordered()
        pool.get_next()


def test_work_waits_in_pending_submits_until_a_pushed_actor_takes_it(cluster: str) -> None:
    pool = ActorPool([Doubler.remote()])
    pool.submit(_double, (3, 0.5))
    pool.submit(_double, 4)
    assert len(pool._pending_submits) == 1 and not pool.has_free()
    pool.push(Doubler.remote())
    assert len(pool._pending_submits) == 0 and not pool.has_free(), "the new actor took the waiting work"
    assert sorted([pool.get_next_unordered(timeout=30), pool.get_next_unordered(timeout=30)]) == [6, 8]
