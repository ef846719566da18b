"""DeterministicDispatcher: one thread, run by hand, for tests.

Turns run in the order they were scheduled, only when the test calls
``run_until_idle()`` (or while a caller waits on a future), so a test observes
the same interleaving every time. Combine with
:class:`~nexus.core.clock.ManualClock` to drive timeouts without sleeping.
"""

from __future__ import annotations

import collections
from typing import Any, Callable

from .dispatcher import DispatcherStatistics, TurnRunner
from .future import Future

__all__ = ["DeterministicDispatcher"]


class DeterministicDispatcher:
    """A FIFO of turns executed on the calling thread."""

    is_async = False

    def __init__(self, throughput: int = 300) -> None:
        if throughput < 1:
            raise ValueError(f"throughput must be at least 1 message per turn, got {throughput}")
        self.throughput = throughput
        self._queue: collections.deque[Callable[[], Any]] = collections.deque()
        self._turns = 0

    def schedule(self, runnable: Callable[[], Any]) -> None:
        self._queue.append(runnable)

    def run_one(self) -> bool:
        """Run the next scheduled turn; return False when there was none."""
        try:
            runnable = self._queue.popleft()
        except IndexError:
            return False
        self._turns += 1
        runnable()
        return True

    def run_until_idle(self, max_turns: int = 1_000_000) -> int:
        """Run turns until none is left; return how many ran."""
        ran = 0
        while ran < max_turns and self.run_one():
            ran += 1
        if ran >= max_turns and self._queue:
            raise RuntimeError(f"still busy after {max_turns} turns: do actors message each other forever?")
        return ran

    @property
    def pending(self) -> int:
        return len(self._queue)

    def help(self, mailbox: TurnRunner, until: Future[Any], deadline: float | None = None) -> None:
        # A waiter on the test thread drives the dispatcher until its future is done.
        while not until.done() and self.run_one():
            pass

    def shutdown(self, wait: bool = True) -> None:
        if wait:
            self.run_until_idle()
        self._queue.clear()

    def statistics(self) -> DispatcherStatistics:
        return DispatcherStatistics("deterministic", 1, 0, len(self._queue), self._turns)
