"""ActorSystem: a tree of actors with its dispatcher, clock, event stream and dead letters.

Several systems may live in one process; creating one starts no thread until
the first actor runs. ``with ActorSystem("demo") as system: ...`` shuts it
down on exit.
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .cell import ActorCell, restart_child
from .clock import Clock, SystemClock
from .dispatcher import DispatcherStatistics, SchedulerProvider
from .errors import AskTimeoutError, DeadLetterError, InvalidPropsError, NameTakenError, SystemShutdownError
from .event_stream import EventStream
from .events import DeadLetter, FailureEvent, SupervisionDecision
from .future import Future
from .mailbox import MailboxSpec, MailboxStatistics
from .mailboxes import running_turns
from .messages import STOP, Failure, PoisonPill, Stop, Terminated, Watch
from .middleware import compose
from .props import Props
from .ref import ActorRef, _DeadRef, _FutureRef
from .strategies import OneForOneStrategy
from .thread_pool import ThreadPoolDispatcher

if TYPE_CHECKING:
    from .middleware import ErrorHook, ReceiveFilter, SendFilter
    from .supervision import SupervisorStrategy

__all__ = ["ActorSystem", "SystemConfig", "SystemStatistics"]

_log = logging.getLogger("nexus.core.system")
_dead_log = logging.getLogger("nexus.core.deadletters")


@dataclass(frozen=True)
class SystemConfig:
    """Settings of one actor system; pass it explicitly, it is frozen."""

    throughput: int = 300  # messages per turn before an actor yields its thread
    max_workers: int | None = None  # threads of the default dispatcher (None: max(4, 2 x cores))
    mailbox: MailboxSpec = field(default_factory=MailboxSpec)  # default mailbox of actors
    supervisor: SupervisorStrategy | None = None  # default strategy of actors for their children
    guardian: SupervisorStrategy | None = None  # strategy of the root for top-level actors
    receive_filters: tuple[ReceiveFilter, ...] = ()
    send_filters: tuple[SendFilter, ...] = ()
    error_hooks: tuple[ErrorHook, ...] = ()
    dead_letter_log_limit: int = 10  # dead letters logged at INFO before going quiet
    stall_after: float = 0.01  # seconds in one turn before a worker's queued work moves elsewhere


@dataclass(frozen=True, slots=True)
class SystemStatistics:
    actors: int
    dead_letters: int
    events_published: int
    dispatcher: DispatcherStatistics


class _RootGuardian:
    """The parent of top-level actors: supervises them with the system's guardian strategy."""

    def __init__(self, system: ActorSystem, strategy: SupervisorStrategy) -> None:
        self._system = system
        self._strategy = strategy
        self._lock = threading.RLock()
        self._children: dict[str, ActorCell] = {}
        self._empty = threading.Event()
        self._empty.set()
        self._failing: ActorRef | None = None

    def add(self, cell: ActorCell) -> None:
        with self._lock:
            if cell.name in self._children:
                raise NameTakenError(
                    f"a top-level actor named {cell.name!r} already exists in system {self._system.name!r}; "
                    "pick another name or use spawn_prefix"
                )
            self._children[cell.name] = cell
            self._empty.clear()

    def _post_system(self, message: Any) -> None:
        kind = type(message)
        if kind is Terminated:
            with self._lock:
                cell = self._children.get(message.who.name)
                if cell is not None and cell._ref == message.who:
                    del self._children[message.who.name]
                empty = not self._children
                if empty:
                    self._empty.set()
            if empty:
                self._system._on_last_actor_stopped()
        elif kind is Failure:
            self._on_failure(message)

    def _on_failure(self, failure: Failure) -> None:
        system = self._system
        system._error_chain(FailureEvent(failure.child, failure.reason, failure.message, unhandled=True))
        with self._lock:
            cell = self._children.get(failure.child.name)
            if cell is None or cell._ref != failure.child:
                return
            self._failing = failure.child
            try:
                directive = self._strategy.handle_failure(
                    self, failure.child, failure.stats, failure.reason, failure.message, system._clock.now()
                )
            finally:
                self._failing = None
        system.event_stream.publish(SupervisionDecision(None, failure.child, directive, failure.reason))

    # Supervisor protocol
    def child_refs(self) -> list[ActorRef]:
        with self._lock:
            return [cell._ref for cell in self._children.values()]

    def restart_children(self, reason: BaseException, *children: ActorRef, delay: float = 0.0) -> None:
        for child in children:
            restart_child(self._system, child, reason, delay)

    def stop_children(self, *children: ActorRef) -> None:
        for child in children:
            child._send_system(STOP)

    def resume_children(self, *children: ActorRef) -> None:
        from .messages import RESUME

        for child in children:
            child._send_system(RESUME)

    def escalate_failure(self, reason: BaseException, message: Any) -> None:
        failing = self._failing
        _log.error("a failure escalated to the root of system %r, which has no supervisor: stopping %s", self._system.name, failing)
        if failing is not None:
            failing._send_system(STOP)

    def wait_empty(self, timeout: float | None) -> bool:
        return self._empty.wait(timeout)

    def snapshot(self) -> list[ActorCell]:
        with self._lock:
            return list(self._children.values())


