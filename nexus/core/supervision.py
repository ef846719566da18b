"""Supervision: directives, restart statistics and the SupervisorStrategy interface.

When an actor's ``receive`` raises, the actor is suspended and its parent's
strategy decides one :class:`Directive`. Strategies live in ``strategies.py``;
they are declared as data with ``FailureStrategy`` / ``LifecyclePolicy`` and
assembled by ``SupervisorBuilder`` (``lifecycle.py``).
"""

from __future__ import annotations

import collections
import enum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .ref import ActorRef

__all__ = ["Directive", "RestartStatistics", "Supervisor", "SupervisorStrategy"]


class Directive(enum.Enum):
    RESUME = "resume"  # keep the actor and its state; drop the failing message
    RESTART = "restart"  # replace the instance (state reset), keep the mailbox
    STOP = "stop"  # stop the actor
    ESCALATE = "escalate"  # fail the supervisor itself with the same reason


class RestartStatistics:
    """Failure times of one actor, kept across its restarts."""

    __slots__ = ("_failures", "restarts")

    def __init__(self) -> None:
        self._failures: collections.deque[float] = collections.deque(maxlen=1024)
        self.restarts = 0

    def record_failure(self, now: float) -> None:
        self._failures.append(now)

    def failures_within(self, window: float | None, now: float) -> int:
        if window is None:
            return len(self._failures)
        return sum(1 for t in self._failures if now - t <= window)

    @property
    def failure_count(self) -> int:
        return len(self._failures)

    @property
    def last_failure(self) -> float | None:
        return self._failures[-1] if self._failures else None

    def reset(self) -> None:
        self._failures.clear()


class Supervisor(Protocol):
    """What a strategy may do to the children of the actor it supervises for."""

    def child_refs(self) -> list[ActorRef]: ...

    def restart_children(self, reason: BaseException, *children: ActorRef, delay: float = 0.0) -> None: ...

    def stop_children(self, *children: ActorRef) -> None: ...

    def resume_children(self, *children: ActorRef) -> None: ...

    def escalate_failure(self, reason: BaseException, message: Any) -> None: ...


class SupervisorStrategy(Protocol):
    """Decides what happens to a failed child."""

    def handle_failure(
        self, supervisor: Supervisor, child: ActorRef, stats: RestartStatistics, reason: BaseException, message: Any, now: float
    ) -> Directive:
        """Apply the decision through ``supervisor`` and return it."""
