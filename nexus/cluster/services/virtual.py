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
at most ``LEASE_MAX`` or the class's ``virtual_lease``), renewed while calls go on. Calls under a lease go
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

An activation is an actor of its own (a process) by default. A class that
says ``virtual_hosting = "shared"`` has its activations made as instances
in one host actor of the class a node (:mod:`.hosting`): a thousand
identities where ten processes would fit. The directory places identities
on hosts as it places activations; the lease is then the host's handle
(calls name their identity); a directory that restarted adopts what the
hosts alive hold (at its first call or listing).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from .hosting import HOST_PREFIX, VirtualHost, host_name, hosted

__all__ = ["DIRECTORY", "ActivationError", "Directory"]

DIRECTORY = "nexus:directory"
DEFAULT_IDLE = 300.0
LEASE_MAX = 2.0  # seconds a caller may call an activation directly before it asks again (a class's virtual_lease)
LEASE_LONGEST = 60.0  # the longest virtual_lease a class may ask for
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
    host: str = ""  # the name of its host actor, when its class's activations share one (hosting.py); "": its own actor

    def free(self, now: float) -> bool:
        """Whether nothing can reach it now: no forwarded call in it, no lease on it."""
        return not self.inflight and now >= self.leased + GRACE


class Directory:
    """The identity directory: one activation per (kind, identity), made on first call, passivated when idle."""

    def __init__(self, actor_class: Any = None, sweep_every: float = 0.25) -> None:
        self.actor_class = actor_class  # the api's ActorClass type (which makes the hosts' actor class)
        self.active: dict[tuple[str, str], _Activation] = {}
        self.locks: dict[tuple[str, str], list[Any]] = {}  # identity -> [its lock, coroutines holding or awaiting it]
        self.sweep_every = sweep_every
        self.sweeper: asyncio.Task[None] | None = None
        self.activations = self.passivations = self.forwarded = 0
        self.strategies: dict[str, tuple[str, Any]] = {}  # kind -> (its virtual_placement, that PlacementStrategy)
        self.claims: Any = None  # the activations' claims in etcd (an EtcdClaims), when the cluster keeps them there
        self.claims_known = False
        self.claims_kept = 0.0  # when the claims' lease was last renewed
        self.etcd_away: tuple[float, str] | None = None  # since when etcd has not answered a claim, and why (None: it did)
        self.etcd_prober: tuple[str, str] | None = None  # the identity whose first call waits for etcd meanwhile
        self.etcd_gave_up = 0.0  # when such a wait last ran out (for CLAIM_WAIT after, first calls do not wait)
        self.hosts: dict[str, Any] = {}  # a host actor's name -> its handle (shared hosting: hosting.py)
        self.checked: dict[str, tuple[int, float]] = {}  # an actor's name -> (its id, when it was looked up)
        self.adopted: asyncio.Task[None] | None = None  # the adoption of what hosts hold, once at the start

    async def call(self, kind: str, cls: Any, identity: str, idle: float, method: str, args: tuple, kwargs: dict) -> Any:
        from ...core.errors import ActorDiedError

        self._start_sweeping()
        key = (kind, identity)
        entry = await self._activation(key, cls, identity, idle)
        entry.inflight += 1
        self.forwarded += 1
        died = False
        try:
            if entry.host:
                return await entry.handle.call.remote(identity, method, args, kwargs)
            return await getattr(entry.handle, method).remote(*args, **kwargs)
        except ActorDiedError:
            died = True
            raise
        finally:
            entry.inflight -= 1  # (first: a passivation that waits for it holds the lock _lost takes)
            entry.last = time.monotonic()
            if died:
                await self._lost(key, entry)  # (its process died: the next call makes it again)

    async def lease(self, kind: str, cls: Any, identity: str, idle: float, using: int = 0) -> tuple[Any, float, bool]:
        """(the activation's handle, seconds, whether it is a host's): the caller may call it directly for that
        long. ``using``: the activation the caller's lease had (if it is not alive any more, another is made)."""
        self._start_sweeping()
        key = (kind, identity)
        entry = self.active.get(key)
        if entry is not None and using and entry.handle._actor_id == using and not await self._alive(entry.host or _name(key), using):
            await self._lost(key, entry)  # (its process died: a caller of it learns here, at its lease's renewal)
        entry = await self._activation(key, cls, identity, idle)
        seconds = min(entry.idle / 2, lease_seconds(cls))
        now = time.monotonic()
        entry.leased, entry.last = max(entry.leased, now + seconds), now
        return entry.handle, seconds, bool(entry.host)

    async def _alive(self, name: str, actor_id: int, fresh: float = 0.2) -> bool:
        """Whether ``actor_id`` is still the actor alive under ``name`` (looked up at most every ``fresh`` seconds
        a name: the identities of a host share the answer)."""
        now = time.monotonic()
        known = self.checked.get(name)
        if known is None or known[0] != actor_id or now - known[1] >= fresh:
            if len(self.checked) > 4 * len(self.hosts) + 1024:
                self.checked.clear()
            alive = await asyncio.get_running_loop().run_in_executor(None, _actor_named, name)
            known = self.checked[name] = (alive, now)
        return known[0] == actor_id

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
        await self._adoption()
        async with self._locked(key):
            entry = self.active.get(key)
            if entry is not None and entry.cls is None:  # (adopted from a host: its class and idle time known now)
                entry.cls, entry.idle = cls, idle
            if entry is None and hosted(cls):
                entry = await self._hosted_activation(key, cls, identity, idle)
            elif entry is None:
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

    async def _hosted_activation(self, key: tuple[str, str], cls: Any, identity: str, idle: float) -> _Activation:
        """An instance of the class in its host on the node placement picks (the host made first if there is none
        alive; under the identity's lock)."""
        claimed = await self._claim(key, _name(key), False)
        try:
            node, options = self._place(key[0], cls, identity)
            host = await self._host(key[0], cls, node, options)
            fresh = await host.activate.remote(identity)
        except BaseException:
            await self._release(key, _Activation(None, cls, idle, 0.0))
            raise
        entry = self.active[key] = _Activation(host, cls, idle, time.monotonic(), node, host=host_name(key[0], node))
        if not fresh:  # (it was there: a directory before this one made it, and callers may hold leases on it)
            entry.leased = time.monotonic() + LEASE_MAX
        entry.claimed = claimed
        self.activations += 1
        return entry

    async def _host(self, kind: str, cls: Any, node: str, options: dict[str, Any]) -> Any:
        name = host_name(kind, node)
        known = self.hosts.get(name)
        if known is not None and await self._alive(name, known._actor_id, fresh=0.0):
            return known
        made = {"name": name, "get_if_exists": True, "num_cpus": 0, "max_concurrency": 10_000, "max_restarts": 0}
        handle = self.hosts[name] = self._host_class().options(**made, **options).remote(cls._cls, kind)
        return handle

    def _host_class(self) -> Any:
        """VirtualHost as an actor class."""
        if not _host_class:
            _host_class.append(self.actor_class(VirtualHost, {}))
        return _host_class[0]

    async def _adoption(self) -> None:
        """Once, before the first activation: adopt what the hosts alive hold (a directory that restarted finds
        the activations of shared hosting in them: its own actors' names are not theirs)."""
        if self.adopted is None:
            self.adopted = asyncio.get_running_loop().create_task(self._adopt())
        if not self.adopted.done():  # (after the first, on every call: nothing to wait for)
            await asyncio.shield(self.adopted)

    async def _adopt(self) -> None:
        from ..session import current

        session = current()
        if session is None or self.actor_class is None:
            return
        loop = asyncio.get_running_loop()
        try:
            actors = await loop.run_in_executor(None, lambda: (session.driver() or session).control("state", "actors"))
        except Exception:  # (the state is not to be had: nothing is adopted, calls make what they need)
            return
        for actor in actors:
            if not (actor.name or "").startswith(HOST_PREFIX) or actor.state != "alive":
                continue
            kind, _, node = actor.name[len(HOST_PREFIX) :].rpartition("@")
            made = {"name": actor.name, "get_if_exists": True, "num_cpus": 0, "max_restarts": 0}
            try:  # (the one alive by that name; if it died since, one made without a class, which fails at once)
                handle = self._host_class().options(**made).remote(None, kind)
                identities = await handle.identities.remote()
            except Exception:  # (it died meanwhile: its activations are made again on their next call)
                continue
            self.hosts[actor.name] = handle
            for identity in identities:
                key = (kind, identity)
                if key not in self.active:
                    entry = self.active[key] = _Activation(handle, None, DEFAULT_IDLE, time.monotonic(), node, host=actor.name)
                    entry.leased = time.monotonic() + LEASE_MAX
                    entry.claimed = await self._claim(key, _name(key), True)
        if self.active:
            self._start_sweeping()  # (what was adopted is passivated when idle, as before)

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
        try:
            while True:
                try:
                    holder = await loop.run_in_executor(None, claims.claim, "/".join(key), name)
                    why = f"it is claimed by another directory ({holder}), until that one's lease runs out"
                    self.etcd_away, self.etcd_gave_up = None, 0.0
                except Exception as exc:  # (etcd away, or an error of its: as long as it lasts, one first call waits)
                    holder, why = "?", str(exc) if isinstance(exc, ConnectionError) else f"etcd said {exc!r}"
                    self.etcd_away = self.etcd_away or (time.monotonic(), why)
                if not holder:
                    return True
                if adopted:
                    return False
                # (while etcd is away, one first call waits for it and the others fail at once, and after that wait
                # ran out all fail at once for CLAIM_WAIT: were each to wait, the calls behind them (those of one
                # identity one after another), and the tasks stacked on those, would take CLAIM_WAIT apiece)
                now = time.monotonic()
                if holder == "?" and self.etcd_prober is None and now - self.etcd_gave_up >= CLAIM_WAIT:
                    self.etcd_prober = key
                if now >= deadline or (holder == "?" and self.etcd_prober != key):
                    if holder == "?" and self.etcd_prober == key:
                        self.etcd_gave_up = now
                    if holder == "?" and self.etcd_away is not None:
                        why = f"{why} (no answer for {time.monotonic() - self.etcd_away[0]:.0f} s)"
                    raise ActivationError(f"cannot activate {key[0]}/{key[1]}: {why}; the activations made before go on")
                await asyncio.sleep(0.5)
        finally:
            if self.etcd_prober == key:
                self.etcd_prober = None

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
            self.etcd_away, self.etcd_gave_up = None, 0.0  # (it answered: the next first call waits for its claim again)
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
                if entry.host:
                    await entry.handle.deactivate.remote(key[1])
                elif callable(getattr(entry.cls._cls, "on_deactivate", None)):
                    await entry.handle.on_deactivate.remote()
            finally:
                del self.active[key]
                self._unplaced(key, entry)
                session = current()
                if session is not None and not entry.host:
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

    async def passivate_host(self, host_id: int) -> int:
        """Passivate the activations of the host actor ``host_id`` (a drain's: each once nothing can reach it);
        how many went."""
        keys = [key for key, e in self.active.items() if e.host and e.handle._actor_id == host_id]
        went = await asyncio.gather(*(self.passivate(kind, identity) for kind, identity in keys), return_exceptions=True)
        return sum(1 for w in went if w is True)

    async def listing(self) -> list[dict[str, Any]]:
        """The activations now: kind, identity, the actor's id, seconds idle, calls in it."""
        await self._adoption()
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
                "host": e.host,
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


def lease_seconds(cls: Any) -> float:
    """The longest lease on an activation of the class: its ``virtual_lease`` (``LEASE_MAX`` by default; longer:
    fewer calls through the directory when an identity is called seldom, and longer waits for a passivation or a
    drain, or to learn that an activation's process died); ValueError for what is not a number of seconds."""
    seconds = getattr(cls._cls, "virtual_lease", LEASE_MAX)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= LEASE_LONGEST:
        raise ValueError(f"{cls._name}.virtual_lease is a number of seconds above 0, up to {LEASE_LONGEST:g}, not {seconds!r}")
    return float(seconds)


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


_host_class: list[Any] = []  # VirtualHost as an actor class, made once
