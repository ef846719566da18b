"""What each worker is doing now, and what waits at the head: the records the live views draw.

A worker is sent more than it runs: a task worker gets the next tasks ahead
(prefetched, waiting in its channel), an actor's worker the calls sent
before the ones running return. Only the first of a task worker's tasks
runs (workers run their channel in order); while it waits in ``get`` the
worker is ``blocked`` (a task sent on top of it may run then); an actor runs
up to its ``max_concurrency`` calls at once. The head knows each
of these without asking the worker, so the views show the real state of
every worker at no cost to the work.
"""

from __future__ import annotations

import functools
import socket
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["Activity", "HostActivity", "Running", "WorkerActivity", "activity_of", "this_host"]

SHOWN = 8  # running calls named per worker (a threaded actor may run many)


@dataclass(frozen=True)
class Running:
    id: int  # the task's or call's id (as the observation events name it)
    name: str  # function, or Class.method
    since: int  # monotonic ns it started at, as the head knows it (0: not known)


@dataclass(frozen=True)
class WorkerActivity:
    worker: str
    pid: int
    host: str
    node_id: str
    kind: str  # "task" or "actor" (the actor's worker)
    actor: str | None  # its actor's label
    state: str  # "starting", "idle", "running", "blocked" (its main thread waits in get), "dead"
    running: tuple[Running, ...]
    prefetched: int  # sent to it and waiting there behind what runs


@dataclass(frozen=True)
class HostActivity:
    host: str
    node_id: str
    store_used: int  # bytes of its object store's arena in use
    store_capacity: int


@dataclass(frozen=True)
class Activity:
    time_ns: int  # when this was read (monotonic ns)
    workers: tuple[WorkerActivity, ...]
    hosts: tuple[HostActivity, ...]
    queued: int  # tasks at the head waiting for a worker or resources
    waiting: int  # tasks at the head waiting for their arguments
    calls_queued: int  # actor calls held at the head (their actor busy, starting or restarting)


@functools.cache
def this_host() -> str:
    """This host's name (asked once: it costs a system call, and the views ask 10 times a second)."""
    return socket.gethostname()


def activity_of(rt: Any) -> Activity:
    here = this_host()
    membership = rt.membership
    with rt.lock:
        now = time.monotonic_ns()
        by_worker: dict[str, list[Any]] = {}
        for task in rt.tasks.running.values():  # (in the order they were sent: a worker runs them so)
            if task.worker is not None:
                by_worker.setdefault(task.worker.name, []).append(task)
        calls_queued = 0
        for a in rt.actors.values():
            calls_queued += len(a.queue)
        workers = []
        for w in rt.every_worker_record():
            node = w.node or rt.node_id
            member = membership.get(node) if membership is not None else None
            host = member.host if member is not None else here
            running: list[Running] = []
            if w.actor is not None:
                calls = list(w.actor.inflight.values())
                label = w.actor.cls_name
                running = [Running(c.call_id, f"{label}.{c.method}", 0) for c in calls[: min(w.actor.concurrency, SHOWN)]]
                prefetched = max(len(calls) - w.actor.concurrency, 0)
            else:
                tasks = by_worker.get(w.name, [])
                if tasks:  # (blocked in get, it still runs: a task sent on top of it is counted as sent ahead)
                    since = int(w.busy_since * 1e9) if w.busy_since else 0
                    running = [Running(tasks[0].task_id, tasks[0].name, since)]
                prefetched = len(tasks) - len(running)
            if not w.alive:
                state = "dead"
            elif w.blocked:
                state = "blocked"
            elif running:
                state = "running"
            elif w.ready or w.actor is not None:
                state = "idle"
            else:
                state = "starting"
            workers.append(
                WorkerActivity(
                    w.name,
                    w.pid,
                    host,
                    f"{node:06x}",
                    "actor" if w.kind == "actor" else "task",
                    w.actor.label if w.actor is not None else None,
                    state,
                    tuple(running),
                    prefetched,
                )
            )
        queued, waiting = len(rt.tasks.queue), len(rt.tasks.waiting)
    store = rt.store
    hosts = [HostActivity(here, f"{rt.node_id:06x}", store.allocator.used, store.allocator.capacity)]
    for key, joined in list(store.joined.items()):
        hosts.append(HostActivity(joined.host, f"{key:06x}", joined.allocator.used, joined.allocator.capacity))
    return Activity(now, tuple(workers), tuple(hosts), queued, waiting, calls_queued)
