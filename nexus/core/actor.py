"""Actors: class-based (``receive(ctx, message)`` plus lifecycle hooks) and function-based.

A class-based actor is any class with a ``receive(self, ctx, message)``
method; subclassing :class:`Actor` documents the hooks and gives them empty
defaults. Hooks are called, not delivered as messages: ``started(ctx)`` after
the instance is created (also after a restart), ``restarting(ctx, reason)`` on
the old instance before a restart, ``stopping(ctx)`` before the children are
stopped and ``stopped(ctx)`` at the very end.

A function-based actor is a function ``receive(ctx, message)``; it sees the
lifecycle as messages instead: ``Started``, ``Restarting``, ``Stopping`` and
``Stopped``. It keeps state in closures or with ``ctx.become``.

Either kind may be ``async def``: it then runs on an asyncio dispatcher.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from .messages import STARTED, STOPPED, STOPPING, Restarting

if TYPE_CHECKING:
    from .context import Context

__all__ = ["Actor"]


class Actor:
    """Optional base class for class-based actors."""

    def receive(self, ctx: Context, message: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement receive(self, ctx, message)")

    def started(self, ctx: Context) -> Any:
        """Called once the instance exists (after every restart too)."""

    def restarting(self, ctx: Context, reason: BaseException | None) -> Any:
        """Called on the old instance before it is replaced."""

    def stopping(self, ctx: Context) -> Any:
        """Called when the actor begins to stop, before its children stop."""

    def stopped(self, ctx: Context) -> Any:
        """Called after the actor and its children have stopped."""


class FunctionActor:
    """Adapts a ``receive(ctx, message)`` function; lifecycle hooks become messages."""

    __slots__ = ("receive",)

    def __init__(self, receive: Callable[[Context, Any], Any]) -> None:
        self.receive = receive

    def started(self, ctx: Context) -> Any:
        return self.receive(ctx, STARTED)

    def restarting(self, ctx: Context, reason: BaseException | None) -> Any:
        return self.receive(ctx, Restarting(reason))

    def stopping(self, ctx: Context) -> Any:
        return self.receive(ctx, STOPPING)

    def stopped(self, ctx: Context) -> Any:
        return self.receive(ctx, STOPPED)

    def __repr__(self) -> str:
        return f"FunctionActor({getattr(self.receive, '__qualname__', self.receive)!r})"
