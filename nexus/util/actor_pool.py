"""A fixed pool of actors that work is spread over (Ray's ``ray.util.ActorPool``).

::

    from nexus.util import ActorPool

    pool = ActorPool([Worker.remote() for _ in range(4)])
    list(pool.map(lambda actor, v: actor.double.remote(v), range(10)))  # in order
    set(pool.map_unordered(lambda actor, v: actor.double.remote(v), range(10)))  # as they finish

``fn(actor, value)`` starts the work on an idle actor and returns its
ObjectRef (or a list of them); the actor is busy until that result is taken
with ``get_next`` (in the order of ``submit``) or ``get_next_unordered`` (the
first to finish). Work submitted while every actor is busy waits in the pool
(``_pending_submits``, as Ray's) and starts as actors come free. A result
``get_next`` waited for in vain with ``ignore_if_timedout=True`` is dropped;
its actor comes back to the pool when that work has finished, not before, so
no later work runs behind it. ``get_next_unordered`` with it gives None when
nothing finished in time and drops nothing (as Ray's).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..cluster.api import get, wait

__all__ = ["ActorPool"]

_TIMED_OUT = "Timed out waiting for result"


class ActorPool:
    """Work spread over ``actors`` (a list of actor handles), one piece of work per actor at a time."""

    def __init__(self, actors: Iterable[Any]) -> None:
        self._idle: list[Any] = list(actors)
        self._running: dict[Any, tuple[int, Any]] = {}  # key of the work's refs -> (its index, its actor)
        self._refs: dict[int, Any] = {}  # index -> what fn returned (a ref or a list of refs)
        self._next_index = 0  # of the next work submitted
        self._next_return = 0  # of the next result get_next returns
        # Work waiting for a free actor (Ray's pool names it so too)
        self._pending_submits: collections.deque[tuple[Callable[[Any, Any], Any], Any]] = collections.deque()
        self._dropped: dict[Any, Any] = {}  # key -> actor: work whose result was given up on (its actor stays busy)

    def __repr__(self) -> str:
        return f"ActorPool({len(self._idle)} idle, {len(self._running) + len(self._dropped)} busy, {len(self._pending_submits)} waiting)"

    # -- submitting --------------------------------------------------------------------------

    def submit(self, fn: Callable[[Any, Any], Any], value: Any) -> None:
        """Start ``fn(actor, value)`` on an idle actor, or keep it until one is free."""
        self._reap()
        if not self._idle:
            self._pending_submits.append((fn, value))
            return
        actor = self._idle.pop()
        try:
            refs = fn(actor, value)
        except BaseException:  # (fn's error is the caller's; the actor stays in the pool)
            self._idle.append(actor)
            raise
        index, self._next_index = self._next_index, self._next_index + 1
        self._running[_key(refs)] = (index, actor)
        self._refs[index] = refs

    def map(self, fn: Callable[[Any, Any], Any], values: Iterable[Any]) -> Iterator[Any]:
        """The results of ``fn`` over ``values``, in their order (earlier results not yet taken are dropped)."""
        self._drop_all()
        for value in values:
            self.submit(fn, value)
        return self._results(self.get_next)

    def map_unordered(self, fn: Callable[[Any, Any], Any], values: Iterable[Any]) -> Iterator[Any]:
        """The results of ``fn`` over ``values``, as they finish (earlier results not yet taken are dropped)."""
        self._drop_all()
        for value in values:
            self.submit(fn, value)
        return self._results(self.get_next_unordered)

    def _results(self, take: Callable[[], Any]) -> Iterator[Any]:
        while self.has_next():
            yield take()

    # -- taking results ----------------------------------------------------------------------

    def has_next(self) -> bool:
        """Whether some submitted work's result has not been taken yet."""
        return bool(self._running) or bool(self._pending_submits)

    def get_next(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """The next result in the order of ``submit``; TimeoutError if it is not there within ``timeout`` (with
        ``ignore_if_timedout``, that result is given up on and the next call moves past it)."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        self._start_waiting(timeout)
        if not self._running:
            raise TimeoutError(_TIMED_OUT)
        if self._next_return not in self._refs:
            raise ValueError("get_next() cannot follow get_next_unordered(): take the rest unordered")
        refs = self._refs[self._next_return]
        if timeout is not None and not _ready(refs, timeout):
            if not ignore_if_timedout:
                raise TimeoutError(_TIMED_OUT)
            self._drop(_key(refs))
            raise TimeoutError(f"{_TIMED_OUT}; that work's result is dropped")
        return self._take(_key(refs))

    def get_next_unordered(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """The result of whichever submitted work finishes first; TimeoutError if none does within ``timeout``
        (with ``ignore_if_timedout``, None instead: the work goes on and its results may still be taken)."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        self._start_waiting(timeout)
        if not self._running:  # (every actor is still busy with work whose result was dropped)
            if ignore_if_timedout:
                return None
            raise TimeoutError(_TIMED_OUT)
        firsts = {_first(self._refs[index]): key for key, (index, _actor) in self._running.items()}
        ready, _ = wait(list(firsts), num_returns=1, timeout=timeout)
        if not ready:
            if not ignore_if_timedout:
                raise TimeoutError(_TIMED_OUT)
            return None  # (as Ray's: nothing is given up on; a later call may still take each result)
        return self._take(firsts[ready[0]])

    def _take(self, key: Any) -> Any:
        index, actor = self._running.pop(key)
        refs = self._refs.pop(index)
        self._next_return = max(self._next_return, index + 1)
        try:
            return get(refs)
        finally:  # (a failed piece of work frees its actor too; the error is the caller's)
            self._free(actor)

    def _drop(self, key: Any) -> None:
        index, actor = self._running.pop(key)
        del self._refs[index]
        self._next_return = max(self._next_return, index + 1)
        self._dropped[key] = actor

    def _drop_all(self) -> None:
        self._pending_submits.clear()
        for key in list(self._running):
            self._drop(key)

    # -- actors ------------------------------------------------------------------------------

    def has_free(self) -> bool:
        """Whether an actor is idle and no work waits for one."""
        self._reap()
        return bool(self._idle) and not self._pending_submits

    def pop_idle(self) -> Any:
        """Take an idle actor out of the pool (None if none is idle)."""
        return self._idle.pop() if self.has_free() else None

    def push(self, actor: Any) -> None:
        """Add ``actor`` to the pool (it takes the work waiting, if any); ValueError if it is in the pool already."""
        busy = [a for _index, a in self._running.values()] + list(self._dropped.values())
        if any(actor is a or actor == a for a in [*self._idle, *busy]):
            raise ValueError("that actor is in this pool already")
        self._free(actor)

    def _free(self, actor: Any) -> None:
        self._idle.append(actor)
        self._start_waiting()

    def _start_waiting(self, timeout: float | None = 0.0) -> None:
        """Start waiting work on idle actors; if every actor is busy with dropped work, wait for one (``timeout``)."""
        self._reap()
        if self._pending_submits and not self._idle and not self._running and self._dropped:
            wait([_first(key) for key in self._dropped], num_returns=1, timeout=timeout)
            self._reap()
        while self._idle and self._pending_submits:
            self.submit(*self._pending_submits.popleft())

    def _reap(self) -> None:
        """Give back the actors of dropped work that has finished."""
        if not self._dropped:
            return
        firsts = {_first(key): key for key in self._dropped}
        done, _ = wait(list(firsts), num_returns=len(firsts), timeout=0)
        for ref in done:
            self._idle.append(self._dropped.pop(firsts[ref]))


def _key(refs: Any) -> Any:
    return tuple(refs) if isinstance(refs, list) else refs


def _first(refs: Any) -> Any:
    return refs[0] if isinstance(refs, (list, tuple)) else refs


def _ready(refs: Any, timeout: float) -> bool:
    every = list(refs) if isinstance(refs, (list, tuple)) else [refs]
    ready, _ = wait(every, num_returns=len(every), timeout=timeout)
    return len(ready) == len(every)
