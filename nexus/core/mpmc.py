"""MpmcQueue: a thread-safe multi-producer, multi-consumer queue.

Bounded (on a :class:`~nexus.core.ring.SyncRing`) or unbounded, with blocking
and non-blocking operations and ``close()`` that wakes every waiter. The
bounded mailbox is built on it.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Generic, TypeVar

from . import _threadstate
from .ring import SyncRing

__all__ = ["MpmcQueue", "QueueClosed", "QueueEmpty", "QueueFull", "QueueStatistics"]

T = TypeVar("T")


class QueueEmpty(Exception):
    """``get_nowait`` on an empty queue, or ``get`` timed out."""


class QueueFull(Exception):
    """``put_nowait`` on a full queue, or ``put`` timed out."""


class QueueClosed(Exception):
    """The queue is closed: no more puts, and gets fail once it is drained."""


@dataclass(frozen=True, slots=True)
class QueueStatistics:
    depth: int
    capacity: int | None
    puts: int
    gets: int
    high_water: int


class MpmcQueue(Generic[T]):
    """A FIFO shared by any number of producer and consumer threads."""

    def __init__(self, capacity: int | None = None) -> None:
        self._items: SyncRing[T] | collections.deque[T]
        self._items = SyncRing(capacity) if capacity is not None else collections.deque()
        self._capacity = capacity
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False
        self._puts = 0
        self._gets = 0
        self._high_water = 0

    # ---- internals (lock held) -------------------------------------------

    def _full(self) -> bool:
        return self._capacity is not None and len(self._items) >= self._capacity

    def _push(self, item: T) -> None:
        if isinstance(self._items, SyncRing):
            self._items.push(item)
        else:
            self._items.append(item)
        self._puts += 1
        depth = len(self._items)
        self._high_water = max(self._high_water, depth)
        self._not_empty.notify()

    def _pop(self) -> T:
        items = self._items
        item = items.pop() if isinstance(items, SyncRing) else items.popleft()
        self._gets += 1
        self._not_full.notify()
        return item

    # ---- producers ---------------------------------------------------------

    def put_nowait(self, item: T) -> None:
        with self._lock:
            if self._closed:
                raise QueueClosed("put on a closed queue")
            if self._full():
                raise QueueFull(f"queue is full ({self._capacity} items)")
            self._push(item)

    def put(self, item: T, timeout: float | None = None) -> None:
        """Append, waiting up to ``timeout`` s for space (forever if None)."""
        with self._lock:
            if self._full() and not self._closed:
                _threadstate.before_blocking()
                deadline = None if timeout is None else time.monotonic() + timeout
                while self._full() and not self._closed:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise QueueFull(f"queue stayed full ({self._capacity} items) for {timeout} s")
                    self._not_full.wait(remaining)
            if self._closed:
                raise QueueClosed("put on a closed queue")
            self._push(item)

    def put_evicting(self, item: T) -> T | None:
        """Append; when full, drop and return the oldest item to make room."""
        with self._lock:
            if self._closed:
                raise QueueClosed("put on a closed queue")
            evicted = self._pop() if self._full() else None
            self._push(item)
            return evicted

    def put_front(self, items: list[T]) -> None:
        """Put ``items`` back at the head in their order, even beyond capacity."""
        if not items:
            return
        with self._lock:
            ring = self._items
            if isinstance(ring, SyncRing):
                if len(ring) + len(items) > ring.capacity:
                    grown: SyncRing[T] = SyncRing(len(ring) + len(items))
                    for it in items:
                        grown.push(it)
                    for it in ring:
                        grown.push(it)
                    self._items = grown
                else:
                    for it in reversed(items):
                        ring.push_front(it)
            else:
                ring.extendleft(reversed(items))
            self._high_water = max(self._high_water, len(self._items))
            self._not_empty.notify(len(items))

    # ---- consumers -------------------------------------------------------

    def get_nowait(self) -> T:
        with self._lock:
            if not self._items:
                if self._closed:
                    raise QueueClosed("queue is closed and drained")
                raise QueueEmpty("queue is empty")
            return self._pop()

    def get(self, timeout: float | None = None) -> T:
        """Remove the head, waiting up to ``timeout`` s for one (forever if None)."""
        with self._lock:
            if not self._items and not self._closed:
                _threadstate.before_blocking()
                deadline = None if timeout is None else time.monotonic() + timeout
                while not self._items and not self._closed:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise QueueEmpty(f"queue stayed empty for {timeout} s")
                    self._not_empty.wait(remaining)
            if not self._items:
                raise QueueClosed("queue is closed and drained")
            return self._pop()

    def drain(self) -> list[T]:
        """Remove and return everything queued, oldest first."""
        with self._lock:
            items = list(self._items)
            if isinstance(self._items, SyncRing):
                self._items.clear()
            else:
                self._items.clear()
            self._gets += len(items)
            self._not_full.notify_all()
            return items

    # ---- state -----------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def capacity(self) -> int | None:
        return self._capacity

    def __len__(self) -> int:
        return len(self._items)

    def statistics(self) -> QueueStatistics:
        with self._lock:
            return QueueStatistics(len(self._items), self._capacity, self._puts, self._gets, self._high_water)
