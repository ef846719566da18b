"""ActorRef: the only handle user code holds to an actor.

A ref has a stable printable address (``nexus://<system>/user/<name>/...``)
and a uid that tells incarnations at the same address apart: a ref to a
stopped actor never reaches a new actor spawned later under the same name.
``tell`` never blocks (except into a full BLOCK mailbox) and never raises for
a dead target: the message goes to dead letters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from .future import Future
from .messages import Terminated, Watch

if TYPE_CHECKING:
    from .system import ActorSystem

__all__ = ["ActorRef"]


class ActorRef:
    """Send messages to an actor: ``tell`` (fire and forget) or ``ask`` (a Future of the reply)."""

    __slots__ = ("_address", "_uid", "_cell", "_post")

    def __init__(self, address: str, uid: int, cell: Any) -> None:
        self._address = address
        self._uid = uid
        self._cell = cell
        self._post: Callable[[tuple[Any, Any]], None] | None = cell._mailbox.post_user if cell is not None else None

    @property
    def address(self) -> str:
        return self._address

    @property
    def name(self) -> str:
        return self._address.rsplit("/", 1)[-1]

    @property
    def path(self) -> str:
        """The address without the ``nexus://<system>`` prefix, e.g. ``/user/parent/child``."""
        rest = self._address.split("://", 1)[-1]
        return "/" + rest.split("/", 1)[1] if "/" in rest else "/"

    @property
    def uid(self) -> int:
        return self._uid

    # ---- sending ---------------------------------------------------------

    def tell(self, message: Any, sender: ActorRef | None = None) -> None:
        """Queue ``message`` for the actor and return at once (fire and forget)."""
        self._post((message, sender))  # type: ignore[misc]

    _deliver = tell  # the unfiltered send; system-level send filters end here

    def ask(self, message: Any, timeout: float | None = None) -> Future[Any]:
        """Send ``message`` with a temporary sender and return a Future of the reply.

        The future fails with AskTimeoutError after ``timeout`` seconds (a late
        reply then goes to dead letters), with DeadLetterError if the actor is
        not running, and with the actor's exception if handling the message
        raised. Block with ``future.result()`` or ``await future``.
        """
        system: ActorSystem = self._cell._system
        future, asker = system._new_ask(self, timeout)
        self.tell(message, asker)
        return future

    def _send_system(self, message: Any) -> None:
        self._cell._mailbox.post_system(message)

    # ---- identity ----------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ActorRef):
            return NotImplemented
        return self._uid == other._uid and self._address == other._address

    def __hash__(self) -> int:
        return hash(self._address) ^ self._uid

    def __str__(self) -> str:
        return self._address

    def __repr__(self) -> str:
        return f"ActorRef({self._address!r})"

    def __reduce__(self) -> Any:
        raise TypeError(
            f"{self!r} belongs to an in-process actor system and cannot be pickled; "
            "send it to actors of the same system, or use the cluster API to address remote actors"
        )


class _FilteredActorRef(ActorRef):
    """A ref of a system with send filters: every ``tell`` passes through them."""

    __slots__ = ()

    def tell(self, message: Any, sender: ActorRef | None = None) -> None:
        self._cell._system._send_chain(sender, self, message)


class _SystemRef(ActorRef):
    """A ref with no actor cell behind it; its sends still pass the system's send filters."""

    __slots__ = ("_system",)

    def __init__(self, system: ActorSystem, address: str, uid: int) -> None:
        self._address = address
        self._uid = uid
        self._cell = None
        self._post = None
        self._system = system

    def tell(self, message: Any, sender: ActorRef | None = None) -> None:
        chain = self._system._send_chain
        if chain is None:
            self._deliver(message, sender)
        else:
            chain(sender, self, message)

    def _deliver(self, message: Any, sender: ActorRef | None = None) -> None:
        raise NotImplementedError


class _FutureRef(_SystemRef):
    """The temporary sender of an ``ask``: its first reply completes the future."""

    __slots__ = ("_future", "_on_terminated")

    def __init__(self, system: ActorSystem, future: Future[Any], uid: int, on_terminated: bool = False) -> None:
        super().__init__(system, "", uid)  # the address is made only if someone prints it
        self._future = future
        self._on_terminated = on_terminated

    @property
    def address(self) -> str:
        if not self._address:
            self._address = f"nexus://{self._system.name}/temp/${self._uid}"
        return self._address

    def __str__(self) -> str:
        return self.address

    def __repr__(self) -> str:
        return f"ActorRef({self.address!r})"

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def _deliver(self, message: Any, sender: ActorRef | None = None) -> None:
        if self._on_terminated or not self._future.try_set_result(message):
            self._system._dead_letter(message, sender, self, "the asker is gone: it timed out or already has its reply")

    def ask(self, message: Any, timeout: float | None = None) -> Future[Any]:
        return Future.failed(TypeError("a temporary ask sender cannot be asked"))

    def _send_system(self, message: Any) -> None:
        if self._on_terminated and type(message) is Terminated:
            self._future.try_set_result(None)


class _DeadRef(_SystemRef):
    """A ref to nothing: dead letters, or an address no live actor has."""

    __slots__ = ()

    def __init__(self, system: ActorSystem, address: str, uid: int = 0) -> None:
        super().__init__(system, address, uid)

    def _deliver(self, message: Any, sender: ActorRef | None = None) -> None:
        self._system._dead_letter(message, sender, self, "no actor at this address")

    def ask(self, message: Any, timeout: float | None = None) -> Future[Any]:
        future, asker = self._system._new_ask(self, timeout)
        self.tell(message, asker)
        return future

    def _send_system(self, message: Any) -> None:
        if type(message) is Watch:
            message.watcher._send_system(Terminated(self))
