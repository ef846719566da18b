"""Context: what an actor can see and do while it handles a message.

The context passed to ``receive(ctx, message)`` is the actor's own cell seen
through its public face: who it is (``self``, ``parent``, ``children``), who
sent the current message (``sender``), and what it can do -- send, respond,
spawn, watch, stop, stash, change behaviour, wait selectively (``expect``)
and continue after a future (``reenter_after``). Everything here must be
called from the actor's own turn.
"""

from __future__ import annotations

import _thread
import time
from typing import TYPE_CHECKING, Any, Callable

from . import _threadstate
from .errors import ActorStoppingError, ExpectTimeoutError, NexusError
from .future import Future
from .messages import STOP, Continuation, PoisonPill, Terminated, Unwatch, Watch

if TYPE_CHECKING:
    from .ref import ActorRef
    from .system import ActorSystem

__all__ = ["Context"]

Matcher = type | tuple[type, ...] | Callable[[Any], bool]


def _predicate(match: Matcher) -> Callable[[Any], bool]:
    if isinstance(match, type) or (isinstance(match, tuple) and all(isinstance(t, type) for t in match)):
        return lambda message: isinstance(message, match)
    if callable(match):
        return match
    raise TypeError(f"expect() takes a type, a tuple of types or a predicate, got {match!r}")


