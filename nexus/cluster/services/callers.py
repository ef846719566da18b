"""The callers' side of virtual actors (see :mod:`.virtual`): ``Cls.virtual(identity)``'s handle, and each
process's leases on activations, which let its calls go straight to them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .hosting import hosted
from .virtual import DEFAULT_IDLE, DIRECTORY, Directory, lease_seconds

__all__ = ["VirtualActorHandle", "VirtualMethod", "directory", "virtual_handle"]

_directory_class: list[Any] = []
_directory_handle: list[tuple[Any, Any]] = []  # (the session it is of, the handle)
# Reentrant: while a task's thread waits for the head's answer in here, the worker may run another task on top of
# it, on that same thread, which may come here too (with a plain lock, both waited for ever: a stack of tasks hung).
_directory_lock = threading.RLock()


def directory(actor_class: type) -> Any:
    """The cluster's directory actor (made by the first that needs it; its handle kept for this process's
    session); ``actor_class``: the ActorClass type (the api's, which imports this module: not imported back)."""
    from ..session import current

    session = current()
    known = _directory_handle[0] if _directory_handle else None
    if known is not None and known[0] is session:
        return known[1]
    with _directory_lock:  # (threads of this process: one makes it)
        if _directory_handle and _directory_handle[0][0] is session:
            return _directory_handle[0][1]
        if not _directory_class:
            _directory_class.append(actor_class(Directory, {}))
        options = {"name": DIRECTORY, "get_if_exists": True, "num_cpus": 0, "max_concurrency": 10_000, "max_restarts": -1}
        try:
            handle = _directory_class[0].options(**options).remote(actor_class)
        except ValueError:  # (another process made it between the look and the making: it is there now)
            handle = _directory_class[0].options(**options).remote(actor_class)
        _directory_handle[:] = [(session, handle)]
        return handle


@dataclass
class _Lease:
    """This process's way to one identity: a lease on its activation (or none yet), and the calls forwarded."""

    session: Any
    handle: Any = None  # the activation's handle, while the lease holds
    hosted: bool = False  # the handle is a host's (calls name the identity: hosting.py)
    seconds: float = 0.0
    until: float = 0.0  # (this process's clock: from when it asked, so before the directory's end of it)
    asked: float = 0.0
    pending: Any = None  # the ref of the lease being asked for
    forwarded: list[Any] = field(default_factory=list)  # refs of calls sent through the directory, not yet answered
    lock: threading.Lock = field(default_factory=threading.Lock)  # (threads of one process share the lease)


_leases: dict[tuple[str, str], _Lease] = {}
_LEASES_KEPT = 4096  # past this many, the leases that ended are forgotten


def _route(h: VirtualActorHandle) -> tuple[Any, _Lease]:
    """(the activation's handle to call directly, or None to send through the directory; the identity's lease).
    Asks for a lease (or its renewal, halfway through) on the way, without waiting for it."""
    from ..session import current

    session = current()
    key = (h._kind, h._identity)
    lease = _leases.get(key)
    if lease is None or lease.session is not session:
        if len(_leases) >= _LEASES_KEPT:
            _forget_ended(time.monotonic())
        lease = _leases[key] = _Lease(session)
    now = time.monotonic()
    if lease.pending is not None and _ready(session, [lease.pending]):
        ref, lease.pending = lease.pending, None
        try:
            from ..values import _resolve

            handle, seconds, hosted_ = _resolve(ref)  # (ready: no wait)
        except Exception:  # (the directory failed: the calls go through it, and tell why)
            lease.handle = None
        else:
            lease.handle, lease.seconds, lease.until, lease.hosted = handle, seconds, lease.asked + seconds, hosted_
    if lease.forwarded:
        checked = lease.forwarded[:]
        if _ready(session, checked):  # (not under the lock: a task may run on top of this one while it waits)
            answered = {id(ref) for ref in checked}
            with lease.lock:  # (only the refs found answered go: another thread may have added one meanwhile)
                lease.forwarded[:] = [ref for ref in lease.forwarded if id(ref) not in answered]
    direct = lease.handle is not None and now < lease.until and not lease.forwarded
    if lease.pending is None and (not direct or lease.until - now < lease.seconds / 2):
        using = lease.handle._actor_id if lease.handle is not None else 0
        lease.asked = now
        lease.pending = directory(type(h._cls)).lease.remote(h._kind, h._cls, h._identity, h._idle, using)
    return (lease.handle if direct else None), lease


def _direct(handle: Any, lease: _Lease, identity: str, method: str) -> Any:
    """The method to call under the lease: the activation's own, or its host's ``call`` for the identity."""
    if lease.hosted:
        return _HostedMethod(handle, identity, method)
    return getattr(handle, method)


class _HostedMethod:
    __slots__ = ("_call", "_identity", "_method")

    def __init__(self, host: Any, identity: str, method: str) -> None:
        self._call, self._identity, self._method = host.call, identity, method

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._call.remote(self._identity, self._method, args, kwargs)

    def tell(self, *args: Any, **kwargs: Any) -> None:
        self._call.tell(self._identity, self._method, args, kwargs)


def _ready(session: Any, refs: list[Any]) -> bool:
    return len(session.wait_ids([r.id for r in refs], len(refs), 0)) == len(refs)


def _forget_ended(now: float) -> None:
    for key, lease in list(_leases.items()):
        if lease.until <= now and lease.pending is None and not lease.forwarded:
            del _leases[key]


class VirtualMethod:
    __slots__ = ("_handle", "_name")

    def __init__(self, handle: VirtualActorHandle, name: str) -> None:
        self._handle, self._name = handle, name

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        h = self._handle
        handle, lease = _route(h)
        if handle is not None:
            return _direct(handle, lease, h._identity, self._name).remote(*args, **kwargs)
        ref = directory(type(h._cls)).call.remote(h._kind, h._cls, h._identity, h._idle, self._name, args, kwargs)
        with lease.lock:
            lease.forwarded.append(ref)
        return ref

    def tell(self, *args: Any, **kwargs: Any) -> None:
        h = self._handle
        handle, lease = _route(h)
        if handle is not None:
            _direct(handle, lease, h._identity, self._name).tell(*args, **kwargs)
        else:  # (as a call whose answer nobody reads: the calls after it wait for it, to stay in order)
            ref = directory(type(h._cls)).call.remote(h._kind, h._cls, h._identity, h._idle, self._name, args, kwargs)
            with lease.lock:
                lease.forwarded.append(ref)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"virtual actor method {self._name} cannot be called directly; use .remote(...) or .tell(...)")


