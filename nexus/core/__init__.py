"""nexus.core -- the in-process actor runtime (layer 1), on the standard library only.

Everything the rest of Nexus stands on: actor systems, actors and their
context, mailboxes, dispatchers, supervision, middleware, futures, the event
stream and the one exception hierarchy. A test enforces that nothing here
imports outside the standard library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .actor import Actor, FunctionActor
    from .asyncio_dispatcher import AsyncioDispatcher
    from .cell import CellState
    from .clock import Clock, ManualClock, SystemClock, TimerHandle
    from .context import Context
    from .deterministic import DeterministicDispatcher
    from .dispatcher import DispatcherStatistics, SchedulerProvider
    from .errors import (
        ActorStoppingError,
        AskTimeoutError,
        DeadLetterError,
        ExpectTimeoutError,
        FutureCancelledError,
        InvalidPropsError,
        InvalidStateError,
        MailboxFullError,
        NameTakenError,
        NexusError,
        SystemShutdownError,
        WaitTimeoutError,
    )
    from .event_stream import EventStream, Subscription
    from .events import (
        ActorRestarted,
        ActorStarted,
        ActorStopped,
        DeadLetter,
        FailureEvent,
        MessageDropped,
        RuntimeEvent,
        SupervisionDecision,
    )
    from .future import Future, FutureState
    from .lifecycle import Backoff, FailureStrategy, LifecyclePolicy, Scope, SupervisorBuilder
    from .mailbox import Mailbox, MailboxKind, MailboxSpec, MailboxStatistics, OverflowPolicy
    from .messages import (
        NotInfluenceReceiveTimeout,
        PoisonPill,
        ReceiveTimeout,
        Restarting,
        Started,
        Stop,
        Stopped,
        Stopping,
        Terminated,
    )
    from .middleware import ErrorHandler, ErrorHook, ReceiveFilter, ReceiveHandler, SendFilter, SendHandler, compose
    from .mpmc import MpmcQueue, QueueClosed, QueueEmpty, QueueFull, QueueStatistics
    from .props import Props
    from .ref import ActorRef
    from .ring import SyncRing
    from .strategies import AllForOneStrategy, ExponentialBackoffStrategy, OneForOneStrategy, decider_from_rules
    from .supervision import Directive, RestartStatistics, Supervisor, SupervisorStrategy
    from .system import ActorSystem, SystemConfig, SystemStatistics
    from .thread_pool import ThreadPoolDispatcher

_EXPORTS = {
    "Actor": "actor",
    "FunctionActor": "actor",
    "AsyncioDispatcher": "asyncio_dispatcher",
    "CellState": "cell",
    "Clock": "clock",
    "ManualClock": "clock",
    "SystemClock": "clock",
    "TimerHandle": "clock",
    "Context": "context",
    "DeterministicDispatcher": "deterministic",
    "DispatcherStatistics": "dispatcher",
    "SchedulerProvider": "dispatcher",
    "ActorStoppingError": "errors",
    "AskTimeoutError": "errors",
    "DeadLetterError": "errors",
    "ExpectTimeoutError": "errors",
    "FutureCancelledError": "errors",
    "InvalidPropsError": "errors",
    "InvalidStateError": "errors",
    "MailboxFullError": "errors",
    "NameTakenError": "errors",
    "NexusError": "errors",
    "SystemShutdownError": "errors",
    "WaitTimeoutError": "errors",
    "EventStream": "event_stream",
    "Subscription": "event_stream",
    "ActorRestarted": "events",
    "ActorStarted": "events",
    "ActorStopped": "events",
    "DeadLetter": "events",
    "FailureEvent": "events",
    "MessageDropped": "events",
    "RuntimeEvent": "events",
    "SupervisionDecision": "events",
    "Future": "future",
    "FutureState": "future",
    "Backoff": "lifecycle",
    "FailureStrategy": "lifecycle",
    "LifecyclePolicy": "lifecycle",
    "Scope": "lifecycle",
    "SupervisorBuilder": "lifecycle",
    "Mailbox": "mailbox",
    "MailboxKind": "mailbox",
    "MailboxSpec": "mailbox",
    "MailboxStatistics": "mailbox",
    "OverflowPolicy": "mailbox",
    "NotInfluenceReceiveTimeout": "messages",
    "PoisonPill": "messages",
    "ReceiveTimeout": "messages",
    "Restarting": "messages",
    "Started": "messages",
    "Stop": "messages",
    "Stopped": "messages",
    "Stopping": "messages",
    "Terminated": "messages",
    "ErrorHandler": "middleware",
    "ErrorHook": "middleware",
    "ReceiveFilter": "middleware",
    "ReceiveHandler": "middleware",
    "SendFilter": "middleware",
    "SendHandler": "middleware",
    "compose": "middleware",
    "MpmcQueue": "mpmc",
    "QueueClosed": "mpmc",
    "QueueEmpty": "mpmc",
    "QueueFull": "mpmc",
    "QueueStatistics": "mpmc",
    "Props": "props",
    "ActorRef": "ref",
    "SyncRing": "ring",
    "AllForOneStrategy": "strategies",
    "ExponentialBackoffStrategy": "strategies",
    "OneForOneStrategy": "strategies",
    "decider_from_rules": "strategies",
    "Directive": "supervision",
    "RestartStatistics": "supervision",
    "Supervisor": "supervision",
    "SupervisorStrategy": "supervision",
    "ActorSystem": "system",
    "SystemConfig": "system",
    "SystemStatistics": "system",
    "ThreadPoolDispatcher": "thread_pool",
}
"""Each public name and the module it lives in: imported on first use (PEP 562), so that a process that
needs one module (a worker needs ``errors``) does not pay for the whole runtime at start."""


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nexus.core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "Actor",
    "ActorRef",
    "ActorRestarted",
    "ActorStarted",
    "ActorStopped",
    "ActorStoppingError",
    "ActorSystem",
    "AllForOneStrategy",
    "AskTimeoutError",
    "AsyncioDispatcher",
    "Backoff",
    "CellState",
    "Clock",
    "Context",
    "DeadLetter",
    "DeadLetterError",
    "DeterministicDispatcher",
    "Directive",
    "DispatcherStatistics",
    "ErrorHandler",
    "ErrorHook",
    "EventStream",
    "ExpectTimeoutError",
    "ExponentialBackoffStrategy",
    "FailureEvent",
    "FailureStrategy",
    "FunctionActor",
    "Future",
    "FutureCancelledError",
    "FutureState",
    "InvalidPropsError",
    "InvalidStateError",
    "LifecyclePolicy",
    "Mailbox",
    "MailboxFullError",
    "MailboxKind",
    "MailboxSpec",
    "MailboxStatistics",
    "ManualClock",
    "MessageDropped",
    "MpmcQueue",
    "NameTakenError",
    "NexusError",
    "NotInfluenceReceiveTimeout",
    "OneForOneStrategy",
    "OverflowPolicy",
    "PoisonPill",
    "Props",
    "QueueClosed",
    "QueueEmpty",
    "QueueFull",
    "QueueStatistics",
    "ReceiveFilter",
    "ReceiveHandler",
    "ReceiveTimeout",
    "RestartStatistics",
    "Restarting",
    "RuntimeEvent",
    "SchedulerProvider",
    "Scope",
    "SendFilter",
    "SendHandler",
    "Started",
    "Stop",
    "Stopped",
    "Stopping",
    "Subscription",
    "SupervisionDecision",
    "Supervisor",
    "SupervisorBuilder",
    "SupervisorStrategy",
    "SyncRing",
    "SystemClock",
    "SystemConfig",
    "SystemShutdownError",
    "SystemStatistics",
    "Terminated",
    "ThreadPoolDispatcher",
    "TimerHandle",
    "WaitTimeoutError",
    "compose",
    "decider_from_rules",
]