class ActorSystem:
    """A tree of actors sharing a dispatcher, a clock, an event stream and dead letters.

    Args:
        name: printable name, part of every actor's address.
        config: a SystemConfig (defaults apply when omitted).
        dispatcher: where turns run (default: a ThreadPoolDispatcher of the config).
        clock: time source for timeouts (default: the real clock; ManualClock in tests).
    """

    def __init__(
        self,
        name: str = "nexus",
        config: SystemConfig | None = None,
        *,
        dispatcher: SchedulerProvider | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(name, str) or not name or "/" in name or ":" in name:
            raise ValueError(f"system name must be a non-empty string without '/' or ':', got {name!r}")
        self.name = name
        self.config = config = config if config is not None else SystemConfig()
        self._owns_dispatcher = dispatcher is None
        self._dispatcher: SchedulerProvider = dispatcher or ThreadPoolDispatcher(
            config.max_workers, config.throughput, name=f"nexus-{name}", stall_after=config.stall_after
        )
        self._async_dispatcher: SchedulerProvider | None = None
        self._owns_clock = clock is None
        self._clock: Clock = clock or SystemClock(name=f"nexus-{name}-timer")
        self.event_stream = EventStream()
        self._registry: dict[str, ActorCell] = {}
        self._names = itertools.count(1)
        self._uids = itertools.count(1)
        self._default_strategy: SupervisorStrategy = config.supervisor or OneForOneStrategy()
        self._guardian = _RootGuardian(self, config.guardian or OneForOneStrategy())
        self._error_chain: Callable[[FailureEvent], None] = compose(config.error_hooks, self._report_failure)
        self._send_chain: Callable[[ActorRef | None, ActorRef, Any], None] | None = (
            compose(config.send_filters, _deliver) if config.send_filters else None
        )
        self.dead_letters: ActorRef = _DeadRef(self, f"nexus://{name}/deadLetters")
        self._dead_letters = 0
        self._dead_letter_counter = itertools.count(1)  # next() is atomic; += on an int is not
        self._shutdown = False
        self._finish_when_empty = False  # shutdown() was called inside a turn: the last stop finishes it
        self._finished = False
        self._lock = threading.RLock()

    # ---- spawning --------------------------------------------------------

    def spawn(self, props: Props | type | Callable[..., Any], name: str | None = None) -> ActorRef:
        """Start a top-level actor from Props, an actor class, or a receive function."""
        if name is not None:
            return self.spawn_named(props, name)
        return self._spawn_top(props, self._auto_name())

    def spawn_named(self, props: Props | type | Callable[..., Any], name: str) -> ActorRef:
        """Start a top-level actor with a chosen name; NameTakenError if it exists."""
        self._check_name(name)
        return self._spawn_top(props, name)

    def spawn_prefix(self, props: Props | type | Callable[..., Any], prefix: str) -> ActorRef:
        """Start a top-level actor named ``prefix`` followed by a unique number."""
        self._check_name(prefix)
        return self._spawn_top(props, self._auto_name(prefix))

    def _spawn_top(self, props: Any, name: str) -> ActorRef:
        # Under the lock: shutdown() either sees this actor in its snapshot or this spawn sees the shutdown.
        with self._lock:
            cell = self._make_cell(props, self._guardian, f"nexus://{self.name}/user/{name}", name)
            self._guardian.add(cell)
            self._registry[cell._ref.address] = cell
        cell.start()
        return cell._ref

    def _make_cell(self, props: Any, parent: Any, address: str, name: str) -> ActorCell:
        """A new cell, not yet registered: the caller registers it once its name is taken."""
        if self._shutdown:
            raise SystemShutdownError(f"actor system {self.name!r} is shut down; create a new ActorSystem")
        props = Props.of(props)
        return ActorCell(self, props, parent, address, name, self._dispatcher_for(props))

    def _register(self, cell: ActorCell) -> None:
        self._registry[cell._ref.address] = cell

    def _dispatcher_for(self, props: Props) -> SchedulerProvider:
        dispatcher = props.dispatcher
        if props.is_async:
            if dispatcher is None:
                dispatcher = self._asyncio_dispatcher()
            elif not dispatcher.is_async:
                raise InvalidPropsError(
                    f"{props.description}: an async def receive needs an asyncio dispatcher; "
                    "leave Props.dispatcher unset or pass an AsyncioDispatcher"
                )
        return dispatcher or self._dispatcher

    def _asyncio_dispatcher(self) -> SchedulerProvider:
        with self._lock:
            if self._async_dispatcher is None:
                from .asyncio_dispatcher import AsyncioDispatcher

                self._async_dispatcher = AsyncioDispatcher(throughput=self.config.throughput, name=f"nexus-{self.name}-asyncio")
            return self._async_dispatcher

    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not name or "/" in name or name.startswith("$"):
            raise ValueError(f"actor names are non-empty strings without '/' that do not start with '$'; got {name!r}")

    def _auto_name(self, prefix: str = "$") -> str:
        return f"{prefix}{next(self._names)}"

    def _next_uid(self) -> int:
        return next(self._uids)

    def _unregister(self, cell: ActorCell) -> None:
        if self._registry.get(cell._ref.address) is cell:
            del self._registry[cell._ref.address]

    # ---- addressing --------------------------------------------------------

    def resolve(self, address: str) -> ActorRef:
        """The ref of the live actor at ``address``, or a ref whose messages go to dead letters."""
        cell = self._registry.get(address)
        return cell._ref if cell is not None else _DeadRef(self, address)

    def actors(self) -> list[ActorRef]:
        """Refs of every live actor of this system."""
        return [cell._ref for cell in list(self._registry.values())]

    def mailbox_statistics(self, ref: ActorRef) -> MailboxStatistics | None:
        """Depth, processed and dropped counts of a live actor's mailbox (None once it stopped)."""
        cell = self._registry.get(ref.address)
        if cell is None or cell._ref != ref:
            return None
        return cell._mailbox.statistics()  # type: ignore[no-any-return]

    # ---- stopping ----------------------------------------------------------

    def stop(self, target: ActorRef) -> Future[None]:
        """Stop ``target`` ahead of its queued messages; the future completes once it has stopped."""
        return self._stop(target, STOP)

    def poison(self, target: ActorRef) -> Future[None]:
        """Stop ``target`` after the messages already queued; the future completes once it has stopped."""
        return self._stop(target, PoisonPill())

    def _stop(self, target: ActorRef, how: Stop | PoisonPill) -> Future[None]:
        future: Future[None] = Future()
        watcher = _FutureRef(self, future, self._next_uid(), on_terminated=True)
        if target._cell is not None:
            future._helper = target._cell._mailbox
        target._send_system(Watch(watcher))
        if type(how) is Stop:
            target._send_system(how)
        else:
            target.tell(how)
        return future

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Stop every actor (children first), then the dispatcher and timers.

        Returns False if some actor did not stop within ``timeout`` seconds.
        Called from inside an actor's turn it cannot wait for that actor: it
        starts the shutdown and returns False at once, and the dispatcher and
        timers stop when the last actor has. Calling it again from outside waits.
        """
        with self._lock:
            first = not self._shutdown
            self._shutdown = True
        if first:
            for cell in self._guardian.snapshot():
                cell._mailbox.post_system(STOP)
        if any(getattr(turn, "_system", None) is self for turn in running_turns()):
            with self._lock:
                self._finish_when_empty = True
            if self._guardian.wait_empty(0):
                self._finish_shutdown()
            return False
        run_until_idle = getattr(self._dispatcher, "run_until_idle", None)
        if run_until_idle is not None:
            run_until_idle()
            stopped = self._guardian.wait_empty(0)
        else:
            stopped = self._guardian.wait_empty(timeout)
        if not stopped:
            _log.warning("system %r: %d actors did not stop within %s s", self.name, len(self._registry), timeout)
        self._finish_shutdown()
        return stopped

    def _finish_shutdown(self) -> None:
        """Stop the dispatchers and the clock (once)."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
        if self._owns_dispatcher:
            self._dispatcher.shutdown(wait=True)
        if self._async_dispatcher is not None:
            self._async_dispatcher.shutdown(wait=True)
        if self._owns_clock:
            self._clock.close()

    def _on_last_actor_stopped(self) -> None:
        if self._finish_when_empty:
            self._finish_shutdown()

    @property
    def is_shutdown(self) -> bool:
        return self._shutdown

    def __enter__(self) -> ActorSystem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # ---- asks, dead letters, failures --------------------------------------

    def _new_ask(self, target: ActorRef, timeout: float | None) -> tuple[Future[Any], _FutureRef]:
        future: Future[Any] = Future()
        asker = _FutureRef(self, future, self._next_uid())
        cell = target._cell
        if cell is not None:
            future._helper = cell._mailbox
        if timeout is not None:
            if timeout <= 0:
                raise ValueError(f"ask timeout must be a positive number of seconds or None, got {timeout!r}")
            timer = self._clock.call_later(timeout, _expire_ask, future, target, timeout)
            future.add_done_callback(lambda _f: timer.cancel())
        return future, asker

    def _dead_letter(self, message: Any, sender: ActorRef | None, target: ActorRef | None, reason: str) -> None:
        count = self._dead_letters = next(self._dead_letter_counter)
        if type(sender) is _FutureRef and not sender._future.done():
            sender._future.try_set_exception(DeadLetterError(f"{target} cannot take {message!r}: {reason}"))
        self.event_stream.publish(DeadLetter(message, sender, target, reason))
        limit = self.config.dead_letter_log_limit
        if count <= limit:
            _dead_log.info("dead letter %d: %r from %s to %s (%s)", count, message, sender, target, reason)
            if count == limit:
                _dead_log.info("%d dead letters logged; further ones are counted and published, not logged", limit)

    @property
    def dead_letter_count(self) -> int:
        return self._dead_letters

    def _report_failure(self, event: FailureEvent) -> None:
        """The end of every error-hook chain: publish the failure and log it."""
        self.event_stream.publish(event)
        reason = event.reason
        if event.unhandled:
            _log.error(
                "%s failed while handling %r and no supervisor of yours handled it; the root applies its strategy",
                event.actor, event.message, exc_info=(type(reason), reason, reason.__traceback__),
            )
        else:
            _log.info("%s failed while handling %r: %s: %s", event.actor, event.message, type(reason).__name__, reason)

    # ---- statistics --------------------------------------------------------

    def statistics(self) -> SystemStatistics:
        return SystemStatistics(len(self._registry), self._dead_letters, self.event_stream.published, self._dispatcher.statistics())

    def __repr__(self) -> str:
        state = "shut down" if self._shutdown else f"{len(self._registry)} actors"
        return f"<ActorSystem {self.name!r}: {state}>"


def _deliver(sender: ActorRef | None, target: ActorRef, message: Any) -> None:
    target._deliver(message, sender)


def _expire_ask(future: Future[Any], target: ActorRef, timeout: float) -> None:
    future.try_set_exception(
        AskTimeoutError(f"no reply from {target} within {timeout} s; a late reply goes to dead letters")
    )



