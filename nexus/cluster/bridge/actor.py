"""The bridge as an actor of the cluster: ``nexus.attach_bridge(port)``, and the ``BridgeActor`` that holds the line.

The serial line belongs to one process on the machine that has the port: a
``BridgeActor``, placed on that machine's node (a local cluster has one), in
a worker of its own. It runs a :class:`~.link.SerialBridge`; device actors
are called through it (:mod:`nexus.cluster.devices`) from the driver, tasks
and other actors alike, and the device's calls out go to the cluster's named
actors. The actor is named ``bridge:<port>`` (one bridge a port); its worker
is where ClusterView and ``nexus.state`` show the device's actors.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

from ..api import ActorHandle, get, get_actor, kill, nodes, remote
from ..devices import PREFIX, DeviceActorHandle, key_text, resolve
from ..strategies import NodeAffinitySchedulingStrategy
from .link import SerialBridge

__all__ = ["MANAGE", "Bridge", "BridgeActor", "attach_bridge"]

MANAGE = "nexus:manage"  # the name a device calls out to for an operator's command (the method is the command)

_OPTIONS = frozenset({"mtu", "heartbeat", "timeout", "call_timeout", "reopen"})


class BridgeActor:
    """Holds one serial line and the device on it (its methods are async: calls to the device wait side by side)."""

    def __init__(
        self, port: str, baud: int, options: dict[str, Any], allow_calls: list[str] | None = None, manage: str | None = None
    ) -> None:
        self.allow = None if allow_calls is None else frozenset(allow_calls)
        self.manage = manage
        if manage is not None and _others_may_write(port):
            raise PermissionError(f"{port} may be written by other users (mode o+w): no operator commands on it (chmod o-w {port})")
        self.bridge = SerialBridge(port, baud, outcall=self._outcall, **options).start()

    async def call(self, actor: str, method: str, args: list[Any], timeout: float | None = None) -> Any:
        return await asyncio.wrap_future(self.bridge.call(actor, method, args, timeout))

    async def tell(self, actor: str, method: str, args: list[Any]) -> None:
        self.bridge.tell(actor, method, args)

    async def describe(self) -> dict[str, Any]:
        facts = self.bridge.describe()
        facts["pid"] = os.getpid()
        facts["host"] = socket.gethostname()
        facts["key"] = key_text(bytes.fromhex(facts["device"])) if facts["device"] else None
        return facts

    async def wait_device(self, timeout: float, actors: int) -> str:
        key = await asyncio.get_running_loop().run_in_executor(None, self.bridge.wait_device, timeout, actors)
        return key_text(key)

    async def close(self) -> None:
        self.bridge.close()

    def _outcall(self, actor: str, method: str, args: list[Any]) -> Any:
        """A device's call to a named actor of the cluster (on the bridge's own thread, not the actor's loop), or to
        ``nexus:manage``: an operator's command, for the head's UART port (``nexus.manage.uart``)."""
        if actor == MANAGE:
            return self._manage(method, args)
        if self.allow is not None and actor not in self.allow:
            raise PermissionError(f"this bridge lets its device call {sorted(self.allow) or 'no actor'}, not {actor!r}")
        if actor.startswith(PREFIX):  # (refused before any lookup: resolving it would ask every bridge)
            raise ValueError("a device calls the cluster's actors, not another device's")
        if actor.startswith("bridge:"):  # (another bridge would call out with its own rights: its manage level)
            raise PermissionError("a device calls the cluster's actors, not a bridge")
        if not isinstance(method, str) or method.startswith("_"):
            raise PermissionError(f"a device calls an actor's public methods, not {method!r}")
        target = get_actor(actor)
        return get(getattr(target, method).remote(*args), timeout=self.bridge.call_timeout)

    def _manage(self, command: str, args: list[Any]) -> Any:
        if self.manage is None:
            raise PermissionError("this bridge takes no commands: attach it with manage='read'")
        if len(args) > 1 or (args and not isinstance(args[0], dict)):
            raise TypeError(f"{MANAGE}.{command} takes one map of its arguments, not {len(args)} values")
        from ..session import current

        session = current()
        if session is None:
            raise RuntimeError("the bridge's worker is not connected to its cluster")
        return (session.driver() or session).control("manage", command, args[0] if args else {}, self.manage)


def _others_may_write(port: str) -> bool:
    try:
        return bool(os.stat(port).st_mode & 0o002)
    except OSError:
        return False  # (opening it says what is wrong)


_bridge_class: list[Any] = []


def _remote_class() -> Any:
    if not _bridge_class:
        _bridge_class.append(remote(BridgeActor))
    return _bridge_class[0]


class Bridge:
    """What ``attach_bridge`` gives the driver: the bridge's actor, its device and the device's actors."""

    def __init__(self, handle: ActorHandle, name: str, port: str) -> None:
        self.handle, self.name, self.port = handle, name, port

    def wait_device(self, timeout: float = 10.0, actors: int = 1) -> str:
        """The device's key once it opened its session and registered ``actors`` actors; TimeoutError if not."""
        return str(get(self.handle.wait_device.remote(timeout, actors), timeout=timeout + 10))

    def describe(self) -> dict[str, Any]:
        """The port, the device's key and state, its actors, its latest telemetry, the line's counts."""
        return dict(get(self.handle.describe.remote(), timeout=30))

    @property
    def telemetry(self) -> dict[str, Any]:
        return dict(self.describe()["telemetry"])

    def get_actor(self, name: str) -> DeviceActorHandle:
        """The handle of the device's actor ``name`` (as ``nexus.get_actor("device:<key>/<name>")``)."""
        facts = self.describe()
        key = facts["key"] or "?"
        return resolve(f"device:{key}/{name}", [self.handle], lambda _h: facts)

    def close(self) -> None:
        """Let the device go and close the line; calls to its actors then fail (DeviceGoneError or ActorDiedError)."""
        try:
            get(self.handle.close.remote(), timeout=30)
        finally:
            kill(self.handle)

    def __enter__(self) -> Bridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Bridge({self.port})"


