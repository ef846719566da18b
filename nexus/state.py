"""The state API: plain records of the cluster's workers, actors, tasks and objects.

``nexus.state.list_nodes()``, ``list_workers()``, ``list_actors()`` (with the devices' actors),
``list_devices()`` (the devices on the bridges), ``list_tasks(filters=..., limit=...)``, ``list_objects()``,
``summary()``: what the widgets and the CLI
show, from the driver's own tables and its recent events (tasks finished
longer ago than the event ring reaches are no longer listed); in a worker or
a driver attached to a head, the driver or head answers (the records are made
in :mod:`nexus.cluster.head.listing`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .cluster.head.activity import Activity, HostActivity, Running, WorkerActivity
from .cluster.head.listing import ActorState, NodeState, ObjectState, TaskState, WorkerState

__all__ = [
    "Activity",
    "ActorState",
    "DeviceState",
    "HostActivity",
    "NodeState",
    "ObjectState",
    "Running",
    "TaskState",
    "WorkerActivity",
    "WorkerState",
    "activity",
    "list_actors",
    "list_devices",
    "list_nodes",
    "list_objects",
    "list_tasks",
    "list_workers",
    "placement",
    "summary",
]


def _runtime() -> Any:
    from .cluster.session import current_driver

    return current_driver("the state API")


def list_nodes() -> list[NodeState]:
    """The cluster's nodes (in a driver attached to a head too: it asks the head)."""
    from .cluster.session import current

    session = current()
    nodes = session.nodes() if session is not None and session.driver() is None else _runtime().nodes()
    return [NodeState(n["NodeID"], n["NodeManagerHostname"], n["Alive"], n["Resources"], n["Labels"], n["Workers"]) for n in nodes]


def _ask(what: str, *args: Any) -> Any:
    """The state API's ``what`` (see head.listing.answer): from this process's driver's tables, or asked of the
    driver or head that has them (in a worker, or in a driver attached to a head)."""
    from .cluster.session import current

    session = current()
    if session is None:
        session = _runtime()  # (whose error says that nexus.init() comes first)
    return (session.driver() or session).control("state", what, *args)


def list_workers() -> list[WorkerState]:
    """The cluster's worker processes, on every node (in a driver attached to a head too: it asks the head)."""
    return list(_ask("workers"))


def list_actors() -> list[ActorState]:
    """The cluster's actors, and the actors of its devices (class ``"device actor"``, on their bridge's worker)."""
    actors = list(_ask("actors"))
    return actors + [a for d in _devices(actors) for a in _device_actors(d)] + _hosted(actors)


@dataclass(frozen=True)
class DeviceState:
    key: str | None  # None: no device has opened a session on the line yet
    bridge: str  # the bridge actor's name (bridge:<port>)
    port: str
    host: str
    worker: str | None
    state: str  # the session: "waiting", "open", "closed"
    actors: dict[str, list[str]]  # name -> methods
    telemetry: dict[str, Any]
    statistics: dict[str, Any]
    error: str


def list_devices() -> list[DeviceState]:
    """The devices on the cluster's bridges (one a bridge): their session, actors, latest telemetry and line counts."""
    return _devices(list(_ask("actors")))


def _devices(actors: list[ActorState]) -> list[DeviceState]:
    from .cluster.api import get, get_actor
    from .cluster.devices import bridge_names

    workers = {a.name: a.worker for a in actors}
    out = []
    for name in bridge_names(actors):
        try:
            facts = get(get_actor(name).describe.remote(), timeout=10)
        except Exception:  # (a bridge that just went: it is not listed)
            continue
        out.append(
            DeviceState(
                facts["key"],
                name,
                facts["port"],
                facts["host"],
                workers[name],
                facts["state"],
                facts["actors"],
                facts["telemetry"],
                facts["statistics"],
                facts["error"],
            )
        )
    return out


def _device_actors(device: DeviceState) -> list[ActorState]:
    from .cluster.devices import DEVICE_ACTOR_CLASS, PREFIX

    if device.key is None:
        return []
    alive = device.state == "open"
    rows = []
    for name in device.actors:
        full = f"{PREFIX}{device.key}/{name}"
        pending = device.statistics.get("pending", {}).get(name, 0)
        restarts = max(0, device.statistics.get("sessions", 1) - 1)
        rows.append(
            ActorState(
                full,
                DEVICE_ACTOR_CLASS,
                full,
                "",
                "alive" if alive else "dead",
                device.worker,
                None,
                restarts,
                pending,
                None if alive else device.error or "the device's session closed",
            )
        )
    return rows


def _hosted(actors: list[ActorState]) -> list[ActorState]:
    """The virtual actors activated in hosts (``virtual_hosting = "shared"``), a row each as if it were an actor of its
    own: named ``virtual:<kind>/<identity>``, on its host's worker, its id the host's and the identity."""
    from .cluster.api import get, get_actor
    from .cluster.services.hosting import HOST_PREFIX
    from .cluster.services.virtual import DIRECTORY

    hosts = {a.name: a for a in actors if (a.name or "").startswith(HOST_PREFIX) and a.state == "alive"}
    if not hosts:
        return []
    try:
        listing = get(get_actor(DIRECTORY).listing.remote(), timeout=10)
    except Exception:  # (no directory, or it is starting again: none listed now)
        return []
    rows = []
    for entry in listing:
        host = hosts.get(entry["host"])
        if host is not None:
            name = f"virtual:{entry['kind']}/{entry['identity']}"
            cls = entry["kind"].rpartition(".")[2]
            row_id = f"{host.actor_id}/{entry['identity']}"
            rows.append(ActorState(row_id, cls, name, host.namespace, "alive", host.worker, host.pid, 0, entry["inflight"], None))
    return rows


def list_tasks(filters: list[tuple[str, str, Any]] | None = None, limit: int = 1000) -> list[TaskState]:
    """Recent tasks and calls, newest first; ``filters`` as in Ray: ``[("state", "=", "failed"), ("name", "!=", "f")]``.

    A queued task says why it waits (``waiting_for``). In a driver attached to a head, the head answers.
    """
    return list(_ask("tasks", filters, limit))


def placement() -> tuple[list[WorkerState], list[ActorState], dict[str, list[str]]]:
    """What ClusterView draws, in one go: the workers, the actors, and what runs on each worker now (by name)."""
    workers, actors, running = _ask("placement")
    actors = list(actors)
    return list(workers), actors + [a for d in _devices(actors) for a in _device_actors(d)] + _hosted(actors), dict(running)


def activity() -> Activity:
    """What each worker does now (what runs there, what was sent ahead to it, whether it waits in get), what waits
    at the head, and each host's object store: what the live views draw."""
    return _ask("activity")  # type: ignore[no-any-return]


def list_objects(limit: int = 1000) -> list[ObjectState]:
    return list(_ask("objects", limit))


def summary() -> dict[str, Any]:
    """Counts at a glance: workers, actors by state, tasks by state, the object store, messages and channels dropped."""
    return dict(_ask("summary"))


def as_dicts(records: list[Any]) -> list[dict[str, Any]]:
    """Records as plain dicts (for JSON, pandas)."""
    return [asdict(r) for r in records]
