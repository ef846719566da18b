"""ActorCell: the runtime side of one actor -- lifecycle, system messages, supervision.

State machine (``CellState``)::

    CREATED --Create--> ALIVE --Restart--> RESTARTING --children gone--> ALIVE
       |                  |                    |
       +------------------+--------Stop--------+--> STOPPING --children gone--> STOPPED

Only the actor's own turn touches a cell, so none of this needs locks; other
threads reach it only through its mailbox.
"""

from __future__ import annotations

import enum
import inspect
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from .context import Context
from .errors import ActorStoppingError, NexusError
from .events import ActorRestarted, ActorStarted, ActorStopped, FailureEvent, MessageDropped, SupervisionDecision
from .mailboxes import DROPPED_NEWEST, DROPPED_OLDEST
from .messages import (
    RECEIVE_TIMEOUT,
    RESUME,
    STOP,
    Continuation,
    Create,
    Failure,
    NotInfluenceReceiveTimeout,
    PoisonPill,
    ReceiveTimeoutTick,
    Restart,
    Resume,
    Stop,
    Terminated,
    Unwatch,
    Watch,
)
from .middleware import compose
from .ref import ActorRef, _FilteredActorRef, _FutureRef
from .supervision import RestartStatistics

if TYPE_CHECKING:
    from .dispatcher import SchedulerProvider
    from .props import Props
    from .system import ActorSystem

__all__ = ["ActorCell", "CellState"]

_log = logging.getLogger("nexus.core.actor")


class CellState(enum.Enum):
    CREATED = "created"
    ALIVE = "alive"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    STOPPED = "stopped"


_CREATED, _ALIVE, _RESTARTING, _STOPPING, _STOPPED = (
    CellState.CREATED, CellState.ALIVE, CellState.RESTARTING, CellState.STOPPING, CellState.STOPPED,
)


def _then(result: Any, continuation: Callable[[], Any]) -> Any:
    """Run ``continuation`` after ``result`` -- at once, or after awaiting it in async actors."""
    if result is not None and inspect.isawaitable(result):
        async def chained() -> Any:
            await result
            after = continuation()
            if after is not None and inspect.isawaitable(after):
                await after

        return chained()
    return continuation()