def _node_for_port(node: str | None) -> str:
    alive = [n for n in nodes() if n["Alive"]]
    if node is not None:
        if not any(n["NodeID"] == node for n in alive):
            raise ValueError(f"attach_bridge: node {node!r} is not alive in this cluster (nexus.nodes() lists them)")
        return node
    if len(alive) == 1:
        return str(alive[0]["NodeID"])
    here = [n for n in alive if n["NodeManagerHostname"] == socket.gethostname()]
    if len(here) == 1:
        return str(here[0]["NodeID"])
    raise ValueError(
        "attach_bridge: say node=<NodeID>, the node on the machine that has the port "
        f"({len(here) or len(alive)} nodes could be it; nexus.nodes() lists them)"
    )


def attach_bridge(
    port: str,
    baud: int = 115200,
    *,
    node: str | None = None,
    wait: float | None = None,
    allow_calls: list[str] | None = None,
    manage: str | None = None,
    **options: Any,
) -> Bridge:
    """Open the serial line ``port`` (a tty, a USB serial adapter, a pty) to a device, in a bridge actor of the cluster.

    The bridge runs on ``node`` (default: this machine's node; a local
    cluster has one), in a worker of its own. ``options``: ``mtu``,
    ``heartbeat`` and ``timeout`` (the session's, in seconds),
    ``call_timeout``, ``reopen`` (how often an unplugged port is tried
    again). With ``wait``, return once a device has opened its session (or
    raise TimeoutError). Its actors are then ``nexus.get_actor("device:<key>/<name>")``. The device may call
    the cluster's named actors: any of them, or with ``allow_calls`` only those named there. With ``manage``
    (``"read"`` or ``"all"``) it may also send an operator's commands to ``nexus:manage`` (see
    :mod:`nexus.manage.uart`; a head started by ``nexus start --head`` runs them).
    """
    if manage not in (None, "read", "all"):
        raise ValueError(f"attach_bridge: manage is None, 'read' or 'all', not {manage!r}")
    unknown = set(options) - _OPTIONS
    if unknown:
        raise TypeError(f"attach_bridge() got unexpected option(s) {sorted(unknown)}; it takes {sorted(_OPTIONS)}")
    if not isinstance(port, str) or not port:
        raise TypeError(f"attach_bridge takes the port's path (such as '/dev/ttyACM0'), not {port!r}")
    name = f"bridge:{port}"
    strategy = NodeAffinitySchedulingStrategy(_node_for_port(node))
    handle = (
        _remote_class()
        .options(name=name, num_cpus=0, scheduling_strategy=strategy, max_concurrency=64)
        .remote(port, baud, options, None if allow_calls is None else list(allow_calls), manage)
    )
    bridge = Bridge(handle, name, port)
    bridge.describe()  # (the constructor ran: a wrong path or a port in use is raised here, not at the first call)
    if wait is not None:
        bridge.wait_device(wait, actors=0)
    return bridge
