"""A first-in, first-out queue shared by the driver, tasks and actors (Ray's ``ray.util.queue.Queue``).

The items live in an actor (its methods are coroutines: a ``get`` waiting on
an empty queue holds up no ``put``); a :class:`Queue` is a handle to it that
pickles, so it is passed to tasks and actors like any value::

    from nexus.util.queue import Empty, Queue

    q = Queue(maxsize=100)
    q.put(1); q.put_nowait_batch([2, 3])
    q.get(timeout=1)                      # 1, or Empty after a second
    await q.get_async()                   # in a coroutine

``put`` and ``get`` block (``block=True``, the default) until there is room or
an item, for at most ``timeout`` seconds (then :class:`Full` or
:class:`Empty`); with ``block=False`` they raise at once. Items come out in
the order they went in; among callers that wait on a full or an empty queue,
the first to wait is served first. ``shutdown()`` stops the actor: callers
still waiting on it get an error saying so.
"""

from __future__ import annotations

import asyncio
import collections
import queue as _stdlib_queue
from collections.abc import Iterable
from typing import Any

from ..cluster.api import get, kill, remote, wait

__all__ = ["Empty", "Full", "Queue"]

_ACTOR_OPTIONS = {"max_concurrency": 1000, "num_cpus": 0}  # (waiting calls side by side; it holds no CPU while idle)


class Empty(_stdlib_queue.Empty):
    """The queue had no item (at once with ``block=False``, or within the timeout)."""


class Full(_stdlib_queue.Full):
    """The queue had no room (at once with ``block=False``, or within the timeout)."""


