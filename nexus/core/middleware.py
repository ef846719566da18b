"""Middleware: each a function from handler to handler.

As in protoactor-go (``ReceiverMiddleware func(next ReceiverFunc) ReceiverFunc``),
a filter receives the next handler and returns a handler that may act before
and after calling it, change what it passes on, or not call it at all::

    def log_receive(next_handler):
        def handler(ctx, message):
            print(ctx.self, "got", message)
            return next_handler(ctx, message)
        return handler

    Props.from_class(Counter).with_receive_filters(log_receive)

Three chains: ReceiveFilter (around every user message an actor handles),
SendFilter (around every send an actor makes; system-level ones around every
``tell`` in the system), ErrorHook (around the reporting of every failure).
Each can be set per Props and per system (``SystemConfig``); the system's
filters wrap the Props' ones. The first filter in a list is the outermost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

if TYPE_CHECKING:
    from .context import Context
    from .events import FailureEvent
    from .ref import ActorRef

__all__ = [
    "ErrorHandler",
    "ErrorHook",
    "ReceiveFilter",
    "ReceiveHandler",
    "SendFilter",
    "SendHandler",
    "compose",
]

ReceiveHandler = Callable[["Context", Any], Any]
ReceiveFilter = Callable[[ReceiveHandler], ReceiveHandler]
SendHandler = Callable[["ActorRef | None", "ActorRef", Any], None]  # (sender, target, message)
SendFilter = Callable[[SendHandler], SendHandler]
ErrorHandler = Callable[["FailureEvent"], None]
ErrorHook = Callable[[ErrorHandler], ErrorHandler]

H = TypeVar("H")


def compose(filters: Sequence[Callable[[Any], Any]], terminal: H) -> H:
    """Wrap ``terminal`` so that ``filters[0]`` runs first."""
    handler = terminal
    for middleware in reversed(filters):
        handler = middleware(handler)
        if not callable(handler):
            raise TypeError(f"middleware {middleware!r} must return a handler, it returned {handler!r}")
    return handler  # type: ignore[no-any-return]
