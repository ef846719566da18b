"""The head's tables past this machine, by simulation: membership, placement and a node's failure in process.

No sockets and no processes: the pure state of ``nexus.cluster.state`` (membership, the task queue with its
placement strategies, workers, actors) is driven with 10 to 1,000 simulated nodes of 8 workers and 100 actors a
node (100,000 at 1,000 nodes), and each step is timed per item, to show how its cost grows with the nodes:

* a node joining (its membership record and its resource pool), and one round of heartbeats from every node
  with the expiry scan;
* placing tasks: plain ones, SPREAD ones and ones bound to a node (per task placed), each fitted to the pool of
  the node it goes to (a pool per node, as the head keeps them);
* a node's failure: its pool removed, the queued tasks only it could run found, its workers and actors found and
  the restart of each actor started.

Nexus alone (no peer has this): what to read is the growth from row to row.
"""

from __future__ import annotations

import time
from typing import Any

from .harness import BenchmarkResult, Figure, peer_result

NAME = "scale"

WORKERS_PER_NODE = 8
ACTORS_PER_NODE = 100


class _Blob:
    nbytes = 10
    region = None
    refs = ()


def _cluster(nodes: int) -> tuple[Any, list[Any], list[Any]]:
    from nexus.cluster.config import ClusterConfig
    from nexus.cluster.state.actors import ActorRecord
    from nexus.cluster.state.resources import Resources
    from nexus.cluster.state.tasks import TaskQueue
    from nexus.cluster.state.workers import WorkerRecord, WorkerStatus

    workers = []
    for node in range(1, nodes + 1):
        for _ in range(WORKERS_PER_NODE):
            w = WorkerRecord(len(workers), "task")
            w.node = node
            w.to(WorkerStatus.READY)
            workers.append(w)
    resources = Resources(0)  # the head's own host, with no CPU of its own here: every task goes to a node
    for node in range(1, nodes + 1):
        special = {"special": 1.0} if node == 1 else {}  # what only node 1 has (its failure strands the tasks needing it)
        resources.add_node(node, {"CPU": float(WORKERS_PER_NODE), **special}, {"zone": f"z{node % 4}"})
    queue = TaskQueue(resources, ClusterConfig())
    actors = []
    for node in range(1, nodes + 1):
        for _ in range(ACTORS_PER_NODE):
            host = WorkerRecord(100_000_000 + len(actors), "actor")
            host.node = node
            host.to(WorkerStatus.READY)
            actor = ActorRecord(len(actors) + 1, "A", None, "default")
            actor.set_options({"max_restarts": 1})
            actor.placed(host)
            actor.started(True, 1)
            actors.append(actor)
    return queue, workers, actors


def _per(seconds: float, n: int) -> float:
    return seconds / max(n, 1) * 1e6  # microseconds each


def _measure(nodes: int, tasks: int) -> dict[str, float]:
    from nexus.cluster.state.nodes import Membership
    from nexus.cluster.state.tasks import TaskRecord

    out: dict[str, float] = {}
    from nexus.cluster.state.resources import Resources

    m = Membership(timeout=5.0)
    pools = Resources(0)
    t = time.perf_counter()
    records = []
    for i in range(nodes):
        record = m.join(f"key-{i}", f"host-{i}", {"CPU": float(WORKERS_PER_NODE)}, {}, now=0.0)
        pools.add_node(record.node_id, record.resources, record.labels)
        records.append(record)
    out["join"] = _per(time.perf_counter() - t, nodes)
    t = time.perf_counter()
    for r in records:
        m.heard(r.node_id, r.key, 1.0)
    m.expire(1.0)
    out["beats"] = _per(time.perf_counter() - t, nodes)

    queue, workers, actors = _cluster(nodes)
    for kind, strategy in (("plain", None), ("spread", ("spread",)), ("affinity", "node")):
        for w in workers:
            w.inflight, w.cpu_held = 0, 0.0
        queue.running.clear()
        placed = 0
        n = min(tasks, len(workers))
        made = []
        for i in range(n):
            task = TaskRecord(i + 1, b"f", "f", _Blob(), [], [])
            if strategy == "node":
                task.strategy, task.needs = ("node", 1 + i % nodes, False), {"CPU": 1.0}
            elif strategy is not None:
                task.strategy, task.needs = strategy, {"CPU": 1.0}
            made.append(task)
        t = time.perf_counter()
        for task in made:
            queue.push(task)

        def sent(_w: Any, _task: Any) -> None:
            nonlocal placed
            placed += 1

        while queue.queue and placed < n:
            before = placed
            queue.dispatch(workers, 0.0, sent)
            if placed == before:
                break
        out[kind] = _per(time.perf_counter() - t, max(placed, 1))
        queue.queue.clear()
        queue.special_queued = 0

    dead = 1
    for i in range(min(tasks, 1000)):  # queued work for the failure to look through: some only the dead node could run
        task = TaskRecord(10_000_000 + i, b"f", "f", _Blob(), [], [])
        task.needs = {"CPU": 1.0, "special": 1.0} if i % 10 == 0 else {"CPU": 1.0}
        queue.queue.append(task)
    t = time.perf_counter()
    queue.resources.remove_node(dead)
    stranded = queue.never_fitting()
    lost_workers = [w for w in workers if w.node == dead]
    for w in lost_workers:
        w.forget()
    restarting = [a for a in actors if a.worker is not None and a.worker.node == dead]
    for actor in restarting:
        if actor.may_restart():
            actor.begin_restart()
    out["failure"] = (time.perf_counter() - t) * 1e3  # milliseconds for the whole node
    out["actors"] = len(actors)
    out["stranded"] = len(stranded)
    queue.queue.clear()
    return out


def run(quick: bool) -> BenchmarkResult:
    sizes = (10, 100) if quick else (10, 100, 1000)
    tasks = 200 if quick else 2000
    rows = {n: _measure(n, tasks) for n in sizes}
    figures = []
    for key, label, unit in (
        ("join", "a node joins", "us"),
        ("beats", "a heartbeat, with the expiry scan", "us"),
        ("plain", "placing a plain task", "us"),
        ("spread", "placing a SPREAD task", "us"),
        ("affinity", "placing a task bound to a node", "us"),
        ("failure", "a node's failure (its pool, stranded tasks, its workers, restarting its actors)", "ms"),
    ):
        for n in sizes:
            if key in rows[n]:
                figures.append(Figure(f"{key}_{n}", f"{label}, {n:,} nodes", unit, [rows[n][key]]))
    return peer_result(
        NAME,
        f"The head's tables by simulation: {', '.join(f'{n:,}' for n in sizes)} nodes of {WORKERS_PER_NODE} workers "
        f"and {ACTORS_PER_NODE} actors (lower is better)",
        figures,
        "none",
        "-",
        quick,
        "one run, in process (state modules only); per item unless said",
        notes=[
            f"{rows[sizes[-1]]['actors']:,} actors at {sizes[-1]:,} nodes; a failure strands "
            f"{rows[sizes[-1]]['stranded']:,} of the queued tasks (what only the dead node had)"
        ],
        available=True,  # nothing to compare with, and nothing missing
    )
