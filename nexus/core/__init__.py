"""nexus.core -- the in-process actor runtime (layer 1), on the standard library only.

Everything the rest of Nexus stands on: actor systems, actors and their
context, mailboxes, dispatchers, supervision, middleware, futures, the event
stream and the one exception hierarchy. A test enforces that nothing here
imports outside the standard library.
"""

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
