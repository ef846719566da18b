"""Props: the recipe for an actor -- what to create and how to run it.

Props are immutable; ``with_*`` methods return changed copies::

    props = (Props.from_class(Counter, start=10)
             .with_mailbox(MailboxSpec.bounded(1000, OverflowPolicy.DROP_OLDEST))
             .with_supervisor(SupervisorBuilder().all_for_one().build()))
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable

from .actor import FunctionActor
from .mailbox import MailboxSpec

if TYPE_CHECKING:
    from .dispatcher import SchedulerProvider
    from .middleware import ErrorHook, ReceiveFilter, SendFilter
    from .supervision import SupervisorStrategy

__all__ = ["Props"]


@dataclass(frozen=True)
class Props:
    """How to create an actor (``producer``) and how to run it."""

    producer: Callable[[], Any]
    is_async: bool = False
    mailbox: MailboxSpec | None = None  # None: the system's default
    dispatcher: SchedulerProvider | None = None  # None: the system's (asyncio one for async actors)
    supervisor: SupervisorStrategy | None = None  # how this actor supervises its children
    receive_filters: tuple[ReceiveFilter, ...] = ()
    send_filters: tuple[SendFilter, ...] = ()
    error_hooks: tuple[ErrorHook, ...] = ()
    description: str = ""

    # ---- constructors ------------------------------------------------------

    @classmethod
    def from_class(cls, actor_class: type, *args: Any, **kwargs: Any) -> Props:
        """Actors made by ``actor_class(*args, **kwargs)``; the class needs ``receive(self, ctx, message)``."""
        if not isinstance(actor_class, type):
            raise TypeError(f"Props.from_class takes a class, got {actor_class!r}; use Props.from_func for functions")
        receive = getattr(actor_class, "receive", None)
        if not callable(receive):
            raise TypeError(f"{actor_class.__qualname__} has no receive(self, ctx, message) method, so it cannot be an actor")
        hooks = ("receive", "started", "stopping", "stopped", "restarting")
        return cls(
            producer=functools.partial(actor_class, *args, **kwargs),
            # One async method makes the whole actor async: its coroutines need an event loop.
            is_async=any(inspect.iscoroutinefunction(getattr(actor_class, hook, None)) for hook in hooks),
            description=actor_class.__qualname__,
        )

    @classmethod
    def from_func(cls, receive: Callable[..., Any]) -> Props:
        """A function-based actor: ``receive(ctx, message)`` handles every message."""
        if not callable(receive) or isinstance(receive, type):
            raise TypeError(f"Props.from_func takes a function receive(ctx, message), got {receive!r}")
        return cls(
            producer=functools.partial(FunctionActor, receive),
            is_async=inspect.iscoroutinefunction(receive),
            description=getattr(receive, "__qualname__", repr(receive)),
        )

    @classmethod
    def from_producer(cls, producer: Callable[[], Any], is_async: bool = False) -> Props:
        """Actors made by calling ``producer()``, which returns an object with ``receive``."""
        if not callable(producer):
            raise TypeError(f"Props.from_producer takes a callable, got {producer!r}")
        return cls(producer=producer, is_async=is_async, description=getattr(producer, "__qualname__", repr(producer)))

    @classmethod
    def of(cls, spec: Props | type | Callable[..., Any]) -> Props:
        """Props as given, from an actor class, or from a receive function."""
        if isinstance(spec, Props):
            return spec
        if isinstance(spec, type):
            return cls.from_class(spec)
        if callable(spec):
            return cls.from_func(spec)
        raise TypeError(f"expected Props, an actor class or a receive function, got {spec!r}")

    # ---- copies with changes ---------------------------------------------

    def with_mailbox(self, mailbox: MailboxSpec) -> Props:
        return replace(self, mailbox=mailbox)

    def with_dispatcher(self, dispatcher: SchedulerProvider) -> Props:
        return replace(self, dispatcher=dispatcher)

    def with_supervisor(self, supervisor: SupervisorStrategy) -> Props:
        return replace(self, supervisor=supervisor)

    def with_receive_filters(self, *filters: ReceiveFilter) -> Props:
        return replace(self, receive_filters=(*self.receive_filters, *filters))

    def with_send_filters(self, *filters: SendFilter) -> Props:
        return replace(self, send_filters=(*self.send_filters, *filters))

    def with_error_hooks(self, *hooks: ErrorHook) -> Props:
        return replace(self, error_hooks=(*self.error_hooks, *hooks))
