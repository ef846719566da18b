"""The Mailbox interface, its kinds and its statistics.

A mailbox holds an actor's messages in two lanes -- system messages (stop,
watch, supervision) and user messages -- and schedules the actor's turns on a
dispatcher. Three kinds (:class:`MailboxKind`):

``LOW_LATENCY``  unbounded; system messages are taken at turn boundaries, so
                 the per-message loop is as short as it can be (the default).
``BACKPRESSURE`` bounded (``capacity``); when full, the ``overflow`` policy
                 decides: block the sender, drop the newest, drop the oldest,
                 or fail the send with MailboxFullError.
``ORDERED``      unbounded; system messages are checked before *every* user
                 message, so a Stop or a watch notice is never behind a
                 user message that arrived after it; user messages are FIFO
                 per sender.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    from .dispatcher import SchedulerProvider
    from .future import Future

__all__ = ["Invoker", "Mailbox", "MailboxKind", "MailboxSpec", "MailboxStatistics", "OverflowPolicy"]


class MailboxKind(enum.Enum):
    LOW_LATENCY = "low-latency"
    BACKPRESSURE = "backpressure"
    ORDERED = "ordered"


class OverflowPolicy(enum.Enum):
    """What a full BACKPRESSURE mailbox does with one more user message."""

    BLOCK = "block"  # the sender waits for room (up to ``block_timeout``)
    DROP_NEWEST = "drop-newest"  # the new message is dropped
    DROP_OLDEST = "drop-oldest"  # the oldest queued message is dropped to make room
    FAIL = "fail"  # the send raises MailboxFullError


@dataclass(frozen=True, slots=True)
class MailboxStatistics:
    """A snapshot; ``processed`` is brought up to date at the end of each turn (cheaper than per message)."""

    kind: MailboxKind
    depth: int  # user messages waiting
    system_depth: int
    capacity: int | None
    processed: int  # user messages handed to the actor
    dropped: int  # user messages dropped by the overflow policy
    suspended: bool


@dataclass(frozen=True, slots=True)
class MailboxSpec:
    """How to build an actor's mailbox; part of Props."""

    kind: MailboxKind = MailboxKind.LOW_LATENCY
    capacity: int | None = None
    overflow: OverflowPolicy = OverflowPolicy.BLOCK
    block_timeout: float | None = None

    def __post_init__(self) -> None:
        if self.kind is MailboxKind.BACKPRESSURE:
            if not isinstance(self.capacity, int) or self.capacity < 1:
                raise ValueError(
                    f"a BACKPRESSURE mailbox needs a positive int capacity, got {self.capacity!r}; "
                    "for example MailboxSpec(MailboxKind.BACKPRESSURE, capacity=1000)"
                )
        elif self.capacity is not None:
            raise ValueError(f"capacity applies to BACKPRESSURE mailboxes only, not {self.kind.name}")

    @classmethod
    def bounded(cls, capacity: int, overflow: OverflowPolicy = OverflowPolicy.BLOCK, block_timeout: float | None = None) -> MailboxSpec:
        return cls(MailboxKind.BACKPRESSURE, capacity, overflow, block_timeout)

    def create(self) -> Mailbox:
        from .mailboxes import BoundedMailbox, OrderedMailbox, UnboundedMailbox

        if self.kind is MailboxKind.BACKPRESSURE:
            assert self.capacity is not None
            return BoundedMailbox(self.capacity, self.overflow, self.block_timeout)
        if self.kind is MailboxKind.ORDERED:
            return OrderedMailbox()
        return UnboundedMailbox()


class Invoker(Protocol):
    """The side of an actor a mailbox calls into (implemented by the actor cell)."""

    def invoke_system(self, message: Any) -> Any: ...

    def invoke_user(self, message: Any, sender: Any) -> Any: ...

    def handle_failure(self, reason: BaseException, message: Any, sender: Any) -> None: ...

    def route_dead(self, message: Any, sender: Any, system: bool, reason: str) -> None: ...


class Mailbox(Protocol):
    """Queues messages for one actor and schedules its turns.

    ``waiter``, when set, is called after every post (``expect`` waits on it).
    """

    waiter: Callable[[], None] | None

    def attach(self, invoker: Invoker, dispatcher: SchedulerProvider) -> None: ...

    def post_user(self, item: tuple[Any, Any]) -> None: ...

    def post_system(self, message: Any) -> None: ...

    def run_inline(self, until: Future[Any], deadline: float | None = None) -> None: ...

    def statistics(self) -> MailboxStatistics: ...
