"""A bounded ring of events with a monotonically increasing cursor.

Producers never block and never wait for readers: when the ring is full the
oldest entries are overwritten. A reader keeps a cursor (the sequence number
of the next event it wants) and gets what is new since then, plus how many
events it missed when the producers lapped it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["EventRing", "ReadResult"]

T = TypeVar("T")


class ReadResult(Generic[T]):
    """What :meth:`EventRing.read` returns: the events, the cursor to pass next time, how many were missed."""

    __slots__ = ("cursor", "events", "missed")

    def __init__(self, events: list[T], cursor: int, missed: int) -> None:
        self.events = events
        self.cursor = cursor
        self.missed = missed

    def __iter__(self) -> Any:
        return iter((self.events, self.cursor, self.missed))

    def __repr__(self) -> str:
        return f"ReadResult({len(self.events)} events, cursor={self.cursor}, missed={self.missed})"


class EventRing(Generic[T]):
    """``capacity`` slots; :meth:`append` is O(1) and lock-free under the GIL (a counter and a list store)."""

    def __init__(self, capacity: int = 65536) -> None:
        if capacity < 1:
            raise ValueError(f"an event ring needs a positive capacity, not {capacity!r}")
        self.capacity = capacity
        self._slots: list[tuple[int, Any] | None] = [None] * capacity
        self._counter = itertools.count()
        self._next = 0  # one past the last sequence number handed out (may lag a concurrent append briefly)

    def append(self, item: T) -> int:
        seq = next(self._counter)
        self._slots[seq % self.capacity] = (seq, item)
        if seq >= self._next:
            self._next = seq + 1
        return seq

    @property
    def cursor(self) -> int:
        """The sequence number the next event will get: a reader starting now passes this to read only new events."""
        return self._next

    @property
    def oldest(self) -> int:
        return max(0, self._next - self.capacity)

    def read(self, cursor: int = 0, limit: int | None = None, where: Callable[[T], bool] | None = None) -> ReadResult[T]:
        """Events from ``cursor`` on (at most ``limit``); ``missed`` counts those overwritten before they were read."""
        end = self._next
        start = max(cursor, end - self.capacity, 0)
        missed = max(0, start - cursor)
        out: list[T] = []
        seq = start
        slots, capacity = self._slots, self.capacity
        while seq < end:
            entry = slots[seq % capacity]
            if entry is None or entry[0] != seq:  # overwritten meanwhile by a newer lap
                if entry is not None and entry[0] > seq:
                    missed += 1
                seq += 1
                continue
            item = entry[1]
            seq += 1
            if where is None or where(item):
                out.append(item)
                if limit is not None and len(out) >= limit:
                    break
        return ReadResult(out, seq, missed)

    def __len__(self) -> int:
        return min(self._next, self.capacity)