class ActorCell(Context):
    """One actor: its instance, mailbox, children, watchers and supervision state."""

    __slots__ = ()

    def __init__(self, system: ActorSystem, props: Props, parent: Any, address: str, name: str, dispatcher: SchedulerProvider) -> None:
        self._system = system
        self._props = props
        self._parent = parent
        self._name = name
        self._children: dict[str, ActorCell] = {}
        self._watchers: set[ActorRef] | None = None
        self._watching: set[ActorRef] | None = None
        self._actor: Any = None
        self._behaviors: list[Callable[[Context, Any], Any]] = []
        self._message: Any = None
        self._sender: ActorRef | None = None
        self._stash: list[tuple[Any, Any]] | None = None
        self._state = _CREATED
        self._incarnation = 0
        self._stats = RestartStatistics()
        self._rt_duration: float | None = None
        self._rt_last = 0.0
        self._rt_generation = 0
        self._rt_timer: Any = None
        self._restart_timer: Any = None
        self._restart_reason: BaseException | None = None
        self._held: list[tuple[Any, Any]] = []  # notices for the actor while it cannot take them
        self._held_system: list[Any] = []  # continuations waiting for a supervisor's decision
        self._escalated: list[ActorRef] = []  # failed children whose failure this actor escalated
        self._failing_child: ActorRef | None = None
        self._dispatcher = dispatcher
        self._mailbox: Any = (props.mailbox or system.config.mailbox).create()
        self._mailbox.attach(self, dispatcher)
        ref_class = _FilteredActorRef if system._send_chain is not None else ActorRef
        self._ref = ref_class(address, system._next_uid(), self)
        filters = (*system.config.receive_filters, *props.receive_filters)
        self._filtered_receive = compose(filters, self._call_behavior) if filters else None
        self._receive: Callable[[Context, Any], Any] = self._call_behavior
        send_filters = props.send_filters
        self._send: Callable[[ActorRef | None, ActorRef, Any], None] = (
            compose(send_filters, _plain_send) if send_filters else _plain_send
        )
        self._error_handler = compose(props.error_hooks, system._error_chain) if props.error_hooks else system._error_chain

    # ---- state -----------------------------------------------------------

    @property
    def state(self) -> CellState:
        return self._state

    @property
    def name(self) -> str:
        return self._name

    def start(self) -> None:
        self._mailbox.post_system(Create())

    # ---- behaviour -------------------------------------------------------

    def _call_behavior(self, ctx: Context, message: Any) -> Any:
        return self._behaviors[-1](ctx, message)

    def _update_receive(self) -> None:
        # Without filters the top behaviour is called directly (one call less per message).
        self._receive = self._filtered_receive or self._behaviors[-1]

    def _reset_behavior(self) -> None:
        self._behaviors = [self._actor.receive]
        self._update_receive()

    # ---- Invoker: user messages -------------------------------------------

    def invoke_user(self, message: Any, sender: Any) -> Any:
        self._message = message
        self._sender = sender
        if message.__class__ is PoisonPill:
            return self._begin_stop()
        if self._rt_duration is not None and not isinstance(message, NotInfluenceReceiveTimeout):
            self._rt_last = self._system._clock.now()
        return self._receive(self, message)

    def _deliver_user(self, message: Any) -> Any:
        """Hand a runtime-made message (Terminated, ReceiveTimeout) to the actor now."""
        self._message = message
        self._sender = None
        return self._receive(self, message)

    # ---- Invoker: system messages ------------------------------------------

    def invoke_system(self, message: Any) -> Any:
        handler = _SYSTEM_HANDLERS.get(type(message))
        if handler is None:
            _log.warning("%s: unknown system message %r dropped", self._ref, message)
            return None
        return handler(self, message)

    def _on_create(self, _message: Create) -> Any:
        if self._state is not _CREATED:
            return None
        self._actor = self._props.producer()
        self._reset_behavior()
        self._state = _ALIVE
        self._system.event_stream.publish(ActorStarted(self._ref))
        return self._actor.started(self) if hasattr(self._actor, "started") else None

    def _on_stop(self, _message: Stop) -> Any:
        return self._begin_stop()

    def _on_watch(self, message: Watch) -> None:
        if self._watchers is None:
            self._watchers = set()
        self._watchers.add(message.watcher)

    def _on_unwatch(self, message: Unwatch) -> None:
        if self._watchers:
            self._watchers.discard(message.watcher)

    def _note_terminated(self, notice: Terminated) -> bool:
        """Book-keep a stopped child or watchee; return whether the actor should see the notice."""
        who = notice.who
        child = self._children.get(who.name)
        if child is not None and child._ref == who:
            del self._children[who.name]
        deliver = False
        if self._watching and who in self._watching:
            self._watching.discard(who)
            deliver = True
        return deliver

    def _on_terminated(self, notice: Terminated) -> Any:
        deliver = self._note_terminated(notice)
        if deliver:
            if self._state is _ALIVE and not self._mailbox.suspended:
                return self._deliver_user(notice)
            if self._state is not _STOPPING:
                # Held outside the mailbox (a bounded one might refuse it) until the actor runs again.
                self._held.append((notice, None))
        if not self._children:
            if self._state is _STOPPING:
                return self._finish_stop()
            if self._state is _RESTARTING:
                return self._finish_restart()
        return None

    def _on_failure(self, failure: Failure) -> None:
        child = self._children.get(failure.child.name)
        if child is None or child._ref != failure.child:
            return  # a child that is already gone
        if self._state in (_STOPPING, _STOPPED, _RESTARTING):
            return  # the child is being stopped with us; nothing to decide or escalate
        strategy = self._props.supervisor or self._system._default_strategy
        self._failing_child = failure.child
        try:
            directive = strategy.handle_failure(
                self, failure.child, failure.stats, failure.reason, failure.message, self._system._clock.now()
            )
        finally:
            self._failing_child = None
        self._system.event_stream.publish(SupervisionDecision(self._ref, failure.child, directive, failure.reason))

    def _on_restart(self, message: Restart) -> Any:
        if self._state in (_STOPPING, _STOPPED, _RESTARTING):
            return None
        self._restart_timer = None
        self._state = _RESTARTING
        self._cancel_receive_timeout()
        hook = self._safe_hook("restarting", message.reason) if self._actor is not None else None
        self._restart_reason = message.reason

        def stop_children() -> Any:
            if self._children:
                for child in list(self._children.values()):
                    child._mailbox.post_system(STOP)
                return None
            return self._finish_restart()

        return _then(hook, stop_children)

    def _finish_restart(self) -> Any:
        self._incarnation += 1
        self._stats.restarts += 1
        self.unstash_all()
        try:
            self._actor = self._props.producer()
        except BaseException:
            self._state = _CREATED  # a later Restart tries again
            self._actor = None
            raise
        self._reset_behavior()
        self._state = _ALIVE
        self._escalated = []  # the restart stopped those children
        self._held_system = []  # continuations of the old incarnation
        self._release_held()
        self._system.event_stream.publish(ActorRestarted(self._ref, self._restart_reason, self._stats.restarts))
        self._mailbox.resume()
        return self._actor.started(self) if hasattr(self._actor, "started") else None

    def _release_held(self) -> None:
        if self._held:
            held, self._held = self._held, []
            self._mailbox.requeue_front(held)

    def _on_resume(self, _message: Resume) -> Any:
        if self._state is _CREATED:
            # Its constructor failed, so there is no instance to resume; trying again uncounted
            # could loop forever, so the actor stops (a RESTART directive is the way to retry).
            _log.warning("%s: cannot resume an actor whose constructor failed; stopping it", self._ref)
            return self._begin_stop()
        if self._state is _ALIVE:
            self._mailbox.resume()
            self._release_held()
            for child in self._escalated:
                child._send_system(RESUME)  # children whose failure we escalated wait on our fate
            self._escalated = []
            if self._held_system:
                held, self._held_system = self._held_system, []
                for message in held:
                    self._mailbox.post_system(message)
        return None

    def _on_continuation(self, notice: Continuation) -> Any:
        if notice.incarnation != self._incarnation or self._state is not _ALIVE:
            _log.debug("%s: continuation dropped (actor restarted or stopping)", self._ref)
            return None
        if self._mailbox.suspended:
            self._held_system.append(notice)  # runs if the supervisor resumes us, dropped on restart
            return None
        self._message = notice.message
        self._sender = notice.sender
        return notice.fn(notice.future)

    def _on_receive_timeout_tick(self, tick: ReceiveTimeoutTick) -> Any:
        duration = self._rt_duration
        if tick.generation != self._rt_generation or duration is None or self._state is not _ALIVE:
            return None
        now = self._system._clock.now()
        idle = now - self._rt_last
        if idle < duration:
            self._schedule_receive_timeout(duration - idle)
            return None
        self._rt_last = now
        self._schedule_receive_timeout(duration)
        if self._mailbox.suspended:
            return None
        return self._deliver_user(RECEIVE_TIMEOUT)

    # ---- receive timeout internals -----------------------------------------

    def _schedule_receive_timeout(self, delay: float) -> None:
        tick = ReceiveTimeoutTick(self._rt_generation)
        self._rt_timer = self._system._clock.call_later(delay, self._mailbox.post_system, tick)

    def _cancel_receive_timeout(self) -> None:
        self._rt_generation += 1
        self._rt_duration = None
        if self._rt_timer is not None:
            self._rt_timer.cancel()
            self._rt_timer = None

    # ---- stopping --------------------------------------------------------

    def _begin_stop(self) -> Any:
        if self._state in (_STOPPING, _STOPPED):
            return None
        self._state = _STOPPING
        self._mailbox.suspend()
        self._cancel_receive_timeout()
        if self._restart_timer is not None:
            self._restart_timer.cancel()
            self._restart_timer = None
        hook = self._safe_hook("stopping") if self._actor is not None else None

        def stop_children() -> Any:
            if self._children:
                for child in list(self._children.values()):
                    child._mailbox.post_system(STOP)
                return None
            return self._finish_stop()

        return _then(hook, stop_children)

    def _finish_stop(self) -> Any:
        hook = self._safe_hook("stopped") if self._actor is not None else None
        return _then(hook, self._after_stopped)

    def _after_stopped(self) -> None:
        if self._state is _STOPPED:
            return
        self._state = _STOPPED
        # Let go of the instance: refs to a stopped actor outlive it.
        self._actor = None
        self._behaviors = []
        self._receive = _stopped_receive
        self._filtered_receive = None
        self._message = self._sender = None
        self._held = []
        self._held_system = []
        system = self._system
        if self._stash:
            for message, sender in self._stash:
                system._dead_letter(message, sender, self._ref, "stashed when the actor stopped")
            self._stash = None
        system._unregister(self)
        notice = Terminated(self._ref)
        # The parent first, then watchers, then closing the mailbox (which answers queued watches):
        # whoever learns of the stop learns of it after the parent has forgotten the child.
        self._parent._post_system(notice)
        if self._watchers:
            for watcher in self._watchers:
                watcher._send_system(notice)
            self._watchers = None
        if self._watching:
            for watched in self._watching:
                watched._send_system(Unwatch(self._ref))
            self._watching = None
        self._mailbox.close()
        system.event_stream.publish(ActorStopped(self._ref))

    def _safe_hook(self, name: str, *args: Any) -> Any:
        """Call a teardown hook; its failure is logged, never escalated (the actor is going away)."""
        hook = getattr(self._actor, name, None)
        if hook is None:
            return None
        try:
            result = hook(self, *args)
        except Exception:
            _log.exception("%s: %s hook raised", self._ref, name)
            return None
        if result is not None and inspect.isawaitable(result):
            return _logged(result, self._ref, name)
        return None

    # ---- failure -------------------------------------------------------

    def handle_failure(self, reason: BaseException, message: Any, sender: Any) -> None:
        """The actor's code raised while handling ``message``: suspend and tell the supervisor."""
        if type(sender) is _FutureRef:
            sender._future.try_set_exception(reason)
        if self._state in (_STOPPING, _STOPPED):
            _log.error("%s raised while stopping", self._ref, exc_info=reason)
            return
        if isinstance(reason, ActorStoppingError):
            _log.debug("%s: a blocking wait was abandoned because the actor is stopping", self._ref)
            return  # not a failure: the pending Stop is handled next
        self._escalate(reason, message)

    def _escalate(self, reason: BaseException, message: Any) -> None:
        self._mailbox.suspend()
        self._error_handler(FailureEvent(self._ref, reason, message, unhandled=False))
        self._parent._post_system(Failure(self._ref, reason, self._stats, message))

    def route_dead(self, message: Any, sender: Any, system: bool, reason: str) -> None:
        if not system:
            if reason is DROPPED_NEWEST or reason is DROPPED_OLDEST:
                self._system.event_stream.publish(MessageDropped(message, self._ref, reason))
            self._system._dead_letter(message, sender, self._ref, reason)
            return
        kind = type(message)
        if kind is Watch:
            message.watcher._send_system(Terminated(self._ref))
        elif kind is Failure:
            message.child._send_system(STOP)  # a child failed after we stopped: it stops too
        elif kind is Continuation:
            _log.debug("%s: continuation dropped, actor stopped", self._ref)

    # ---- Supervisor ------------------------------------------------------

    def child_refs(self) -> list[ActorRef]:
        return self.children

    def restart_children(self, reason: BaseException, *children: ActorRef, delay: float = 0.0) -> None:
        for child in children:
            restart_child(self._system, child, reason, delay)

    def stop_children(self, *children: ActorRef) -> None:
        for child in children:
            child._send_system(STOP)

    def resume_children(self, *children: ActorRef) -> None:
        for child in children:
            child._send_system(RESUME)

    def escalate_failure(self, reason: BaseException, message: Any) -> None:
        if self._failing_child is not None:
            self._escalated.append(self._failing_child)
        self._escalate(reason, message)

    def _post_system(self, message: Any) -> None:
        self._mailbox.post_system(message)

    # ---- children --------------------------------------------------------

    def _spawn_child(self, props: Any, name: str) -> ActorRef:
        if self._state in (_STOPPING, _STOPPED):
            raise NexusError(f"{self._ref} is stopping and cannot spawn children")
        if name in self._children:
            from .errors import NameTakenError

            raise NameTakenError(f"{self._ref} already has a child named {name!r}; pick another name or use spawn_prefix")
        cell = self._system._make_cell(props, self, f"{self._ref.address}/{name}", name)
        self._children[name] = cell
        self._system._register(cell)
        cell.start()
        return cell._ref


