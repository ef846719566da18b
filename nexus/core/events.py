"""Events the runtime publishes on a system's event stream.

Subscribe by type (``system.event_stream.subscribe(DeadLetter, handler)``);
subscribing to :class:`RuntimeEvent` sees all of them. Later layers (the
observation hub) publish their own events through the same stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .ref import ActorRef
    from .supervision import Directive

__all__ = [
    "ActorRestarted",
    "ActorStarted",
    "ActorStopped",
    "DeadLetter",
    "FailureEvent",
    "MessageDropped",
    "RuntimeEvent",
    "SupervisionDecision",
]


@dataclass(frozen=True, slots=True)
class RuntimeEvent:
    """Base class of every runtime event."""


@dataclass(frozen=True, slots=True)
class DeadLetter(RuntimeEvent):
    """A message that could not be delivered to ``target``."""

    message: Any
    sender: ActorRef | None
    target: ActorRef | None
    reason: str = "target is not running"


@dataclass(frozen=True, slots=True)
class MessageDropped(RuntimeEvent):
    """A bounded mailbox dropped ``message`` by its overflow policy."""

    message: Any
    target: ActorRef
    policy: str


@dataclass(frozen=True, slots=True)
class ActorStarted(RuntimeEvent):
    actor: ActorRef


@dataclass(frozen=True, slots=True)
class ActorRestarted(RuntimeEvent):
    actor: ActorRef
    reason: BaseException | None
    restarts: int


@dataclass(frozen=True, slots=True)
class ActorStopped(RuntimeEvent):
    actor: ActorRef


@dataclass(frozen=True, slots=True)
class FailureEvent(RuntimeEvent):
    """An actor's ``receive`` (or hook) raised.

    ``unhandled`` is true when the failure reached the root of the system
    without a user supervisor handling it.
    """

    actor: ActorRef
    reason: BaseException
    message: Any
    unhandled: bool = False


@dataclass(frozen=True, slots=True)
class SupervisionDecision(RuntimeEvent):
    """A supervisor decided ``directive`` for ``child`` after ``reason``."""

    supervisor: ActorRef | None
    child: ActorRef
    directive: Directive
    reason: BaseException
