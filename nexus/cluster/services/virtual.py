"""Virtual actors: addressed by class and identity, never created (Orleans' grains, Proto.Actor's cluster kinds).

``Counter.virtual("user-42")`` is a handle that works from anywhere at any
time; ``.method.remote(...)`` reaches the one activation of that identity,
activating it first if there is none (an actor of the class, named
``virtual:<kind>/<identity>``, placed as any actor is), and ``.tell(...)``
sends with no answer. An activation unused for ``idle`` seconds (the class's
``virtual_idle``, or what ``.virtual(..., idle=)`` says; 300 by default) is
passivated, and the next call activates it again. A class may define
``on_activate(self, identity)`` (to load its state) and
``on_deactivate(self)`` (to save it); both run before and after any call.
Where an activation runs is the class's ``virtual_placement`` (a strategy of
:mod:`.placement`, consistent hashing by default) over the nodes alive, as
a soft affinity.

The directory that owns the activations is one actor of the cluster
(``nexus:directory``): it makes each activation under a lock of its identity
and forwards the calls, so there is never more than one activation of an
identity, and a call never reaches one that is being passivated. The head's
unique names are the arbiter: a directory that restarted (after its process
died) adopts the activations it finds by name instead of making others. An
activation whose process died is made again by the next call (the call that
was in it fails with the actor's error).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["DIRECTORY", "Directory", "VirtualActorHandle", "VirtualMethod", "virtual_handle"]

DIRECTORY = "nexus:directory"
DEFAULT_IDLE = 300.0


@dataclass
class _Activation:
    handle: Any
    cls: Any
    idle: float
    last: float
    node: str = ""  # where placement put it ("": wherever the cluster chose)
    inflight: int = 0


class Directory:
    """The identity directory: one activation per (kind, identity), made on first call, passivated when idle."""

    def __init__(self, sweep_every: float = 0.25) -> None:
        self.active: dict[tuple[str, str], _Activation] = {}
        self.locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.sweep_every = sweep_every
        self.sweeper: asyncio.Task[None] | None = None
        self.activations = self.passivations = 0
        self.strategies: dict[str, Any] = {}  # kind -> its PlacementStrategy

    async def call(self, kind: str, cls: Any, identity: str, idle: float, method: str, args: tuple, kwargs: dict) -> Any:
        from ...core.errors import ActorDiedError

        self._start_sweeping()
        key = (kind, identity)
        entry = await self._activation(key, cls, identity, idle)
        entry.inflight += 1
        try:
            return await getattr(entry.handle, method).remote(*args, **kwargs)
        except BaseException as exc:
            if isinstance(exc, ActorDiedError) and self.active.get(key) is entry:
                del self.active[key]  # (its process died: the next call makes it again)
                self._unplaced(key, entry)
            raise
        finally:
            entry.inflight -= 1
            entry.last = time.monotonic()

    async def _activation(self, key: tuple[str, str], cls: Any, identity: str, idle: float) -> _Activation:
        lock = self.locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self.active.get(key)
            if entry is None:
                name = f"virtual:{key[0]}/{identity}"
                adopted = _exists(name)  # (a directory that restarted finds its activations by their names)
                node, options = ("", {}) if adopted else self._place(key[0], cls, identity)
                handle = cls.options(name=name, get_if_exists=True, **options).remote()
                if not adopted and callable(getattr(cls._cls, "on_activate", None)):
                    await handle.on_activate.remote(identity)
                entry = self.active[key] = _Activation(handle, cls, idle, time.monotonic(), node)
                self.activations += 1
            return entry

    def _place(self, kind: str, cls: Any, identity: str) -> tuple[str, dict[str, Any]]:
        """The node the class's placement strategy (``virtual_placement``; consistent hashing by default) picks
        among the nodes alive now, as a soft affinity (where it cannot run, it runs elsewhere)."""
        from ..session import current
        from ..strategies import NodeAffinitySchedulingStrategy
        from .placement import load_strategy

        session = current()
        nodes = [n["NodeID"] for n in session.nodes() if n["Alive"]] if session is not None else []
        if not nodes:
            return "", {}
        strategy = self.strategies.get(kind)
        if strategy is None:
            strategy = self.strategies[kind] = load_strategy(getattr(cls._cls, "virtual_placement", "consistent_hash"))
        if strategy.nodes != tuple(sorted(set(nodes))):
            strategy.set_nodes(nodes)
        node = strategy.owner(identity)
        strategy.placed(identity, node)
        return node, {"scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=True)}

    def _start_sweeping(self) -> None:
        if self.sweeper is None or self.sweeper.done():
            self.sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_every)
            now = time.monotonic()
            for key, entry in list(self.active.items()):
                if not entry.inflight and now - entry.last >= entry.idle:
                    await self._passivate(key, entry)

    async def _passivate(self, key: tuple[str, str], entry: _Activation) -> bool:
        from ..session import current

        async with self.locks.setdefault(key, asyncio.Lock()):  # (no call starts while it goes)
            if self.active.get(key) is not entry or entry.inflight:
                return False
            try:
                if callable(getattr(entry.cls._cls, "on_deactivate", None)):
                    await entry.handle.on_deactivate.remote()
            finally:
                del self.active[key]
                self._unplaced(key, entry)
                session = current()
                if session is not None:
                    session.kill(entry.handle._actor_id, True)
                self.passivations += 1
        return True

    def _unplaced(self, key: tuple[str, str], entry: _Activation) -> None:
        strategy = self.strategies.get(key[0])
        if strategy is not None and entry.node:
            strategy.removed(key[1], entry.node)

    async def passivate(self, kind: str, identity: str) -> bool:
        """Passivate ``identity`` now (False when it is not active, or busy)."""
        entry = self.active.get((kind, identity))
        return entry is not None and await self._passivate((kind, identity), entry)

    async def listing(self) -> list[dict[str, Any]]:
        """The activations now: kind, identity, the actor's id, seconds idle, calls in it."""
        now = time.monotonic()
        return [
            {
                "kind": kind,
                "identity": identity,
                "actor_id": f"{e.handle._actor_id:016x}",
                "node": e.node,
                "idle_s": now - e.last,
                "inflight": e.inflight,
            }
            for (kind, identity), e in self.active.items()
        ]

    async def counts(self) -> dict[str, int]:
        return {"active": len(self.active), "activations": self.activations, "passivations": self.passivations}


