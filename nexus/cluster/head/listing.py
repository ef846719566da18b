"""The state API's records, made from a runtime's tables: what ``nexus.state`` shows.

The functions take the runtime (a driver's, or a standalone head's), so the
head answers a worker or an attached driver (``control_state``) with the
same records the driver in the notebook's own process makes for itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .activity import activity_of, this_host

__all__ = [
    "ActorState",
    "NodeState",
    "ObjectState",
    "TaskState",
    "WorkerState",
    "actors_of",
    "answer",
    "events_since",
    "objects_of",
    "placement_of",
    "summary_of",
    "tasks_of",
    "workers_of",
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
    node_id: str = ""  # the node it runs on (as nodes() names them)
    host: str = ""  # that node's host


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
    waiting_for: str | None = None  # one not placed yet: what no node has free now


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
    where: str  # "inline", "arena", "spilled", "pending"; "node <id>", "driver-<n>": in that one's arena on its host
    refs: int
    pins: int
    node_id: str = ""  # the node whose arena holds it ("" for this host's, or none)


def workers_of(rt: Any) -> list[WorkerState]:
    """(The head answers ``list_workers`` with this, for its own runtime.)"""
    here = this_host()
    membership = rt.membership
    with rt.lock:
        records = [*rt.every_worker_record(), *(r for r in rt.peers.peers.values() if r.kind != "driver")]
        out = []
        for w in records:
            node = w.node or rt.node_id
            member = membership.get(node) if membership is not None else None
            out.append(
                WorkerState(
                    w.name,
                    w.pid,
                    "actor" if w.kind == "actor" else "task",
                    w.alive,
                    w.actor.label if w.actor else None,
                    len(w.actor.inflight) if w.actor else w.inflight,
                    f"{node:06x}",
                    member.host if member is not None else here,
                )
            )
        return out


_ACTOR_STATES = {"pending": "starting"}  # an actor waiting for its arguments shows as starting (as before)


def actors_of(rt: Any) -> list[ActorState]:
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
                    a.waiting_for,
                )
            )
        return out


def tasks_of(rt: Any, filters: list[tuple[str, str, Any]] | None = None, limit: int = 1000) -> list[TaskState]:
    queued = rt.scheduler.groups.explain(rt.waiting_tasks())  # (a task into a group not placed yet says so)
    waiting = {tid: why for tid, _, why in queued}
    records: dict[int, dict[str, Any]] = {}
    cursor = 0
    if rt.observed is not None:
        result = rt.observed.read(0)
        cursor = result.cursor
        _note(records, result.events)
    with rt.lock:
        if rt.observed is not None:  # what finished since the read above (its event comes before its task leaves running)
            _note(records, rt.observed.read(cursor).events)
        for task in rt.tasks.running.values():
            if task.task_id in records and records[task.task_id]["state"] == "queued":
                records[task.task_id].update(state="running", worker=task.worker.name if task.worker else None)
        pending = {t.task_id for t in rt.tasks.queue}
        pending.update(rt.tasks.waiting)
        for a in rt.actors.values():
            for call in a.inflight.values():
                if call.call_id in records and records[call.call_id]["state"] == "queued":
                    records[call.call_id].update(state="running", worker=a.worker.name if a.worker else None)
        for tid, r in records.items():
            # A task neither queued, waiting nor running that never finished ended without running (cancelled, or
            # failed where it waited: its node died). (Calls are not known so well: a tell sends no answer.)
            if r["state"] == "queued" and r["kind"] == "task" and tid not in pending:
                r["state"] = "failed"
    out = [
        TaskState(f"{tid:x}", r["name"], r["kind"], r["state"], r["worker"], r["by"], r["trace"], r["duration"], waiting.get(tid))
        for tid, r in reversed(records.items())
    ]
    # Queued tasks the events do not name (observation off, or their submission lapped out of the ring)
    out += [TaskState(f"{tid:x}", name, "task", "queued", None, None, None, None, why) for tid, name, why in queued if tid not in records]
    return _filtered(out, filters)[:limit]


def _note(records: dict[int, dict[str, Any]], events: list[tuple[Any, ...]]) -> None:
    """Tasks and calls as their events tell them: submitted (queued), then finished or failed."""
    from ..observed import expand

    for raw in events:
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


def placement_of(rt: Any) -> tuple[list[WorkerState], list[ActorState], dict[str, list[str]]]:
    running: dict[str, list[str]] = {}
    with rt.lock:
        for task in list(rt.tasks.running.values())[:200]:
            if task.worker is not None:
                running.setdefault(task.worker.name, []).append(task.name)
        for a in rt.actors.values():
            if a.worker is not None and a.inflight:
                running[a.worker.name] = [f"{a.cls_name}.{c.method}" for c in list(a.inflight.values())[:3]]
    return workers_of(rt), actors_of(rt), running


def _filtered(tasks: list[TaskState], filters: list[tuple[str, str, Any]] | None) -> list[TaskState]:
    for key, op, value in filters or []:
        if op not in ("=", "!="):
            raise ValueError(f"filter operator must be '=' or '!=', not {op!r}")
        tasks = [t for t in tasks if (getattr(t, key) == value) == (op == "=")]
    return tasks


def objects_of(rt: Any, limit: int = 1000) -> list[ObjectState]:
    with rt.lock:
        out = []
        for oid, obj in list(rt.objects.entries.items())[:limit]:
            if obj.blob is None:
                where, nbytes = "pending", 0
            elif obj.spilled is not None:
                where, nbytes = "spilled", obj.blob.nbytes
            elif obj.blob.at is not None:
                joined = rt.store.joined.get(obj.blob.at[0])
                node = f"{obj.blob.at[0]:06x}"
                name = joined.name if joined is not None else f"node {node}"
                out.append(ObjectState(f"{oid:x}", obj.blob.region[1], name, obj.refs, obj.pins, node))
                continue
            elif obj.region is not None:
                where, nbytes = "arena", obj.region[1]
            else:
                where, nbytes = "inline", obj.blob.nbytes
            out.append(ObjectState(f"{oid:x}", nbytes, where, obj.refs, obj.pins))
        return out


def summary_of(rt: Any) -> dict[str, Any]:
    workers = workers_of(rt)
    actors = actors_of(rt)
    tasks = tasks_of(rt, limit=1 << 30)
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
        "object_store": rt.store_stats(),
        "channels": {"rejected_messages": rt.rejected, "dropped": rt.dropped_channels},
    }


def answer(rt: Any, what: str, *args: Any) -> Any:
    """(``Runtime.control_state``) what the state API shows, for a worker or an attached driver."""
    ask: dict[str, Callable[..., Any]] = {
        "workers": workers_of,
        "actors": actors_of,
        "tasks": tasks_of,
        "objects": objects_of,
        "placement": placement_of,
        "activity": activity_of,
        "summary": summary_of,
        "context": context_of,
        "handle": handle_of,
    }
    if what not in ask:
        raise ValueError(f"the state API has no {what!r} (it has {', '.join(ask)})")
    return ask[what](rt, *args)


def handle_of(rt: Any, actor_id: int) -> Any:
    """What the handle that made actor ``actor_id`` knew of it (methods, checks, num_returns), for ``get_actor``."""
    with rt.lock:
        actor = rt.actors.get(actor_id)
        return None if actor is None else (actor.options or {}).get("_handle")


def context_of(rt: Any, running: int, asker: tuple[int, int] | None = None) -> dict[str, Any]:
    """What ``get_runtime_context()`` says in the task or actor call ``running``: the resources it was given, its
    node, its name (a task's; an actor call's method), its actor's id, class, name and restarts (the cluster's
    node id is its job's). ``running`` is 0 in an actor's constructor (no call runs): the actor is then the one
    that ``asker`` (the asking process's number on its node, and its pid) hosts."""
    with rt.lock:
        task = rt.tasks.running.get(running) if running else None
        call, actor = None, None
        if task is None and running:
            actor = next((a for a in rt.actors.values() if running in a.inflight), None)
            call = actor.inflight.get(running) if actor is not None else None
        if task is None and actor is None and asker:
            actor = _actor_on_worker(rt, *asker)
        if task is not None:
            needs, worker = ({"CPU": 1.0} if task.needs is None else dict(task.needs)), task.worker
        else:
            needs, worker = (dict(actor.needs) if actor is not None else {}), (actor.worker if actor is not None else None)
    given: dict[str, float] = {}
    for key, amount in needs.items():  # (a placement group's bundle names its resources CPU_group_...: Ray says CPU)
        given.setdefault(key.split("_group_")[0], float(amount))
    return {
        "job_id": f"{rt.node_id:06x}",
        "node_id": f"{worker.node:06x}" if worker is not None else f"{rt.node_id:06x}",
        "resources": {k: v for k, v in given.items() if v},
        "actor_id": actor.actor_id if actor is not None else None,
        "actor_cls": actor.cls_name if actor is not None else None,
        "actor_cls_id": actor.cls_id if actor is not None else None,
        "actor_name": actor.name if actor is not None else None,
        "namespace": actor.namespace if actor is not None else rt.namespace,
        "restarts": actor.restarts if actor is not None else 0,
        "task_name": task.name if task is not None else None,
        "fn_id": task.fn_id if task is not None else None,
        "method": call.method if call is not None else ("__init__" if actor is not None and not actor.ready else None),
    }


def events_since(rt: Any, cursor: int, limit: int) -> tuple[list[tuple[Any, ...]], int, int]:
    """(``Runtime.control_events``) the observed events since ``cursor`` (at most ``limit``), for a hub that
    follows this one from elsewhere: (events, the next cursor, how many were missed)."""
    if rt.observed is None:
        raise RuntimeError("this cluster records no events: it was started with observe=False")
    result = rt.observed.read(int(cursor), max(1, min(int(limit), 10_000)))
    return list(result.events), result.cursor, result.missed


def actor_named(rt: Any, name: str, namespace: str | None) -> tuple[int, str, bool]:
    """The live actor named ``name`` (its id, class, and whether calls to it are bounded), for ``get_actor``."""
    with rt.lock:
        actor_id = rt.actors_dir.named.get((namespace or rt.namespace, name))
        actor = rt.actors.get(actor_id) if actor_id is not None else None
        if actor is None or actor.dead is not None:
            raise ValueError(f"no actor named {name!r} in namespace {namespace or rt.namespace!r}")
        return actor.actor_id, actor.cls_name, actor.mailbox is not None or actor.max_pending >= 0


def _actor_on_worker(rt: Any, index: int, pid: int) -> Any:
    """(For ``context_of``, under ``rt.lock``) the live actor hosted by the worker numbered ``index`` on its node
    whose process is ``pid``, or None."""
    for actor in rt.actors.values():
        w = actor.worker
        if w is not None and w.index == index and w.pid == pid and actor.dead is None:
            return actor
    return None
