"""Mailbox implementations: unbounded (LOW_LATENCY), ordered, and bounded.

All three share the scheduling state machine of :class:`_MailboxBase`:
``IDLE -> SCHEDULED -> RUNNING -> IDLE``. A post to an idle mailbox schedules
one turn; a turn claims the mailbox (``SCHEDULED -> RUNNING``) before it runs,
so a stale scheduled entry -- left behind when a blocked caller ran the turn
inline (``run_inline``) -- finds nothing to claim and returns.
"""

from __future__ import annotations

import _thread
import collections
import inspect
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from .errors import MailboxFullError
from .future import FutureState
from .mailbox import Invoker, MailboxKind, MailboxStatistics, OverflowPolicy
from .messages import Stop
from .mpmc import MpmcQueue, QueueFull

if TYPE_CHECKING:
    from .dispatcher import SchedulerProvider
    from .future import Future

__all__ = ["BoundedMailbox", "OrderedMailbox", "UnboundedMailbox"]

_IDLE, _SCHEDULED, _RUNNING = 0, 1, 2


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() > deadline

_PENDING_STATE = FutureState.PENDING
_STOPPED_REASON = "target is not running"
DROPPED_NEWEST = "dropped: mailbox full (drop-newest)"
DROPPED_OLDEST = "dropped: mailbox full (drop-oldest)"