def _exists(name: str) -> bool:
    """Whether an actor of that name is alive in the cluster (the head's names are unique: the arbiter of one
    activation per identity, even across a restart of the directory)."""
    from ..session import current

    session = current()
    try:
        return session is not None and bool(session.get_actor(name, None))
    except ValueError:
        return False


_directory_class: list[Any] = []
_directory_handle: list[tuple[Any, Any]] = []  # (the session it is of, the handle)


def directory(actor_class: type) -> Any:
    """The cluster's directory actor (made by the first that needs it; its handle kept for this process's
    session); ``actor_class``: the ActorClass type (the api's, which imports this module: not imported back)."""
    from ..session import current

    session = current()
    if _directory_handle and _directory_handle[0][0] is session:
        return _directory_handle[0][1]
    if not _directory_class:
        _directory_class.append(actor_class(Directory, {}))
    handle = _directory_class[0].options(name=DIRECTORY, get_if_exists=True, num_cpus=0, max_concurrency=10_000, max_restarts=-1).remote()
    _directory_handle[:] = [(session, handle)]
    return handle


class VirtualMethod:
    __slots__ = ("_handle", "_name")

    def __init__(self, handle: VirtualActorHandle, name: str) -> None:
        self._handle, self._name = handle, name

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        h = self._handle
        return directory(type(h._cls)).call.remote(h._kind, h._cls, h._identity, h._idle, self._name, args, kwargs)

    def tell(self, *args: Any, **kwargs: Any) -> None:
        h = self._handle
        directory(type(h._cls)).call.tell(h._kind, h._cls, h._identity, h._idle, self._name, args, kwargs)

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
    return VirtualActorHandle(cls, identity, idle)
