"""The SchedulerProvider interface: where actor turns run.

A dispatcher runs *turns*: a mailbox schedules itself when it has work and
processes up to ``throughput`` messages per turn, so one busy actor cannot
starve the others. Implementations:

- :class:`~nexus.core.thread_pool.ThreadPoolDispatcher` -- threads with local
  run queues (the default);
- :class:`~nexus.core.asyncio_dispatcher.AsyncioDispatcher` -- an asyncio
  event loop, for actors whose ``receive`` is ``async def``;
- :class:`~nexus.core.deterministic.DeterministicDispatcher` -- one thread, run
  by hand, for tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .future import Future

__all__ = ["DispatcherStatistics", "SchedulerProvider", "TurnRunner"]


@dataclass(frozen=True, slots=True)
class DispatcherStatistics:
    kind: str
    workers: int
    idle_workers: int
    queued: int
    turns: int


class TurnRunner(Protocol):
    """What a dispatcher may ask of a mailbox when a caller blocks on one of its futures."""

    def run_inline(self, until: Future[Any], deadline: float | None = None) -> None: ...


@runtime_checkable
class SchedulerProvider(Protocol):
    """Runs scheduled turns. ``throughput`` is the number of messages per turn.

    ``is_async`` tells mailboxes to run their turns as coroutines on the
    dispatcher's event loop.
    """

    throughput: int
    is_async: bool

    def schedule(self, runnable: Callable[[], Any]) -> None:
        """Run ``runnable()`` soon, on a thread (or loop) of this dispatcher."""

    def help(self, mailbox: TurnRunner, until: Future[Any], deadline: float | None = None) -> None:
        """A thread is about to block on ``until``, which ``mailbox``'s actor completes.

        A dispatcher may let that thread run the actor's pending turn itself
        (saving two thread wake-ups) -- stopping at ``deadline`` (``time.monotonic``)
        between messages -- or do nothing.
        """

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting work and release threads."""

    def statistics(self) -> DispatcherStatistics: ...
