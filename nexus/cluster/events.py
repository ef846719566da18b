"""What the local cluster publishes on its event stream (``nexus.event_stream()``).

The stream is the core's :class:`~nexus.core.event_stream.EventStream`:
subscribe to one of these classes, or to :class:`ClusterEvent` for all of
them (``RuntimeEvent`` for these and the core's). Handlers run on the thread
that noticed the event (usually the driver's receiver): keep them short.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.events import RuntimeEvent

__all__ = [
    "ActorExited",
    "ActorRestarting",
    "CallDropped",
    "ClusterEvent",
    "TaskRetried",
    "WorkerDied",
    "WorkerStarted",
]


@dataclass(frozen=True, slots=True)
class ClusterEvent(RuntimeEvent):
    """Base class of the local cluster's events."""


@dataclass(frozen=True, slots=True)
class WorkerStarted(ClusterEvent):
    worker: str
    pid: int
    kind: str  # "task" or "actor"


@dataclass(frozen=True, slots=True)
class WorkerDied(ClusterEvent):
    """A worker process exited without being asked to (a signal, out of memory, ``os._exit``)."""

    worker: str
    pid: int
    exit_code: int | None
    actor: str | None  # the actor it hosted, if any
    tasks_lost: int  # tasks it was running or had queued (retried or failed per their options)


@dataclass(frozen=True, slots=True)
class ActorRestarting(ClusterEvent):
    actor: str  # class name and id
    attempt: int  # 1 for the first restart
    reason: str
    calls_retried: int
    calls_failed: int


@dataclass(frozen=True, slots=True)
class ActorExited(ClusterEvent):
    """An actor is gone for good: killed, its constructor raised, or its restarts are spent."""

    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class TaskRetried(ClusterEvent):
    task: str
    attempt: int  # 1 for the first retry
    reason: str


@dataclass(frozen=True, slots=True)
class CallDropped(ClusterEvent):
    """A full actor mailbox (``mailbox=MailboxSpec.bounded(...)``) dropped a call by its overflow policy."""

    actor: str
    method: str
    policy: str
