"""The state API: plain records of the cluster's workers, actors, tasks and objects.

``nexus.state.list_nodes()``, ``list_workers()``, ``list_actors()``,
``list_tasks(filters=..., limit=...)``, ``list_objects()``, ``summary()``: what the widgets and the CLI
show, from the driver's own tables and its recent events (tasks finished
longer ago than the event ring reaches are no longer listed).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

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
    "summary",
]


@dataclass(frozen=True)
class NodeState:
    node_id: str
    host: str
    alive: bool
    resources: dict[str, float]
    labels: dict[str, str]
    workers: int


@dataclass(frozen=True)
class WorkerState:
    name: str
    pid: int
    kind: str  # "task" or "actor"
    alive: bool
    actor: str | None
    tasks_in_flight: int


@dataclass(frozen=True)
class ActorState:
    actor_id: str
    class_name: str
    name: str | None
    namespace: str
    state: str  # "starting", "alive", "restarting", "dead"
    worker: str | None
    pid: int | None
    restarts: int
    pending_calls: int
    death_cause: str | None


@dataclass(frozen=True)
class TaskState:
    task_id: str
    name: str
    kind: str  # "task" or "call"
    state: str  # "queued", "running", "finished", "failed"
    worker: str | None
    submitted_by: str | None
    trace: str | None
    duration_s: float | None
    waiting_for: str | None = None  # a queued task: why it has not started (its arguments, or what no node has free)


@dataclass(frozen=True)
class ObjectState:
    object_id: str
    nbytes: int
    where: str  # "inline", "arena", "spilled", "pending"
    refs: int
    pins: int


def _runtime() -> Any:
    from .cluster.session import current_driver

    return current_driver("the state API")


def list_nodes() -> list[NodeState]:
    """The cluster's nodes (in a driver attached to a head too: it asks the head)."""
    from .cluster.session import current

    session = current()
    nodes = session.nodes() if session is not None and session.driver() is None else _runtime().nodes()
    return [NodeState(n["NodeID"], n["NodeManagerHostname"], n["Alive"], n["Resources"], n["Labels"], n["Workers"]) for n in nodes]


def list_workers() -> list[WorkerState]:
    rt = _runtime()
    with rt.lock:
        return [
            WorkerState(
                w.name,
                w.pid,
                "actor" if w.kind == "actor" else "task",
                w.alive,
                w.actor.label if w.actor else None,
                len(w.actor.inflight) if w.actor else w.inflight,
            )
            for w in rt.every_worker_record()
        ]


_ACTOR_STATES = {"pending": "starting"}  # an actor waiting for its arguments shows as starting (as before)


def list_actors() -> list[ActorState]:
    rt = _runtime()
    with rt.lock:
        out = []
        for a in rt.actors.values():
            w = a.worker
            out.append(
                ActorState(
                    f"{a.actor_id:x}",
                    a.cls_name,
                    a.name,
                    a.namespace,
                    _ACTOR_STATES.get(a.state.value, a.state.value),
                    w.name if w else None,
                    w.pid if w else None,
                    a.restarts,
                    len(a.queue) + len(a.inflight),
                    str(a.dead) if a.dead is not None else None,
                )
            )
        return out


def list_tasks(filters: list[tuple[str, str, Any]] | None = None, limit: int = 1000) -> list[TaskState]:
    """Recent tasks and calls, newest first; ``filters`` as in Ray: ``[("state", "=", "failed"), ("name", "!=", "f")]``.

    A queued task says why it waits (``waiting_for``). In a driver attached to a head, the tasks the head
    has queued (what it keeps of finished ones stays there).
    """
    from .cluster.session import current

    session = current()
    if session is not None and session.driver() is None:
        queued = [TaskState(f"{tid:x}", name, "task", "queued", None, None, None, None, why) for tid, name, why in session.waiting_tasks()]
        return _filtered(queued, filters)[:limit]
    rt = _runtime()
    waiting = {tid: why for tid, _, why in rt.waiting_tasks()}
    records: dict[int, dict[str, Any]] = {}
    if rt.observed is not None:
        from .cluster.observed import expand

        for raw in rt.observed.read(0).events:
            event = expand(raw)
            kind = event[0]
            if kind == "submitted":
                records[event[2]] = {
                    "name": event[3],
                    "kind": event[4],
                    "trace": f"{event[5]:x}",
                    "by": event[7],
                    "state": "queued",
                    "worker": None,
                    "duration": None,
                }
            elif kind == "finished" and event[2] in records:
                rec = records[event[2]]
                rec.update(state="finished" if event[9] else "failed", worker=event[3], duration=(event[8] - event[5]) / 1e9)
    with rt.lock:
        for task in rt.tasks.running.values():
            if task.task_id in records and records[task.task_id]["state"] == "queued":
                records[task.task_id].update(state="running", worker=task.worker.name if task.worker else None)
        for a in rt.actors.values():
            for call in a.inflight.values():
                if call.call_id in records and records[call.call_id]["state"] == "queued":
                    records[call.call_id].update(state="running", worker=a.worker.name if a.worker else None)
    out = [
        TaskState(f"{tid:x}", r["name"], r["kind"], r["state"], r["worker"], r["by"], r["trace"], r["duration"], waiting.get(tid))
        for tid, r in reversed(records.items())
    ]
    return _filtered(out, filters)[:limit]


def _filtered(tasks: list[TaskState], filters: list[tuple[str, str, Any]] | None) -> list[TaskState]:
    for key, op, value in filters or []:
        if op not in ("=", "!="):
            raise ValueError(f"filter operator must be '=' or '!=', not {op!r}")
        tasks = [t for t in tasks if (getattr(t, key) == value) == (op == "=")]
    return tasks


def list_objects(limit: int = 1000) -> list[ObjectState]:
    rt = _runtime()
    with rt.lock:
        out = []
        for oid, obj in list(rt.objects.entries.items())[:limit]:
            if obj.blob is None:
                where, nbytes = "pending", 0
            elif obj.spilled is not None:
                where, nbytes = "spilled", obj.blob.nbytes
            elif obj.region is not None:
                where, nbytes = "arena", obj.region[1]
            else:
                where, nbytes = "inline", obj.blob.nbytes
            out.append(ObjectState(f"{oid:x}", nbytes, where, obj.refs, obj.pins))
        return out


def summary() -> dict[str, Any]:
    """Counts at a glance: workers, actors by state, tasks by state, the object store, messages and channels dropped."""
    workers = list_workers()
    actors = list_actors()
    tasks = list_tasks(limit=1 << 30)
    by_state: dict[str, int] = {}
    for t in tasks:
        by_state[t.state] = by_state.get(t.state, 0) + 1
    actor_states: dict[str, int] = {}
    for a in actors:
        actor_states[a.state] = actor_states.get(a.state, 0) + 1
    return {
        "driver_pid": os.getpid(),
        "workers": sum(w.alive for w in workers),
        "actors": actor_states,
        "tasks": by_state,
        "object_store": _runtime().store_stats(),
        "channels": {"rejected_messages": _runtime().rejected, "dropped": _runtime().dropped_channels},
    }


def as_dicts(records: list[Any]) -> list[dict[str, Any]]:
    """Records as plain dicts (for JSON, pandas)."""
    return [asdict(r) for r in records]
