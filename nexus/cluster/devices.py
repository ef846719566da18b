"""Device actors as the cluster sees them: ``nexus.get_actor("device:<key>/<name>")`` and the handle it returns.

A device's actors live on the device; the bridge that holds its serial line
is an actor of the cluster (``BridgeActor``, :mod:`nexus.cluster.bridge.actor`),
and a device actor's handle calls it: ``handle.method.remote(*args)`` is an
ObjectRef of the device's answer, ``handle.method.tell(*args)`` sends with
no answer. A device's key is shown as text when it is printable (``mbit0001``),
else in hex; either spelling finds it. Handles travel to tasks and actors
like any other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["BRIDGE_CLASS", "DEVICE_ACTOR_CLASS", "PREFIX", "DeviceActorHandle", "DeviceMethod", "bridge_names", "key_text", "resolve"]

PREFIX = "device:"
BRIDGE_CLASS = "BridgeActor"
DEVICE_ACTOR_CLASS = "device actor"  # the class name the state API gives a device's actors
_PRINTABLE = re.compile(r"[A-Za-z0-9_.\-]+")


def key_text(key: bytes) -> str:
    """How a device's key is written in names: its bytes as text when they are plain letters and digits, else hex."""
    text = key.rstrip(b"\x00").decode("ascii", errors="replace")
    return text if _PRINTABLE.fullmatch(text) else key.hex()


class DeviceMethod:
    """``device_actor.method``: ``.remote(*args)`` asks (an ObjectRef), ``.tell(*args)`` sends and forgets."""

    __slots__ = ("_handle", "_name")

    def __init__(self, handle: DeviceActorHandle, name: str) -> None:
        self._handle, self._name = handle, name

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        self._check(kwargs)
        handle = self._handle
        return handle._bridge.call.remote(handle._actor, self._name, list(args))

    def tell(self, *args: Any, **kwargs: Any) -> None:
        self._check(kwargs)
        handle = self._handle
        handle._bridge.tell.tell(handle._actor, self._name, list(args))

    def _check(self, kwargs: dict[str, Any]) -> None:
        if kwargs:
            raise TypeError(f"{self._handle._name}.{self._name}: a device actor takes positional arguments only, not {sorted(kwargs)}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"device actor method {self._name} cannot be called directly; use .remote(...) or .tell(...)")


class DeviceActorHandle:
    """A handle to an actor on a device, called through the bridge that holds the device's line."""

    def __init__(self, bridge: Any, key: str, actor: str, methods: tuple[str, ...]) -> None:
        self._bridge, self._key, self._actor, self._methods = bridge, key, actor, tuple(methods)
        self._name = f"{PREFIX}{key}/{actor}"

    def __getattr__(self, name: str) -> DeviceMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._methods:
            raise AttributeError(f"device actor {self._name} has no method {name!r} (it has {', '.join(self._methods) or 'none'})")
        return DeviceMethod(self, name)

    def __reduce__(self) -> tuple[Any, ...]:
        return DeviceActorHandle, (self._bridge, self._key, self._actor, self._methods)

    def __repr__(self) -> str:
        return f"DeviceActor({self._name})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeviceActorHandle) and other._name == self._name and other._bridge == self._bridge

    def __hash__(self) -> int:
        return hash(self._name)


def bridge_names(actors: Iterable[Any]) -> list[str]:
    """The names of the bridges alive among ``actors`` (the state API's ActorState rows)."""
    return [a.name for a in actors if a.class_name == BRIDGE_CLASS and a.state == "alive" and a.name]


def parse(name: str) -> tuple[str, str]:
    """``device:<key>/<actor>`` as (key, actor); ValueError that shows the form."""
    key, slash, actor = name[len(PREFIX) :].partition("/")
    if not (name.startswith(PREFIX) and key and slash and actor):
        raise ValueError(f"a device actor's name is 'device:<key>/<actor>' (say 'device:mbit0001/sensor'), not {name!r}")
    return key, actor


def resolve(name: str, bridges: Iterable[Any], describe: Callable[[Any], dict[str, Any]]) -> DeviceActorHandle:
    """The handle of ``name`` among the devices of ``bridges`` (their handles; ``describe`` asks one what it holds)."""
    key, actor = parse(name)
    seen = []
    for bridge in bridges:
        facts = describe(bridge)
        device = facts.get("device")
        if device is None:
            continue
        text = key_text(bytes.fromhex(device))
        seen.append(f"{PREFIX}{text} on {facts.get('port')}")
        if key not in (text, device):
            continue
        methods = facts.get("actors", {}).get(actor)
        if methods is None:
            registered = sorted(facts.get("actors", {})) or "none"
            raise ValueError(f"the device {text} on {facts.get('port')} has no actor {actor!r} (it registered {registered})")
        return DeviceActorHandle(bridge, text, actor, tuple(methods))
    raise ValueError(
        f"no bridge holds the device {key!r} now (devices: {', '.join(seen) or 'none'}); "
        "attach its line with nexus.attach_bridge(port) or `nexus bridge PORT`"
    )