def _stopped_receive(ctx: Context, message: Any) -> None:
    raise NexusError(f"{ctx.self} has stopped")


def _plain_send(sender: ActorRef | None, target: ActorRef, message: Any) -> None:
    target.tell(message, sender)


def restart_child(system: ActorSystem, child: ActorRef, reason: BaseException, delay: float) -> None:
    """Send ``child`` a Restart now, or after ``delay`` seconds (remembered, so a stop cancels it)."""
    cell = child._cell
    if delay > 0:
        timer = system._clock.call_later(delay, child._send_system, Restart(reason))
        if isinstance(cell, ActorCell):
            cell._restart_timer = timer
    else:
        child._send_system(Restart(reason))


async def _logged(awaitable: Awaitable[Any], ref: ActorRef, name: str) -> None:
    try:
        await awaitable
    except Exception:
        _log.exception("%s: %s hook raised", ref, name)


_SYSTEM_HANDLERS: dict[type, Callable[[ActorCell, Any], Any]] = {
    Create: ActorCell._on_create,
    Stop: ActorCell._on_stop,
    Watch: ActorCell._on_watch,
    Unwatch: ActorCell._on_unwatch,
    Terminated: ActorCell._on_terminated,
    Failure: ActorCell._on_failure,
    Restart: ActorCell._on_restart,
    Resume: ActorCell._on_resume,
    Continuation: ActorCell._on_continuation,
    ReceiveTimeoutTick: ActorCell._on_receive_timeout_tick,
}
