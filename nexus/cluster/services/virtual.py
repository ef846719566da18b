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
(``nexus:directory``): it makes each activation under a lock of its identity,
so there is never more than one activation of an identity. A caller's first
calls go through the directory, which forwards them; meanwhile it asks for a
*lease*: the activation's handle, good for a few seconds (half the idle time,
at most ``LEASE_MAX``), renewed while calls go on. Calls under a lease go
straight to the activation (one hop, as a plain actor's calls), in order: a
caller turns to its lease once its forwarded calls are answered. The
directory passivates an activation only after every lease on it ended (and
``GRACE`` more, for calls still on their way), so a call never reaches one
that is being passivated. The head's unique names are the arbiter: a
directory that restarted (after its process died) adopts the activations it
finds by name instead of making others. An activation whose process died is
made again: by the next forwarded call, or, under a lease, by its renewal,
which checks that the activation lives (until then, calls fail with the
actor's error).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DIRECTORY", "ActivationError", "Directory", "VirtualActorHandle", "VirtualMethod", "virtual_handle"]

DIRECTORY = "nexus:directory"
DEFAULT_IDLE = 300.0
LEASE_MAX = 2.0  # seconds a caller may call an activation directly before it asks again
GRACE = 0.5  # seconds after a lease ends before its activation may go (calls sent just before are on their way)
CLAIM_WAIT = 10.0  # seconds a first call waits for its identity's claim in etcd before it fails


class ActivationError(RuntimeError):
    """A virtual actor could not be activated: its claim in etcd could not be made (etcd away, or the identity
    claimed by another directory whose lease has not run out). The activations made before go on."""


@dataclass
class _Activation:
    handle: Any
    cls: Any
    idle: float
    last: float
    node: str = ""  # where placement put it ("": wherever the cluster chose)
    inflight: int = 0
    leased: float = 0.0  # until when a caller may call it directly (the directory's clock)
    claimed: bool = True  # its claim in etcd is made (always, with the memory backend: the head's names are it)

    def free(self, now: float) -> bool:
        """Whether nothing can reach it now: no forwarded call in it, no lease on it."""
        return not self.inflight and now >= self.leased + GRACE


class Directory:
    """The identity directory: one activation per (kind, identity), made on first call, passivated when idle."""

    def __init__(self, sweep_every: float = 0.25) -> None:
        self.active: dict[tuple[str, str], _Activation] = {}
        self.locks: dict[tuple[str, str], list[Any]] = {}  # identity -> [its lock, coroutines holding or awaiting it]
        self.sweep_every = sweep_every
        self.sweeper: asyncio.Task[None] | None = None
        self.activations = self.passivations = self.forwarded = 0
        self.strategies: dict[str, tuple[str, Any]] = {}  # kind -> (its virtual_placement, that PlacementStrategy)
        self.claims: Any = None  # the activations' claims in etcd (an EtcdClaims), when the cluster keeps them there
        self.claims_known = False
        self.claims_kept = 0.0  # when the claims' lease was last renewed

    async def call(self, kind: str, cls: Any, identity: str, idle: float, method: str, args: tuple, kwargs: dict) -> Any:
        from ...core.errors import ActorDiedError

        self._start_sweeping()
        key = (kind, identity)
        entry = await self._activation(key, cls, identity, idle)
        entry.inflight += 1
        self.forwarded += 1
        died = False
        try:
            return await getattr(entry.handle, method).remote(*args, **kwargs)
        except ActorDiedError:
            died = True
            raise
        finally:
            entry.inflight -= 1  # (first: a passivation that waits for it holds the lock _lost takes)
            entry.last = time.monotonic()
            if died:
                await self._lost(key, entry)  # (its process died: the next call makes it again)

    async def lease(self, kind: str, cls: Any, identity: str, idle: float, using: int = 0) -> tuple[Any, float]:
        """(the activation's handle, seconds): the caller may call it directly for that long. ``using``: the
        activation the caller's lease had (if it is not alive any more, another is made)."""
        self._start_sweeping()
        key = (kind, identity)
        entry = self.active.get(key)
        if (
            entry is not None
            and using
            and entry.handle._actor_id == using
            and await asyncio.get_running_loop().run_in_executor(None, _actor_named, _name(key)) != using
        ):
            await self._lost(key, entry)  # (its process died: a caller of it learns here, at its lease's renewal)
        entry = await self._activation(key, cls, identity, idle)
        seconds = min(entry.idle / 2, LEASE_MAX)
        now = time.monotonic()
        entry.leased, entry.last = max(entry.leased, now + seconds), now
        return entry.handle, seconds

    @contextlib.asynccontextmanager
    async def _locked(self, key: tuple[str, str]) -> AsyncIterator[None]:
        """Hold ``key``'s lock: its activation is made, or let go, by one coroutine at a time. The lock lives while a
        coroutine holds or awaits it (one an identity being worked on, not one an identity ever seen)."""
        held = self.locks.get(key)
        if held is None:
            held = self.locks[key] = [asyncio.Lock(), 0]
        held[1] += 1
        try:
            async with held[0]:
                yield
        finally:
            held[1] -= 1
            if not held[1]:
                del self.locks[key]

    async def _lost(self, key: tuple[str, str], entry: _Activation) -> None:
        """The activation's process died: forgotten, its claim let go (under its identity's lock: a new activation
        comes after, its claim not taken by this release)."""
        async with self._locked(key):
            if self.active.get(key) is entry:
                del self.active[key]
                self._unplaced(key, entry)
                await self._release(key, entry)

    async def _release(self, key: tuple[str, str], entry: _Activation) -> None:
        if self.claims is not None and entry.claimed:
            with contextlib.suppress(Exception):  # (etcd away, or an error of its: the claim stays, ours, to be made again)
                await asyncio.get_running_loop().run_in_executor(None, self.claims.release, "/".join(key))

    async def _activation(self, key: tuple[str, str], cls: Any, identity: str, idle: float) -> _Activation:
        async with self._locked(key):
            entry = self.active.get(key)
            if entry is None:
                name = _name(key)
                adopted = bool(_actor_named(name))  # (a directory that restarted finds its activations by their names)
                claimed = await self._claim(key, name, adopted)
                node, options = ("", {}) if adopted else self._place(key[0], cls, identity)
                handle = cls.options(name=name, get_if_exists=True, **options).remote()
                if not adopted and callable(getattr(cls._cls, "on_activate", None)):
                    await handle.on_activate.remote(identity)
                entry = self.active[key] = _Activation(handle, cls, idle, time.monotonic(), node, claimed=claimed)
                if adopted:  # (callers may hold leases the directory it replaces granted: as if it had)
                    entry.leased = time.monotonic() + LEASE_MAX
                self.activations += 1
            return entry

    def _claims(self) -> Any:
        """The claims in etcd, when the cluster's membership is there (``membership`` of its config); else None."""
        if not self.claims_known:
            from ..config import parse_membership
            from ..session import current

            self.claims_known = True
            kind, host, port, _prefix = parse_membership(getattr(getattr(current(), "config", None), "membership", "memory"))
            if kind == "etcd":
                from .etcd import EtcdClaims

                self.claims = EtcdClaims(host, port)
        return self.claims

    async def _claim(self, key: tuple[str, str], name: str, adopted: bool) -> bool:
        """Claim ``key`` in etcd (with the memory backend, the head's unique names are the claim: True). A new
        activation waits for its claim, up to ``CLAIM_WAIT`` seconds, then fails with ActivationError; one adopted
        is claimed later if it cannot be now (False)."""
        claims = self._claims()
        if claims is None:
            return True
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + CLAIM_WAIT
        while True:
            try:
                holder = await loop.run_in_executor(None, claims.claim, "/".join(key), name)
                why = f"it is claimed by another directory ({holder}), until that one's lease runs out"
            except Exception as exc:  # (etcd away, or an error of its: as long as it lasts, the first call waits)
                holder, why = "?", str(exc) if isinstance(exc, ConnectionError) else f"etcd said {exc!r}"
            if not holder:
                return True
            if adopted:
                return False
            if time.monotonic() >= deadline:
                raise ActivationError(f"cannot activate {key[0]}/{key[1]}: {why}; the activations made before go on")
            await asyncio.sleep(0.5)

    async def _keep_claims(self) -> None:
        """Renew the claims' lease (a third of its time to live apart); claim again what has no claim (all, if etcd
        lost the lease)."""
        claims = self.claims
        now = time.monotonic()
        if claims is None or now - self.claims_kept < claims.ttl / 3:
            return
        self.claims_kept = now
        loop = asyncio.get_running_loop()
        try:
            if not await loop.run_in_executor(None, claims.renew):
                for entry in self.active.values():
                    entry.claimed = False
            for key, entry in list(self.active.items()):
                if not entry.claimed:
                    entry.claimed = not await loop.run_in_executor(None, claims.claim, "/".join(key), _name(key))
        except Exception:  # (etcd away, or an error of its: the activations go on; again at the next round)
            pass

    def _place(self, kind: str, cls: Any, identity: str) -> tuple[str, dict[str, Any]]:
        """The node the class's placement strategy (``virtual_placement``; consistent hashing by default) picks
        among the nodes alive now, as a soft affinity (where it cannot run, it runs elsewhere)."""
        from ..session import current
        from ..strategies import NodeAffinitySchedulingStrategy
        from .placement import load_strategy

        session = current()
        nodes = [n["NodeID"] for n in session.nodes() if n.get("State", "ALIVE") == "ALIVE"] if session is not None else []
        if not nodes:
            return "", {}
        wanted = getattr(cls._cls, "virtual_placement", "consistent_hash")
        known = self.strategies.get(kind)
        if known is None or known[0] != wanted:  # (first, or the class was defined again with another strategy)
            known = self.strategies[kind] = (wanted, load_strategy(wanted))
        strategy = known[1]
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
            await self._keep_claims()
            now = time.monotonic()
            for key, entry in list(self.active.items()):
                if entry.free(now) and now - entry.last >= entry.idle:
                    try:
                        await self._passivate(key, entry)
                    except Exception as exc:  # (its on_deactivate failed: it is gone all the same; the sweep goes on)
                        print(f"nexus directory: {_name(key)}: on_deactivate failed: {exc!r}", file=sys.stderr)

    async def _passivate(self, key: tuple[str, str], entry: _Activation, wait: bool = False) -> bool:
        """Let the activation go, with its ``on_deactivate``, if nothing can reach it (``wait``: once nothing can;
        no call starts and no lease is renewed meanwhile: they wait for the lock, then activate it again)."""
        from ..session import current

        async with self._locked(key):
            while wait and self.active.get(key) is entry and not entry.free(time.monotonic()):
                await asyncio.sleep(min(0.05, max(0.0, entry.leased + GRACE - time.monotonic())))
            if self.active.get(key) is not entry or not entry.free(time.monotonic()):
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
                await self._release(key, entry)
        return True

    def _unplaced(self, key: tuple[str, str], entry: _Activation) -> None:
        known = self.strategies.get(key[0])
        if known is not None and entry.node:
            known[1].removed(key[1], entry.node)

    async def passivate(self, kind: str, identity: str, wait: bool = True) -> bool:
        """Passivate ``identity`` (False when it is not active; or, without ``wait``, when a call or a lease can
        reach it now; with it, once none can)."""
        entry = self.active.get((kind, identity))
        return entry is not None and await self._passivate((kind, identity), entry, wait)

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
                "leased_s": max(0.0, e.leased - now),
                "claimed": e.claimed,
            }
            for (kind, identity), e in self.active.items()
        ]

    async def counts(self) -> dict[str, int]:
        return {
            "active": len(self.active),
            "activations": self.activations,
            "passivations": self.passivations,
            "forwarded": self.forwarded,
            "locks": len(self.locks),
        }


