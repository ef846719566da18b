"""EventStream: publish/subscribe by type, inside one actor system.

Handlers run synchronously on the publishing thread; keep them short (post
to an actor for anything slow). A handler that raises is logged and does not
disturb the publisher or the other handlers.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Generic, TypeVar

__all__ = ["EventStream", "Subscription"]

_log = logging.getLogger("nexus.core.events")

E = TypeVar("E")


class Subscription(Generic[E]):
    """Returned by ``subscribe``; ``unsubscribe()`` (or ``with``) ends it."""

    __slots__ = ("_stream", "event_type", "handler", "active")

    def __init__(self, stream: EventStream, event_type: type[E], handler: Callable[[E], Any]) -> None:
        self._stream = stream
        self.event_type = event_type
        self.handler = handler
        self.active = True

    def unsubscribe(self) -> None:
        self._stream.unsubscribe(self)

    def __enter__(self) -> Subscription[E]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unsubscribe()


class EventStream:
    """Delivers each published event to the handlers subscribed to its type or a base type."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[type, tuple[Subscription[Any], ...]] = {}
        self._by_concrete: dict[type, tuple[Subscription[Any], ...]] = {}  # cache, rebuilt on change
        self._published = 0

    def subscribe(self, event_type: type[E], handler: Callable[[E], Any]) -> Subscription[E]:
        if not isinstance(event_type, type):
            raise TypeError(f"subscribe() takes an event class, got {event_type!r}")
        sub = Subscription(self, event_type, handler)
        with self._lock:
            self._subs[event_type] = (*self._subs.get(event_type, ()), sub)
            self._by_concrete = {}
        return sub

    def unsubscribe(self, sub: Subscription[Any]) -> None:
        with self._lock:
            sub.active = False
            remaining = tuple(s for s in self._subs.get(sub.event_type, ()) if s is not sub)
            if remaining:
                self._subs[sub.event_type] = remaining
            else:
                self._subs.pop(sub.event_type, None)
            self._by_concrete = {}

    def has_subscribers(self, event_type: type) -> bool:
        return bool(self._handlers_for(event_type))

    def _handlers_for(self, concrete: type) -> tuple[Subscription[Any], ...]:
        cache = self._by_concrete
        subs = cache.get(concrete)
        if subs is None:
            with self._lock:
                found: list[Subscription[Any]] = []
                for cls in concrete.__mro__:
                    found.extend(self._subs.get(cls, ()))
                subs = tuple(found)
                self._by_concrete[concrete] = subs
        return subs

    def publish(self, event: Any) -> None:
        self._published += 1
        for sub in self._handlers_for(type(event)):
            if not sub.active:
                continue
            try:
                sub.handler(event)
            except Exception:
                _log.exception("event handler %r raised on %r", sub.handler, event)

    @property
    def published(self) -> int:
        return self._published
