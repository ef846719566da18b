"""The state API: plain records of the cluster's workers, actors, tasks and objects.

``nexus.state.list_nodes()``, ``list_workers()``, ``list_actors()``,
``list_tasks(filters=..., limit=...)``, ``list_objects()``, ``summary()``: what the widgets and the CLI
show, from the driver's own tables and its recent events (tasks finished
longer ago than the event ring reaches are no longer listed); in a worker or
a driver attached to a head, the driver or head answers (the records are made
in :mod:`nexus.cluster.head.listing`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .cluster.head.listing import (
    ActorState,
    NodeState,
    ObjectState,
    TaskState,
    WorkerState,
    actors_of,
    objects_of,
    placement_of,
    summary_of,
    tasks_of,
    workers_of,
)

__all__ = [
    "ActorState",
    "NodeState",
    "ObjectState",
    "TaskState",
    "WorkerState",
    "list_actors",
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


def _attached() -> Any:
    """The session of a driver attached to a head (which answers the state API for it), or None."""
    from .cluster.session import current

    session = current()
    return session if session is not None and session.driver() is None else None


def list_workers() -> list[WorkerState]:
    """The cluster's worker processes, on every node (in a driver attached to a head too: it asks the head)."""
    attached = _attached()
    if attached is not None:
        return list(attached.control("state", "workers"))
    return workers_of(_runtime())


def list_actors() -> list[ActorState]:
    attached = _attached()
    if attached is not None:
        return list(attached.control("state", "actors"))
    return actors_of(_runtime())


def list_tasks(filters: list[tuple[str, str, Any]] | None = None, limit: int = 1000) -> list[TaskState]:
    """Recent tasks and calls, newest first; ``filters`` as in Ray: ``[("state", "=", "failed"), ("name", "!=", "f")]``.

    A queued task says why it waits (``waiting_for``). In a driver attached to a head, the head answers.
    """
    attached = _attached()
    if attached is not None:
        return list(attached.control("state", "tasks", filters, limit))
    return tasks_of(_runtime(), filters, limit)


def placement() -> tuple[list[WorkerState], list[ActorState], dict[str, list[str]]]:
    """What ClusterView draws, in one go: the workers, the actors, and what runs on each worker now (by name)."""
    attached = _attached()
    if attached is not None:
        workers, actors, running = attached.control("state", "placement")
        return list(workers), list(actors), dict(running)
    return placement_of(_runtime())


def list_objects(limit: int = 1000) -> list[ObjectState]:
    attached = _attached()
    if attached is not None:
        return list(attached.control("state", "objects", limit))
    return objects_of(_runtime(), limit)


def summary() -> dict[str, Any]:
    """Counts at a glance: workers, actors by state, tasks by state, the object store, messages and channels dropped."""
    attached = _attached()
    if attached is not None:
        return dict(attached.control("state", "summary"))
    return summary_of(_runtime())


def as_dicts(records: list[Any]) -> list[dict[str, Any]]:
    """Records as plain dicts (for JSON, pandas)."""
    return [asdict(r) for r in records]