def _name(key: tuple[str, str]) -> str:
    return f"virtual:{key[0]}/{key[1]}"


def _actor_named(name: str) -> int:
    """The id of the actor alive under ``name`` in the cluster, or 0 (the head's names are unique: the arbiter of
    one activation per identity, even across a restart of the directory)."""
    from ..session import current

    session = current()
    try:
        return session.get_actor(name, None)[0] if session is not None else 0
    except ValueError:
        return 0


_directory_class: list[Any] = []
_directory_handle: list[tuple[Any, Any]] = []  # (the session it is of, the handle)
_directory_lock = threading.Lock()


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
            handle = _directory_class[0].options(**options).remote()
        except ValueError:  # (another process made it between the look and the making: it is there now)
            handle = _directory_class[0].options(**options).remote()
        _directory_handle[:] = [(session, handle)]
        return handle


@dataclass
class _Lease:
    """This process's way to one identity: a lease on its activation (or none yet), and the calls forwarded."""

    session: Any
    handle: Any = None  # the activation's handle, while the lease holds
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

            handle, seconds = _resolve(ref)  # (ready: no wait)
        except Exception:  # (the directory failed: the calls go through it, and tell why)
            lease.handle = None
        else:
            lease.handle, lease.seconds, lease.until = handle, seconds, lease.asked + seconds
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
            return getattr(handle, self._name).remote(*args, **kwargs)
        ref = directory(type(h._cls)).call.remote(h._kind, h._cls, h._identity, h._idle, self._name, args, kwargs)
        with lease.lock:
            lease.forwarded.append(ref)
        return ref

    def tell(self, *args: Any, **kwargs: Any) -> None:
        h = self._handle
        handle, lease = _route(h)
        if handle is not None:
            getattr(handle, self._name).tell(*args, **kwargs)
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
    return VirtualActorHandle(cls, identity, idle)