class _MailboxBase:
    kind = MailboxKind.LOW_LATENCY
    _system_first = False  # check the system lane before every user message

    def __init__(self) -> None:
        self._system: collections.deque[Any] = collections.deque()
        self._status = _IDLE
        self._status_lock = _thread.allocate_lock()
        self._suspended = False
        self._closed = False
        self._invoker: Invoker | None = None
        self._dispatcher: SchedulerProvider | None = None
        self._throughput = 300
        self._runnable: Callable[[], Any] = self._run
        self._tasks: set[Any] = set()
        self.waiter: Callable[[], None] | None = None
        self._processed = 0
        self._dropped = 0
        self._deadline: float | None = None  # of an inline turn: the waiter's timeout

    def attach(self, invoker: Invoker, dispatcher: SchedulerProvider) -> None:
        self._invoker = invoker
        self._dispatcher = dispatcher
        self._throughput = dispatcher.throughput
        self._runnable = self._start_async_turn if dispatcher.is_async else self._run

    # ---- queue primitives, per kind ---------------------------------------

    def _has_user(self) -> bool:
        raise NotImplementedError

    def take_user(self) -> tuple[Any, Any] | None:
        """Remove and return the oldest user message, or None."""
        raise NotImplementedError

    def requeue_front(self, items: list[tuple[Any, Any]]) -> None:
        """Put ``items`` back ahead of everything queued, in their order."""
        raise NotImplementedError

    def user_depth(self) -> int:
        raise NotImplementedError

    def _capacity(self) -> int | None:
        return None

    # ---- posting ---------------------------------------------------------

    def post_system(self, message: Any) -> None:
        self._system.append(message)
        if self._closed:
            self._drain_closed()
            return
        waiter = self.waiter
        if waiter is not None:
            waiter()
        if self._status == _IDLE:
            self._schedule()

    def _after_user_post(self) -> None:
        if self._closed:
            self._drain_closed()
            return
        waiter = self.waiter
        if waiter is not None:
            waiter()
        if self._status == _IDLE and not self._suspended:
            self._schedule()

    # ---- scheduling state machine ------------------------------------------

    def _schedule(self) -> None:
        with self._status_lock:
            if self._status != _IDLE:
                return
            self._status = _SCHEDULED
        assert self._dispatcher is not None
        self._dispatcher.schedule(self._runnable)

    def _claim(self) -> bool:
        with self._status_lock:
            if self._status != _SCHEDULED:
                return False
            self._status = _RUNNING
            return True

    def _release(self) -> None:
        with self._status_lock:
            self._status = _IDLE
        if self._system or (not self._suspended and not self._closed and self._has_user()):
            self._schedule()

    def _run(self) -> None:
        if not self._claim():
            return
        try:
            self._turn(None)
        finally:
            self._release()

    def help(self, until: Future[Any], deadline: float | None = None) -> None:
        assert self._dispatcher is not None
        self._dispatcher.help(self, until, deadline)

    def run_inline(self, until: Future[Any], deadline: float | None = None) -> None:
        """Run a pending turn on the calling thread until ``until`` is done or ``deadline`` passed (see Future.wait)."""
        if self._status != _SCHEDULED or not self._claim():
            return
        self._deadline = deadline
        try:
            self._turn(until)
        finally:
            self._deadline = None
            self._release()

    # ---- turns -----------------------------------------------------------

    def _turn(self, until: Future[Any] | None) -> None:
        invoker = self._invoker
        assert invoker is not None
        if self._system:
            self._process_system(invoker)
        if not (self._suspended or self._closed):
            self._process_user(invoker, until)

    def _process_system(self, invoker: Invoker) -> None:
        system = self._system
        while system and not self._closed:
            try:
                message = system.popleft()
            except IndexError:
                break
            try:
                invoker.invoke_system(message)
            except BaseException as exc:
                invoker.handle_failure(exc, message, None)
                if isinstance(exc, KeyboardInterrupt):
                    raise  # Ctrl-C in a thread running this turn inline belongs to that thread

    def _process_user(self, invoker: Invoker, until: Future[Any] | None) -> None:
        take = self.take_user
        invoke = invoker.invoke_user
        limit = self._throughput
        done = 0
        message = sender = None
        try:
            while done < limit:
                item = take()
                if item is None:
                    break
                message, sender = item
                done += 1
                invoke(message, sender)
                if self._suspended or self._closed:
                    break
                if until is not None and (until.done() or _past(self._deadline)):
                    break
                if self._system:
                    self._process_system(invoker)
                    if self._suspended or self._closed:
                        break
        except BaseException as exc:
            invoker.handle_failure(exc, message, sender)
            if isinstance(exc, KeyboardInterrupt) or (until is not None and isinstance(exc, SystemExit)):
                raise
        finally:
            self._processed += done

    # ---- asyncio turns -----------------------------------------------------

    def _start_async_turn(self) -> None:
        if not self._claim():
            return
        import asyncio

        task = asyncio.get_running_loop().create_task(self._turn_async())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _turn_async(self) -> None:
        invoker = self._invoker
        assert invoker is not None
        try:
            await self._process_system_async(invoker)
            limit = self._throughput
            done = 0
            while done < limit and not (self._suspended or self._closed):
                item = self.take_user()
                if item is None:
                    break
                message, sender = item
                done += 1
                self._processed += 1
                try:
                    result = invoker.invoke_user(message, sender)
                    if result is not None and inspect.isawaitable(result):
                        await result
                except BaseException as exc:
                    invoker.handle_failure(exc, message, sender)
                    break
                if self._system:
                    await self._process_system_async(invoker)
        finally:
            self._release()

    async def _process_system_async(self, invoker: Invoker) -> None:
        system = self._system
        while system and not self._closed:
            try:
                message = system.popleft()
            except IndexError:
                break
            try:
                result = invoker.invoke_system(message)
                if result is not None and inspect.isawaitable(result):
                    await result
            except BaseException as exc:
                invoker.handle_failure(exc, message, None)

    # ---- suspension and closing ----------------------------------------

    def suspend(self) -> None:
        self._suspended = True

    def resume(self) -> None:
        self._suspended = False

    @property
    def suspended(self) -> bool:
        return self._suspended

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """No more messages: everything queued and posted later goes to dead letters."""
        self._closed = True
        self._suspended = True
        self._drain_closed()

    def _drain_closed(self) -> None:
        invoker = self._invoker
        assert invoker is not None
        while True:
            item = self.take_user()
            if item is None:
                break
            invoker.route_dead(item[0], item[1], False, _STOPPED_REASON)
        system = self._system
        while True:
            try:
                message = system.popleft()
            except IndexError:
                break
            invoker.route_dead(message, None, True, _STOPPED_REASON)

    # ---- for expect -----------------------------------------------------

    def stop_pending(self) -> bool:
        return any(type(m) is Stop for m in list(self._system))

    def take_system_if(self, predicate: Callable[[Any], bool]) -> Any:
        """Remove and return the first system message matching ``predicate``, or None."""
        while True:
            for message in list(self._system):
                if predicate(message):
                    break
            else:
                return None
            try:
                # remove() compares with __eq__ (Python code), so another thread may post meanwhile:
                # the deque then reports a mutation and we look again.
                self._system.remove(message)
            except (ValueError, IndexError, RuntimeError):  # taken meanwhile, or the deque changed under us
                continue
            return message

    def statistics(self) -> MailboxStatistics:
        return MailboxStatistics(
            self.kind, self.user_depth(), len(self._system), self._capacity(),
            self._processed, self._dropped, self._suspended,
        )


