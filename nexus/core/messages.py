"""Messages with a meaning to the runtime.

User-visible ones: :class:`Started`, :class:`Stopping`, :class:`Stopped` and
:class:`Restarting` (delivered to function-based actors; class-based actors get
the matching hook methods instead), :class:`Terminated` and
:class:`ReceiveTimeout` (delivered to every actor), :class:`Stop` and
:class:`PoisonPill` (sent to an actor to stop it: ``Stop`` jumps the queue,
``PoisonPill`` is processed in order after the messages before it).

The underscore-free internal messages below the public ones travel on the
system lane of a mailbox and never reach user code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .future import Future
    from .ref import ActorRef
    from .supervision import RestartStatistics

__all__ = [
    "NotInfluenceReceiveTimeout",
    "PoisonPill",
    "ReceiveTimeout",
    "Restarting",
    "Started",
    "Stop",
    "Stopped",
    "Stopping",
    "Terminated",
]


class NotInfluenceReceiveTimeout:
    """Mixin for user messages that must not reset an actor's receive timeout."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Started:
    """The actor instance was created (first start or after a restart)."""


@dataclass(frozen=True, slots=True)
class Stopping:
    """The actor is about to stop; its children are stopped next."""


@dataclass(frozen=True, slots=True)
class Stopped:
    """The actor and all its children have stopped; no message follows."""


@dataclass(frozen=True, slots=True)
class Restarting:
    """The actor instance is about to be replaced after ``reason``."""

    reason: BaseException | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop the receiving actor now (system priority, ahead of queued messages)."""


@dataclass(frozen=True, slots=True)
class PoisonPill:
    """Stop the receiving actor once the messages queued before this one are processed."""


@dataclass(frozen=True, slots=True)
class Terminated:
    """A watched actor has stopped. Delivered exactly once per watch."""

    who: ActorRef


@dataclass(frozen=True, slots=True)
class ReceiveTimeout(NotInfluenceReceiveTimeout):
    """No user message arrived within the receive timeout set with ``set_receive_timeout``."""


STARTED = Started()
STOPPING = Stopping()
STOPPED = Stopped()
STOP = Stop()
RECEIVE_TIMEOUT = ReceiveTimeout()


# ---- internal system-lane messages ---------------------------------------


@dataclass(frozen=True, slots=True)
class Create:
    """First system message of every actor: build the instance."""


@dataclass(frozen=True, slots=True)
class Watch:
    watcher: ActorRef


@dataclass(frozen=True, slots=True)
class Unwatch:
    watcher: ActorRef


@dataclass(frozen=True, slots=True)
class Failure:
    """A child failed; its parent's supervisor strategy decides what happens."""

    child: ActorRef
    reason: BaseException
    stats: RestartStatistics
    message: Any


@dataclass(frozen=True, slots=True)
class Restart:
    reason: BaseException | None


@dataclass(frozen=True, slots=True)
class Resume:
    pass


@dataclass(frozen=True, slots=True)
class Continuation:
    """Runs ``fn(future)`` on the actor's turn with ``message``/``sender`` restored."""

    fn: Callable[[Future[Any]], Any]
    future: Future[Any]
    message: Any
    sender: ActorRef | None
    incarnation: int


@dataclass(frozen=True, slots=True)
class ReceiveTimeoutTick:
    generation: int


CREATE = Create()
RESUME = Resume()
