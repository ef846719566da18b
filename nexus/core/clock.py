"""Time and timers: the real clock with one timer thread, and a manual clock for tests.

Everything in the runtime that waits for time (ask and expect timeouts,
receive timeouts, backoff before a restart) goes through a :class:`Clock`, so
tests can drive time by hand with :class:`ManualClock`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Any, Callable, Protocol

__all__ = ["Clock", "ManualClock", "SystemClock", "TimerHandle"]

_log = logging.getLogger("nexus.core.clock")


class TimerHandle:
    """A scheduled call; ``cancel()`` prevents it if it has not run yet."""

    __slots__ = ("deadline", "_seq", "_fn", "_args", "cancelled", "_owner")

    def __init__(self, deadline: float, seq: int, fn: Callable[..., Any], args: tuple[Any, ...], owner: Any) -> None:
        self.deadline = deadline
        self._seq = seq
        self._fn = fn
        self._args = args
        self.cancelled = False
        self._owner = owner

    def __lt__(self, other: TimerHandle) -> bool:
        return (self.deadline, self._seq) < (other.deadline, other._seq)

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self._owner._cancelled_one()

    def _run(self) -> None:
        try:
            self._fn(*self._args)
        except Exception:
            _log.exception("timer callback %r raised", self._fn)


class Clock(Protocol):
    """Monotonic time and delayed calls. Timer callbacks must be short and must not block."""

    def now(self) -> float: ...

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> TimerHandle: ...

    def close(self) -> None: ...


class _TimerHeap:
    """A heap of timers with lazy cancellation and compaction."""

    def __init__(self) -> None:
        self._heap: list[TimerHandle] = []
        self._seq = itertools.count()
        self._cancelled = 0

    def _push(self, deadline: float, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[TimerHandle, bool]:
        self._compact_if_worth_it()
        handle = TimerHandle(deadline, next(self._seq), fn, args, self)
        heapq.heappush(self._heap, handle)
        return handle, self._heap[0] is handle

    def _cancelled_one(self) -> None:
        # No lock: the count only decides when to compact, and an approximate one does.
        # (Cancelling under the lock made ask(timeout=...) ~40% slower.)
        self._cancelled += 1

    def _compact_if_worth_it(self) -> None:
        """Drop cancelled timers once they are most of the heap (called with the heap guarded)."""
        if self._cancelled > 64 and self._cancelled > len(self._heap) // 2:
            self._heap = [h for h in self._heap if not h.cancelled]
            heapq.heapify(self._heap)
            self._cancelled = 0

    def _pop_due(self, now: float) -> list[TimerHandle]:
        due = []
        heap = self._heap
        while heap and heap[0].deadline <= now:
            handle = heapq.heappop(heap)
            if handle.cancelled:
                self._cancelled = max(0, self._cancelled - 1)
            else:
                due.append(handle)
        return due

    def pending(self) -> int:
        return sum(1 for h in self._heap if not h.cancelled)


class SystemClock(_TimerHeap):
    """``time.monotonic`` plus a timer thread that starts on the first ``call_later``."""

    def __init__(self, name: str = "nexus-timer") -> None:
        super().__init__()
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._closed = False

    def now(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> TimerHandle:
        with self._cond:
            if self._closed:  # a closed clock fires nothing and keeps nothing
                handle = TimerHandle(time.monotonic() + max(delay, 0.0), 0, fn, args, self)
                handle.cancelled = True
                return handle
            handle, earliest = self._push(time.monotonic() + max(delay, 0.0), fn, args)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            elif earliest:
                self._cond.notify()
        return handle

    def _loop(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while True:
                    if self._closed:
                        return
                    now = time.monotonic()
                    due = self._pop_due(now)
                    if due:
                        break
                    timeout = self._heap[0].deadline - now if self._heap else None
                    cond.wait(timeout)
            for handle in due:
                if self._closed:
                    return  # close() was called by an earlier timer of this batch, or meanwhile
                if not handle.cancelled:
                    handle._run()

    def close(self) -> None:
        """Stop the timer thread; pending timers never fire."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)


class ManualClock(_TimerHeap):
    """A clock that moves only when told to; timers fire inside ``advance``.

    Use it with the deterministic dispatcher for tests that depend on time
    (timeouts, backoff) without sleeping.
    """

    def __init__(self, start: float = 0.0) -> None:
        super().__init__()
        self._now = start
        self._lock = threading.RLock()

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> TimerHandle:
        with self._lock:
            handle, _ = self._push(self._now + max(delay, 0.0), fn, args)
        return handle

    def advance(self, seconds: float) -> int:
        """Move time forward, firing due timers in deadline order; return how many fired."""
        if seconds < 0:
            raise ValueError(f"a clock only moves forward; advance({seconds}) is negative")
        target = self._now + seconds
        fired = 0
        while True:
            with self._lock:
                if not self._heap or self._heap[0].deadline > target:
                    break
                handle = self._heap[0]
                self._now = max(self._now, handle.deadline)
                due = self._pop_due(self._now)
            for h in due:
                if not h.cancelled:
                    h._run()
                    fired += 1
        self._now = target
        return fired

    def pending_timers(self) -> int:
        return self.pending()

    def close(self) -> None:
        with self._lock:
            self._heap.clear()