class UnboundedMailbox(_MailboxBase):
    """LOW_LATENCY: an unbounded deque; the system lane is read at turn boundaries."""

    kind = MailboxKind.LOW_LATENCY

    def __init__(self) -> None:
        super().__init__()
        self._user: collections.deque[tuple[Any, Any]] = collections.deque()

    def post_user(self, item: tuple[Any, Any]) -> None:
        # Inlined _after_user_post: this is the path of every tell.
        self._user.append(item)
        if self._closed:
            self._drain_closed()
            return
        waiter = self.waiter
        if waiter is not None:
            waiter()
        if self._status == _IDLE and not self._suspended:
            self._schedule()

    def _has_user(self) -> bool:
        return bool(self._user)

    def user_depth(self) -> int:
        return len(self._user)

    def take_user(self) -> tuple[Any, Any] | None:
        try:
            return self._user.popleft()
        except IndexError:
            return None

    def requeue_front(self, items: list[tuple[Any, Any]]) -> None:
        self._user.extendleft(reversed(items))

    def _process_user(self, invoker: Invoker, until: Future[Any] | None) -> None:
        # The hot loop: ~0.3 us per message on top of the handler itself.
        popleft = self._user.popleft
        invoke = invoker.invoke_user
        limit = self._throughput
        done = 0
        message = sender = None
        try:
            while done < limit:
                try:
                    message, sender = popleft()
                except IndexError:
                    break
                done += 1
                invoke(message, sender)
                if self._suspended:
                    break
                if until is not None and (until._state is not _PENDING_STATE or _past(self._deadline)):
                    break
        except BaseException as exc:
            invoker.handle_failure(exc, message, sender)
            if isinstance(exc, KeyboardInterrupt) or (until is not None and isinstance(exc, SystemExit)):
                raise
        finally:
            self._processed += done


class OrderedMailbox(UnboundedMailbox):
    """ORDERED: like LOW_LATENCY, but the system lane is checked before every user message."""

    kind = MailboxKind.ORDERED
    _process_user = _MailboxBase._process_user  # the generic loop checks the system lane each time


class BoundedMailbox(_MailboxBase):
    """BACKPRESSURE: at most ``capacity`` user messages, with an overflow policy."""

    kind = MailboxKind.BACKPRESSURE

    def __init__(self, capacity: int, overflow: OverflowPolicy, block_timeout: float | None) -> None:
        super().__init__()
        self._queue: MpmcQueue[tuple[Any, Any]] = MpmcQueue(capacity)
        self._overflow = overflow
        self._block_timeout = block_timeout
        self._running_thread: int | None = None

    def _capacity(self) -> int | None:
        return self._queue.capacity

    def post_user(self, item: tuple[Any, Any]) -> None:
        if self._closed:
            assert self._invoker is not None
            self._invoker.route_dead(item[0], item[1], False, _STOPPED_REASON)
            return
        queue = self._queue
        try:
            queue.put_nowait(item)
        except QueueFull:
            if not self._overflow_put(item):
                return
        self._after_user_post()

    def _overflow_put(self, item: tuple[Any, Any]) -> bool:
        """Apply the overflow policy; return whether ``item`` was queued."""
        policy = self._overflow
        invoker = self._invoker
        assert invoker is not None
        capacity = self._queue.capacity
        if policy is OverflowPolicy.FAIL:
            raise MailboxFullError(
                f"mailbox is full ({capacity} messages) and its overflow policy is FAIL; "
                "slow the sender down or raise the capacity"
            )
        if policy is OverflowPolicy.DROP_NEWEST:
            self._dropped += 1
            invoker.route_dead(item[0], item[1], False, DROPPED_NEWEST)
            return False
        if policy is OverflowPolicy.DROP_OLDEST:
            evicted = self._queue.put_evicting(item)
            if evicted is not None:
                self._dropped += 1
                invoker.route_dead(evicted[0], evicted[1], False, DROPPED_OLDEST)
            return True
        # BLOCK
        if self._running_thread == threading.get_ident():
            raise MailboxFullError(
                f"an actor sent to its own full mailbox ({capacity} messages) with policy BLOCK: "
                "it would wait for itself forever"
            )
        try:
            self._queue.put(item, self._block_timeout)
        except QueueFull:
            raise MailboxFullError(
                f"mailbox stayed full ({capacity} messages) for {self._block_timeout} s (policy BLOCK)"
            ) from None
        return True

    def _turn(self, until: Future[Any] | None) -> None:
        self._running_thread = threading.get_ident()
        try:
            super()._turn(until)
        finally:
            self._running_thread = None

    def _has_user(self) -> bool:
        return len(self._queue) > 0

    def user_depth(self) -> int:
        return len(self._queue)

    def take_user(self) -> tuple[Any, Any] | None:
        if not len(self._queue):
            return None
        try:
            return self._queue.get_nowait()
        except Exception:
            return None

    def requeue_front(self, items: list[tuple[Any, Any]]) -> None:
        self._queue.put_front(items)


_TURN_CODES = frozenset({_MailboxBase._turn.__code__, _MailboxBase._turn_async.__code__})


def running_turns() -> list[Invoker]:
    """The actors whose turns the calling thread is inside (innermost first).

    Found by walking the stack, so that no turn pays for bookkeeping it
    rarely needs (only ``ActorSystem.shutdown`` asks).
    """
    found = []
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code in _TURN_CODES:
            mailbox = frame.f_locals.get("self")
            invoker = getattr(mailbox, "_invoker", None)
            if invoker is not None:
                found.append(invoker)
        frame = frame.f_back  # type: ignore[assignment]
    return found
