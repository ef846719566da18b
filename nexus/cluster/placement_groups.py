"""Ray's placement groups, as a program uses them: ``placement_group(bundles, strategy)`` and its handle.

A placement group reserves *bundles* of resources (``[{"CPU": 1}, {"CPU": 1,
"GPU": 1}]``) on the cluster's nodes, all of them or none: ``PACK`` puts them
on as few nodes as it can, ``SPREAD`` on different nodes as far as it can,
``STRICT_PACK`` on one node and ``STRICT_SPREAD`` on a different node each, or
the group waits until they fit (when a node joins, or work ends). What a
bundle reserves is withheld from everything else; tasks and actors scheduled
into it (``scheduling_strategy=PlacementGroupSchedulingStrategy(pg, i)``) run
on its node and use its reservation. ``pg.ready()`` is an ObjectRef that
resolves once every bundle is reserved; ``remove_placement_group(pg)`` frees
them, kills the group's actors and cancels its tasks. The head keeps the
groups (:mod:`.head.groups`); these functions ask it, from the driver, a task,
an actor or an attached driver alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import session as _session
from .values import ObjectRef, current_client

__all__ = [
    "PlacementGroup",
    "PlacementGroupID",
    "get_current_placement_group",
    "get_placement_group",
    "placement_group",
    "placement_group_table",
    "remove_placement_group",
]


@dataclass(frozen=True)
class PlacementGroupID:
    """A placement group's id (Ray's ``PlacementGroupID``): ``hex()`` is how ``placement_group_table`` keys it."""

    value: int

    def hex(self) -> str:
        return f"{self.value:024x}"

    def binary(self) -> bytes:
        return self.value.to_bytes(12, "big")

    def __str__(self) -> str:
        return self.hex()


class PlacementGroup:
    """A handle to a placement group: pass it to tasks and actors freely (it is a few ids and the bundles)."""

    def __init__(self, id: PlacementGroupID, bundle_specs: list[dict[str, float]], ready_id: int = 0) -> None:
        self.id = id
        self._bundles = [dict(b) for b in bundle_specs]
        self._ready_id = ready_id  # the head's object that is stored once every bundle is reserved

    def __repr__(self) -> str:
        return f"PlacementGroup({self.id.hex()}, {self._bundles})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def bundle_specs(self) -> list[dict[str, float]]:
        """The bundles, in order: what each reserves."""
        return [dict(b) for b in self._bundles]

    @property
    def bundle_count(self) -> int:
        return len(self._bundles)

    @property
    def is_empty(self) -> bool:
        return not self._bundles

    def ready(self) -> ObjectRef:
        """An ObjectRef that resolves (to this handle) once every bundle is reserved; ``nexus.get`` and
        ``nexus.wait`` take it. It raises if the group is removed before that."""
        _current("PlacementGroup.ready()")
        client = current_client()
        if client is not None:
            client.acquire(self._ready_id)  # (one more ref to the head's object; the group itself keeps one)
        return ObjectRef(self._ready_id)

    def wait(self, timeout_seconds: float = 30) -> bool:
        """Whether every bundle is reserved within ``timeout_seconds`` (False also once the group is removed)."""
        session = _current("PlacementGroup.wait()")
        if not session.wait_ids([self._ready_id], 1, timeout_seconds):
            return False
        blobs = session.get_blobs([self._ready_id], timeout_seconds)  # (made: it does not wait)
        if blobs is None or blobs[0].error:  # (an error: removed before it was placed)
            return False
        entry = session.control("placement_group", "table", self.id.value)  # (placed, then perhaps removed since)
        return bool(entry) and entry["state"] != "REMOVED"


def _current(what: str) -> Any:
    session = _session.current()
    if session is None:
        raise RuntimeError(f"{what} needs a cluster: call nexus.init() first")
    return session


def _ask(what: str, op: str, *args: Any) -> Any:
    return _current(what).control("placement_group", op, *args)


def _handle(found: tuple[int, list[dict[str, float]], int] | None) -> PlacementGroup | None:
    if found is None:
        return None
    group_id, bundles, ready_id = found
    return PlacementGroup(PlacementGroupID(group_id), bundles, ready_id)


def placement_group(bundles: list[dict[str, float]], strategy: str = "PACK", name: str = "", lifetime: str | None = None) -> PlacementGroup:
    """Reserve ``bundles`` (each a dict of resource amounts) on the cluster's nodes as ``strategy`` says.

    Returns at once: the group is placed as soon as every bundle fits, now or
    later (``pg.ready()``, ``pg.wait()``); one that no node could hold waits
    too, and ``placement_group_table()`` says why. ``name`` lets any process
    find it (``get_placement_group``); ``lifetime`` is None or ``"detached"``
    (kept in the table; a group lives until it is removed or the cluster ends).
    """
    from .state.groups import check_bundles, check_strategy

    checked = check_bundles(bundles)
    check_strategy(strategy)
    if not isinstance(name, str):
        raise ValueError(f"a placement group's name is a string, not {name!r}")
    if lifetime not in (None, "detached"):
        raise ValueError(f"a placement group's lifetime is None or 'detached', not {lifetime!r}")
    group_id, ready_id = _ask("placement_group()", "create", checked, strategy, name, lifetime)
    return PlacementGroup(PlacementGroupID(group_id), checked, ready_id)


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Remove a placement group: its reservations are freed, the actors in it are killed, its tasks cancelled."""
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"remove_placement_group takes a PlacementGroup, not {type(placement_group).__qualname__}")
    _ask("remove_placement_group()", "remove", placement_group.id.value)


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The placement group of that name; ValueError when there is none (``placement_group_table()`` lists them)."""
    if not isinstance(placement_group_name, str) or not placement_group_name:
        raise ValueError(f"get_placement_group takes the non-empty name a group was made with, not {placement_group_name!r}")
    found = _handle(_ask("get_placement_group()", "lookup", placement_group_name))
    assert found is not None  # (the head raises when there is none)
    return found


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict[str, Any]:
    """The cluster's placement groups by id (``pg.id.hex()``), or the entry of ``placement_group``.

    Each entry: ``placement_group_id``, ``name``, ``bundles`` (index -> resources), ``bundles_to_node_id``
    (index -> ``NodeID`` of ``nexus.nodes()``, for those reserved), ``strategy``, ``state`` (``PENDING``,
    ``CREATED``, ``RESCHEDULING``, ``REMOVED``), ``is_detached``, ``stats`` (``scheduling_state``:
    ``NO_RESOURCES``, ``INFEASIBLE``, ``FINISHED``, ``REMOVED``) and ``waiting_for``: why it is not placed now.
    """
    group_id = None if placement_group is None else placement_group.id.value
    return dict(_ask("placement_group_table()", "table", group_id))


def get_current_placement_group() -> PlacementGroup | None:
    """The placement group the calling task or actor method runs in; None in the driver, or outside any group."""
    from .worker.execution import _trace_context

    session = _current("get_current_placement_group()")
    if session.driver() is not None:
        return None  # (a driver never runs in a group)
    _trace, parent = _trace_context.get()
    if not parent:
        return None
    return _handle(session.control("placement_group", "current", parent))