class Context:
    """The public face of an actor cell; see the module docstring."""

    __slots__ = (
        "_system", "_props", "_parent", "_ref", "_name", "_children", "_watchers", "_watching",
        "_actor", "_behaviors", "_receive", "_filtered_receive", "_send", "_message", "_sender",
        "_stash", "_state", "_incarnation", "_stats", "_mailbox", "_dispatcher", "_error_handler",
        "_rt_duration", "_rt_last", "_rt_generation", "_rt_timer", "_restart_timer", "_restart_reason",
        "_held", "_held_system", "_escalated", "_failing_child", "__weakref__",
    )

    # Declared here for type checkers; set by ActorCell.__init__.
    _system: ActorSystem
    _props: Any
    _parent: Any
    _ref: ActorRef
    _name: str
    _children: dict[str, Any]
    _watchers: set[ActorRef] | None
    _watching: set[ActorRef] | None
    _actor: Any
    _behaviors: list[Callable[[Context, Any], Any]]
    _receive: Callable[[Context, Any], Any]
    _filtered_receive: Callable[[Context, Any], Any] | None
    _send: Callable[[ActorRef | None, ActorRef, Any], None]
    _message: Any
    _sender: ActorRef | None
    _stash: list[tuple[Any, Any]] | None
    _state: Any
    _incarnation: int
    _stats: Any
    _mailbox: Any
    _dispatcher: Any
    _error_handler: Callable[[Any], None]
    _rt_duration: float | None
    _rt_last: float
    _rt_generation: int
    _rt_timer: Any
    _restart_timer: Any
    _restart_reason: BaseException | None
    _held: list[tuple[Any, Any]]
    _held_system: list[Any]
    _escalated: list[ActorRef]
    _failing_child: ActorRef | None

    # ---- identity ----------------------------------------------------------

    @property
    def self(self) -> ActorRef:
        return self._ref

    @property
    def parent(self) -> ActorRef | None:
        """The supervising actor, or None for a top-level actor."""
        return getattr(self._parent, "_ref", None) if self._parent is not self._system._guardian else None

    @property
    def children(self) -> list[ActorRef]:
        return [child._ref for child in list(self._children.values())]

    @property
    def system(self) -> ActorSystem:
        return self._system

    @property
    def message(self) -> Any:
        """The message being handled."""
        return self._message

    @property
    def sender(self) -> ActorRef | None:
        """Who sent the current message (None if it was sent without a sender)."""
        return self._sender

    # ---- interaction -------------------------------------------------------

    def send(self, target: ActorRef, message: Any) -> None:
        """Fire and forget, without a sender."""
        self._send(None, target, message)

    def request(self, target: ActorRef, message: Any) -> None:
        """Fire and forget with this actor as sender, so the reply comes to its mailbox."""
        self._send(self._ref, target, message)

    def respond(self, message: Any) -> None:
        """Reply to the sender of the current message (dead letters if there is none)."""
        sender = self._sender
        if sender is None:
            self._system._dead_letter(message, self._ref, None, "respond() to a message that has no sender")
        else:
            self._send(self._ref, sender, message)

    def forward(self, target: ActorRef) -> None:
        """Pass the current message on, keeping its original sender."""
        self._send(self._sender, target, self._message)

    def ask(self, target: ActorRef, message: Any, timeout: float | None = None) -> Future[Any]:
        """Ask ``target``; pair with ``reenter_after`` rather than blocking on the future."""
        future, asker = self._system._new_ask(target, timeout)
        self._send(asker, target, message)
        return future

    # ---- children and lifecycle ---------------------------------------------

    def spawn(self, props: Any, name: str | None = None) -> ActorRef:
        """Start a child actor (from Props, an actor class or a receive function)."""
        if name is not None:
            return self.spawn_named(props, name)
        return self._spawn_child(props, self._system._auto_name())  # type: ignore[attr-defined,no-any-return]

    def spawn_named(self, props: Any, name: str) -> ActorRef:
        """Start a child with a chosen name; NameTakenError if a sibling has it."""
        self._system._check_name(name)
        return self._spawn_child(props, name)  # type: ignore[attr-defined,no-any-return]

    def spawn_prefix(self, props: Any, prefix: str) -> ActorRef:
        """Start a child named ``prefix`` followed by a unique number."""
        self._system._check_name(prefix)
        return self._spawn_child(props, self._system._auto_name(prefix))  # type: ignore[attr-defined,no-any-return]

    def stop(self, target: ActorRef | None = None) -> Future[None]:
        """Stop ``target`` (default: this actor) ahead of its queued messages; the future completes once it has stopped."""
        target = self._ref if target is None else target
        if target == self._ref:
            self._mailbox.suspend()  # handle no further user message in this turn
        return self._system._stop(target, STOP)

    def poison(self, target: ActorRef | None = None) -> Future[None]:
        """Stop ``target`` after the messages already queued for it; the future completes once it has stopped."""
        return self._system._stop(self._ref if target is None else target, PoisonPill())

    def watch(self, target: ActorRef) -> None:
        """Receive ``Terminated(target)`` once when ``target`` stops (at once if it already has)."""
        if self._watching is None:
            self._watching = set()
        if target not in self._watching:
            self._watching.add(target)
            target._send_system(Watch(self._ref))

    def unwatch(self, target: ActorRef) -> None:
        """Stop watching; no ``Terminated(target)`` is delivered afterwards."""
        if self._watching is not None and target in self._watching:
            self._watching.discard(target)
            target._send_system(Unwatch(self._ref))

    # ---- receive timeout -----------------------------------------------------

    @property
    def receive_timeout(self) -> float | None:
        return self._rt_duration

    def set_receive_timeout(self, seconds: float) -> None:
        """Deliver ``ReceiveTimeout`` whenever no user message arrived for ``seconds``."""
        if not seconds > 0:
            raise ValueError(f"receive timeout must be a positive number of seconds, got {seconds!r}")
        self._cancel_receive_timeout()  # type: ignore[attr-defined]
        self._rt_duration = seconds
        self._rt_last = self._system._clock.now()
        self._schedule_receive_timeout(seconds)  # type: ignore[attr-defined]

    def cancel_receive_timeout(self) -> None:
        self._cancel_receive_timeout()  # type: ignore[attr-defined]

    # ---- stash and behaviour -------------------------------------------------

    def stash(self) -> None:
        """Keep the current message aside until ``unstash_all``."""
        if self._stash is None:
            self._stash = []
        self._stash.append((self._message, self._sender))

    def unstash_all(self) -> None:
        """Put stashed messages back at the head of the mailbox, oldest first."""
        if self._stash:
            stash, self._stash = self._stash, None
            self._mailbox.requeue_front(stash)  # type: ignore[attr-defined]

    @property
    def stash_size(self) -> int:
        return len(self._stash) if self._stash else 0

    def become(self, behavior: Callable[[Context, Any], Any]) -> None:
        """Handle the next messages with ``behavior(ctx, message)`` instead of the current one."""
        self._behaviors[-1] = behavior
        self._update_receive()  # type: ignore[attr-defined]

    def become_stacked(self, behavior: Callable[[Context, Any], Any]) -> None:
        """Like ``become``, remembering the current behaviour for ``unbecome``."""
        self._behaviors.append(behavior)
        self._update_receive()  # type: ignore[attr-defined]

    def unbecome(self) -> None:
        """Return to the behaviour before the last ``become_stacked`` (the actor's own receive at the bottom)."""
        if len(self._behaviors) > 1:
            self._behaviors.pop()
            self._update_receive()  # type: ignore[attr-defined]

    # ---- continuation and selective receive ----------------------------------

    def reenter_after(self, future: Future[Any], continuation: Callable[[Future[Any]], Any]) -> None:
        """Run ``continuation(future)`` on this actor's turn once ``future`` is done.

        The continuation never runs concurrently with ``receive``; during it,
        ``ctx.message`` and ``ctx.sender`` are those of the message being handled
        now. If the actor restarts or stops first, the continuation is dropped.
        """
        if not callable(continuation):
            raise TypeError(f"reenter_after needs a callable continuation, got {continuation!r}")
        notice = (continuation, self._message, self._sender, self._incarnation)
        ref = self._ref

        def on_done(done: Future[Any]) -> None:
            ref._send_system(Continuation(notice[0], done, notice[1], notice[2], notice[3]))

        future.add_done_callback(on_done)

    def expect(self, match: Matcher, timeout: float | None = None) -> Any:
        """Wait inside ``receive`` for the next message matching ``match``; return it.

        ``match`` is a type, a tuple of types or a predicate. Messages that do
        not match stay in the mailbox, in order, for later turns.
        ``ctx.message`` and ``ctx.sender`` still describe the message being
        handled, so ``respond`` answers it, not the expected one. Raises
        ExpectTimeoutError after ``timeout`` seconds, and ActorStoppingError if
        the actor is stopped meanwhile. In ``async def`` actors use
        ``await ctx.expect_async(...)``.
        """
        if self._dispatcher.is_async:
            raise NexusError("expect() would block the event loop of an async actor; use 'await ctx.expect_async(...)'")
        predicate = _predicate(match)
        mailbox = self._mailbox
        clock = self._system._clock
        deterministic = hasattr(self._dispatcher, "run_one")
        start = clock.now() if deterministic else time.monotonic()
        deadline = None if timeout is None else start + timeout
        signal = _thread.allocate_lock()
        signal.acquire()

        def wake() -> None:
            try:
                signal.release()
            except RuntimeError:  # already signalled
                pass

        skipped: list[tuple[Any, Any]] = []
        mailbox.waiter = wake
        try:
            while True:
                found = self._expect_scan(predicate, skipped)
                if found is not None:
                    return found[0]
                now = clock.now() if deterministic else time.monotonic()
                remaining = None if deadline is None else deadline - now
                if remaining is not None and remaining <= 0:
                    raise ExpectTimeoutError(f"{self._ref}: no message matching {match!r} within {timeout} s")
                if deterministic:
                    if self._dispatcher.run_one():  # type: ignore[attr-defined]
                        continue
                    advance = getattr(clock, "advance", None)
                    if advance is None or remaining is None:
                        raise ExpectTimeoutError(
                            f"{self._ref}: expect({match!r}) would wait forever -- nothing else can run "
                            "on the deterministic dispatcher"
                        )
                    advance(remaining)
                    continue
                _threadstate.before_blocking()
                signal.acquire(True, -1 if remaining is None else remaining)
        finally:
            mailbox.waiter = None
            mailbox.requeue_front(skipped)  # type: ignore[attr-defined]

    async def expect_async(self, match: Matcher, timeout: float | None = None) -> Any:
        """``expect`` for ``async def`` actors: suspends the actor's turn, not the event loop."""
        import asyncio

        predicate = _predicate(match)
        mailbox = self._mailbox
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        deadline = None if timeout is None else loop.time() + timeout
        skipped: list[tuple[Any, Any]] = []
        mailbox.waiter = lambda: loop.call_soon_threadsafe(event.set)
        try:
            while True:
                event.clear()
                found = self._expect_scan(predicate, skipped)
                if found is not None:
                    return found[0]
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    raise ExpectTimeoutError(f"{self._ref}: no message matching {match!r} within {timeout} s")
                try:
                    await asyncio.wait_for(event.wait(), remaining)
                except asyncio.TimeoutError:
                    pass
        finally:
            mailbox.waiter = None
            mailbox.requeue_front(skipped)  # type: ignore[attr-defined]

    def _expect_scan(self, predicate: Callable[[Any], bool], skipped: list[tuple[Any, Any]]) -> tuple[Any, Any] | None:
        mailbox: Any = self._mailbox
        while True:
            item = mailbox.take_user()
            if item is None:
                break
            if type(item[0]) is not PoisonPill and predicate(item[0]):
                return item  # type: ignore[no-any-return]
            skipped.append(item)
        watching = self._watching
        while watching:
            notice = mailbox.take_system_if(lambda m: type(m) is Terminated and m.who in watching)
            if notice is None:
                break
            self._note_terminated(notice)  # type: ignore[attr-defined]  # bookkeeping; delivery is ours
            if predicate(notice):
                return (notice, None)
            skipped.append((notice, None))
        if mailbox.stop_pending():
            raise ActorStoppingError(f"{self._ref} is stopping; expect() abandoned")
        return None

    def __repr__(self) -> str:
        return f"<Context of {self._ref.address}>"
