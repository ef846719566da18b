"""SyncRing: a fixed-capacity ring buffer.

The seed design's standard mailbox storage: memory is allocated once, at
construction, and never grows. A SyncRing is not thread-safe on its own;
guard it with a lock (as :class:`~nexus.core.mpmc.MpmcQueue` does) or use it
from one thread.
"""

from __future__ import annotations

from typing import Any, Generic, Iterator, TypeVar

__all__ = ["SyncRing"]

T = TypeVar("T")


class SyncRing(Generic[T]):
    """A FIFO of at most ``capacity`` items in a preallocated list."""

    __slots__ = ("_slots", "_capacity", "_head", "_size")

    def __init__(self, capacity: int) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ValueError(f"SyncRing capacity must be a positive int, got {capacity!r}")
        self._slots: list[Any] = [None] * capacity
        self._capacity = capacity
        self._head = 0
        self._size = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def is_full(self) -> bool:
        return self._size == self._capacity

    def push(self, item: T) -> bool:
        """Append at the tail; return False (and store nothing) when full."""
        if self._size == self._capacity:
            return False
        self._slots[(self._head + self._size) % self._capacity] = item
        self._size += 1
        return True

    def push_front(self, item: T) -> bool:
        """Insert at the head; return False when full."""
        if self._size == self._capacity:
            return False
        self._head = (self._head - 1) % self._capacity
        self._slots[self._head] = item
        self._size += 1
        return True

    def pop(self) -> T:
        """Remove and return the head; raise IndexError when empty."""
        if self._size == 0:
            raise IndexError("pop from an empty SyncRing")
        head = self._head
        item = self._slots[head]
        self._slots[head] = None  # drop the reference at once
        self._head = (head + 1) % self._capacity
        self._size -= 1
        return item  # type: ignore[no-any-return]

    def peek(self) -> T:
        if self._size == 0:
            raise IndexError("peek into an empty SyncRing")
        return self._slots[self._head]  # type: ignore[no-any-return]

    def clear(self) -> list[T]:
        """Remove and return every item, oldest first."""
        items = list(self)
        self._slots = [None] * self._capacity
        self._head = 0
        self._size = 0
        return items

    def __iter__(self) -> Iterator[T]:
        for i in range(self._size):
            yield self._slots[(self._head + i) % self._capacity]

    def __repr__(self) -> str:
        return f"SyncRing(size={self._size}, capacity={self._capacity})"