class Queue:
    """A FIFO queue in an actor of the cluster; ``maxsize`` 0 is unbounded. ``actor_options`` go to the actor's
    ``.options(...)`` (resources, a name, a lifetime)."""

    def __init__(self, maxsize: int = 0, actor_options: dict[str, Any] | None = None) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 0:
            raise ValueError(f"Queue: maxsize is a whole number, 0 for no limit, not {maxsize!r}")
        if actor_options is not None and not isinstance(actor_options, dict):
            raise TypeError(f"Queue: actor_options is a dict of actor options, not {type(actor_options).__name__}")
        self.maxsize = maxsize
        self.actor: Any = _actor_class().options(**{**_ACTOR_OPTIONS, **(actor_options or {})}).remote(maxsize)

    def __reduce__(self) -> Any:
        return (_rebuild, (self.maxsize, self.actor))

    def __len__(self) -> int:
        return self.size()

    def __repr__(self) -> str:
        return f"Queue(maxsize={self.maxsize})"

    def _live(self) -> Any:
        if self.actor is None:
            raise RuntimeError("this queue was shut down")
        return self.actor

    def size(self) -> int:
        """How many items the queue holds now."""
        return int(get(self._live().qsize.remote()))

    qsize = size

    def empty(self) -> bool:
        return bool(get(self._live().empty.remote()))

    def full(self) -> bool:
        return bool(get(self._live().full.remote()))

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add ``item``; if the queue is full, wait for room (at most ``timeout`` seconds) or, with ``block=False``,
        raise :class:`Full` at once."""
        get(self._live().put.remote(item, _wait(block, timeout)))

    async def put_async(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """``put``, awaited."""
        await self._live().put.remote(item, _wait(block, timeout))

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """The next item; if there is none, wait for one (at most ``timeout`` seconds) or, with ``block=False``,
        raise :class:`Empty` at once."""
        return get(self._live().get.remote(_wait(block, timeout)))

    async def get_async(self, block: bool = True, timeout: float | None = None) -> Any:
        """``get``, awaited."""
        return await self._live().get.remote(_wait(block, timeout))

    def put_nowait(self, item: Any) -> None:
        self.put(item, block=False)

    def get_nowait(self) -> Any:
        return self.get(block=False)

    def put_nowait_batch(self, items: Iterable[Any]) -> None:
        """Add all of ``items`` in order, or none of them (:class:`Full` if they do not all fit now)."""
        if not isinstance(items, Iterable):
            raise TypeError(f"put_nowait_batch takes an iterable of items, not {type(items).__name__}")
        get(self._live().put_batch.remote(list(items)))

    def get_nowait_batch(self, num_items: int) -> list[Any]:
        """The next ``num_items`` items in order, or none of them (:class:`Empty` if the queue holds fewer)."""
        if isinstance(num_items, bool) or not isinstance(num_items, int):
            raise TypeError(f"get_nowait_batch takes a whole number of items, not {num_items!r}")
        if num_items < 0:
            raise ValueError(f"get_nowait_batch: num_items is 0 or more, not {num_items}")
        return list(get(self._live().get_batch.remote(num_items)))

    def shutdown(self, force: bool = False, grace_period_s: float = 5) -> None:
        """Stop the queue's actor; callers waiting on it get an error. Unless ``force``, they are told first (for
        at most ``grace_period_s`` seconds); the items still in it are dropped."""
        actor, self.actor = self.actor, None
        if actor is None:
            return
        if not force:
            told = actor.close.remote()
            wait([told], timeout=grace_period_s)
        kill(actor, no_restart=True)


def _rebuild(maxsize: int, actor: Any) -> Queue:
    q = Queue.__new__(Queue)
    q.maxsize, q.actor = maxsize, actor
    return q


def _wait(block: bool, timeout: float | None) -> float | None:
    """How long the actor waits: 0 for no wait, None for as long as it takes."""
    if not block:
        return 0.0
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ValueError(f"'timeout' is a number of seconds, 0 or more, not {timeout!r}")
    return float(timeout)


class _QueueActor:
    """The items, and the callers waiting for room or for an item, each served in the order it came."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.items: collections.deque[Any] = collections.deque()
        self.getters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.putters: collections.deque[tuple[asyncio.Future[None], Any]] = collections.deque()
        self.closed = False

    def qsize(self) -> int:
        return len(self.items)

    def empty(self) -> bool:
        return not self.items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self.items)

    def _room(self, n: int = 1) -> bool:
        return self.maxsize == 0 or len(self.items) + n <= self.maxsize

    def _settle(self) -> None:
        """Hand items to waiting getters, and room to waiting putters, in their order."""
        while True:
            while self.getters and self.getters[0].done():  # (timed out)
                self.getters.popleft()
            while self.putters and self.putters[0][0].done():
                self.putters.popleft()
            if self.items and self.getters:
                self.getters.popleft().set_result(self.items.popleft())
            elif self.putters and self._room():
                waiter, item = self.putters.popleft()
                self.items.append(item)
                waiter.set_result(None)
            else:
                return

    async def put(self, item: Any, timeout: float | None) -> None:
        self._check()
        if not self.putters and self._room():
            self.items.append(item)
            self._settle()
            return
        if timeout == 0:
            raise Full(f"the queue is full ({self.maxsize} items)")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.putters.append((waiter, item))
        self._settle()
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except asyncio.TimeoutError:
            if not waiter.done():
                raise Full(f"the queue stayed full ({self.maxsize} items) for {timeout:g} s") from None
        finally:
            if not waiter.done():  # (timed out, or the call was cancelled: its item stays out)
                waiter.cancel()
            self._settle()
        waiter.result()  # (the item went in, perhaps just as the time ran out; or the queue was shut down)

    async def get(self, timeout: float | None) -> Any:
        self._check()
        if self.items and not self.getters:
            item = self.items.popleft()
            self._settle()
            return item
        if timeout == 0:
            raise Empty("the queue is empty")
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.getters.append(waiter)
        self._settle()
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except asyncio.TimeoutError:
            if not waiter.done():
                raise Empty(f"the queue stayed empty for {timeout:g} s") from None
            return waiter.result()  # (an item came just as the time ran out: it is this caller's)
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.items.appendleft(waiter.result())  # (handed to a call that is gone: first again)
            raise
        finally:
            if not waiter.done():
                waiter.cancel()
            self._settle()

    def put_batch(self, items: list[Any]) -> None:
        self._check()
        if self.putters or not self._room(len(items)):
            raise Full(f"{len(items)} items do not fit: the queue holds {len(self.items)} of at most {self.maxsize}")
        self.items.extend(items)
        self._settle()

    def get_batch(self, n: int) -> list[Any]:
        self._check()
        if n > len(self.items) or (n and self.getters):
            raise Empty(f"the queue holds {len(self.items)} items, not the {n} asked for")
        out = [self.items.popleft() for _ in range(n)]
        self._settle()
        return out

    def close(self) -> None:
        """Fail every waiting caller (the queue is being shut down)."""
        self.closed = True
        for waiter in [*self.getters, *(w for w, _ in self.putters)]:
            if not waiter.done():
                waiter.set_exception(RuntimeError("the queue was shut down while this call waited"))
        self.getters.clear()
        self.putters.clear()

    def _check(self) -> None:
        if self.closed:
            raise RuntimeError("the queue was shut down")


_actor: list[Any] = []


def _actor_class() -> Any:
    if not _actor:
        _actor.append(remote(_QueueActor))
    return _actor[0]