class VirtualActorHandle:
    """``Cls.virtual(identity)``: calls go to the one activation of that identity, wherever and whenever it lives."""

    def __init__(self, cls: Any, identity: str, idle: float) -> None:
        self._cls, self._identity, self._idle = cls, identity, idle
        self._kind = f"{cls._cls.__module__}.{cls._name}"

    def __getattr__(self, name: str) -> VirtualMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._cls._methods:
            raise AttributeError(f"virtual actor {self._cls._name}({self._identity!r}) has no method {name!r}")
        return VirtualMethod(self, name)

    def __reduce__(self) -> tuple[Any, ...]:
        return VirtualActorHandle, (self._cls, self._identity, self._idle)

    def __repr__(self) -> str:
        return f"VirtualActor({self._cls._name}, {self._identity!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VirtualActorHandle) and (other._kind, other._identity) == (self._kind, self._identity)

    def __hash__(self) -> int:
        return hash((self._kind, self._identity))


def virtual_handle(cls: Any, identity: str, idle: float | None = None) -> VirtualActorHandle:
    if not isinstance(identity, str) or not identity or "/" in identity or len(identity) > 200:
        raise ValueError(f"a virtual actor's identity is a non-empty string without '/', of up to 200 characters, not {identity!r}")
    if idle is None:
        idle = float(getattr(cls._cls, "virtual_idle", DEFAULT_IDLE))
    if not idle > 0:
        raise ValueError(f"a virtual actor's idle time is a positive number of seconds, not {idle!r}")
    lease_seconds(cls)  # (its error, at once)
    hosted(cls)
    return VirtualActorHandle(cls, identity, idle)
