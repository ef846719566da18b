"""Fixed-length message ids: how a message names its type without Python.

Every envelope carries a 32-bit ``message_id``. A type is registered under an
explicit id (what a device's firmware uses) or under a stable hash of its
qualified name, the same in every process and on every run. Two types under one
id is an error at registration, never a silent mix-up at run time; an id that
no type is registered under is rejected on receive with a clear error.

Id 0 means "no message id" (a plain Python object, pickled). Ids below
``0x100`` are reserved for Nexus's own messages.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ..core.errors import MessageIdCollisionError, UnknownMessageIdError

__all__ = ["MessageIdTable", "message_type", "stable_message_id"]

RESERVED_BELOW = 0x100
_MAX_ID = 0xFFFF_FFFF

T = TypeVar("T", bound=type)


def stable_message_id(name: str) -> int:
    """A 32-bit id from a type's qualified name: BLAKE2b, the same everywhere; never 0 or a reserved id."""
    salt = 0
    while True:
        digest = hashlib.blake2b(f"{name}#{salt}".encode() if salt else name.encode(), digest_size=4).digest()
        value = int.from_bytes(digest, "little")
        if value >= RESERVED_BELOW:
            return value
        salt += 1


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class MessageIdTable:
    """The registration table: message id <-> type, both ways, thread-safe."""

    def __init__(self) -> None:
        self._types: dict[int, type] = {}
        self._ids: dict[type, int] = {}
        self._names: dict[int, str] = {}
        self._lock = threading.Lock()

    def register(self, cls: type, message_id: int | None = None, *, name: str | None = None, system: bool = False) -> int:
        """Register ``cls`` and return its id.

        Without ``message_id`` the id is :func:`stable_message_id` of ``name``
        (default: ``module.QualName``). Registering the same type again under the
        same id is a no-op; any other overlap raises :class:`MessageIdCollisionError`.
        """
        if not isinstance(cls, type):
            raise TypeError(f"register a type, not {cls!r}")
        name = name or _qualified_name(cls)
        if message_id is None:
            message_id = stable_message_id(name)
        elif isinstance(message_id, bool) or not isinstance(message_id, int) or not 0 < message_id <= _MAX_ID:
            raise ValueError(f"message id of {cls.__qualname__} must be an int in 1..0xFFFFFFFF, not {message_id!r}")
        elif message_id < RESERVED_BELOW and not system:
            raise ValueError(f"message id {message_id:#x} of {cls.__qualname__} is reserved for Nexus (ids below {RESERVED_BELOW:#x})")
        with self._lock:
            holder = self._types.get(message_id)
            if holder is not None and holder is not cls:
                raise MessageIdCollisionError(
                    f"message id {message_id:#010x} of {name} is already taken by {_qualified_name(holder)}; "
                    "give one of them an explicit id"
                )
            known = self._ids.get(cls)
            if known is not None and known != message_id:
                raise MessageIdCollisionError(f"{name} is already registered under {known:#010x}, not {message_id:#010x}")
            self._types[message_id] = cls
            self._ids[cls] = message_id
            self._names[message_id] = name
        return message_id

    def unregister(self, cls: type) -> None:
        with self._lock:
            message_id = self._ids.pop(cls, None)
            if message_id is not None:
                del self._types[message_id]
                del self._names[message_id]

    def id_of(self, cls: type) -> int:
        """The id of a registered type, 0 when it is not registered (hot path: a dict lookup)."""
        return self._ids.get(cls, 0)

    def type_of(self, message_id: int) -> type:
        """The type registered under ``message_id``; :class:`UnknownMessageIdError` when there is none."""
        cls = self._types.get(message_id)
        if cls is None:
            raise UnknownMessageIdError(
                f"unknown message id {message_id:#010x}: no type is registered under it on this side; "
                "register the type here (MessageIdTable.register or @message_type) with the sender's id"
            )
        return cls

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._types

    def __iter__(self) -> Iterator[tuple[int, str, type]]:
        with self._lock:
            rows = sorted((i, self._names[i], t) for i, t in self._types.items())
        return iter(rows)

    def __len__(self) -> int:
        return len(self._types)

    def export(self) -> list[dict[str, Any]]:
        """The table as data (id and name per type), for tools and devices."""
        return [{"id": message_id, "name": name} for message_id, name, _ in self]

    def c_header(self, prefix: str = "NEXUS_MSG_") -> str:
        """The table as C ``#define`` lines, so firmware names its messages with the same ids."""
        lines = ["/* Generated by nexus.messaging.MessageIdTable.c_header; ids of registered message types. */"]
        rows = list(self)
        short = [name.rsplit(".", 1)[-1] for _, name, _ in rows]
        for (message_id, name, _), last in zip(rows, short, strict=True):
            label = last if short.count(last) == 1 else name  # two types of one class name: spell out the module
            symbol = "".join(ch if ch.isalnum() else "_" for ch in label).upper()
            lines.append(f"#define {prefix}{symbol} {message_id:#010x}u  /* {name} */")
        return "\n".join(lines) + "\n"


DEFAULT_TABLE = MessageIdTable()


def message_type(
    message_id: int | None = None, *, name: str | None = None, table: MessageIdTable | None = None
) -> Callable[[T], T]:
    """Class decorator: register the class under ``message_id`` (or the stable hash of its name)."""

    def register(cls: T) -> T:
        (DEFAULT_TABLE if table is None else table).register(cls, message_id, name=name)
        return cls

    return register
