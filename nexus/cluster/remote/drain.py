"""Draining a node (``nexus drain NODE``, ``nexus.drain_node``): a graceful leave, with hand-off.

From the moment a drain starts the node is DRAINING: nothing new is placed
there (its task workers take no new task, its resources leave the pools
that actors and placement groups' bundles are placed on, its bundles are
reserved again elsewhere, it is asked for no new worker, virtual actors are
activated elsewhere). Then what can move moves:

- each virtual actor's activation there is passivated (its ``on_deactivate``
  runs, once the leases on it ended); its next call activates it on another
  node, with the state its hook saved;
- each actor that may restart (``max_restarts``) is restarted elsewhere
  now (as if its process had died: its calls in flight are retried if it
  says ``max_task_retries``), instead of when the node is gone;
- the tasks running there finish.

When nothing runs there any more, or at the deadline, the node's agent is
told to stop: it leaves (its workers stop; an actor that could not move dies
then, saying so, and values stored only there are made again by their tasks,
as when a node is lost). A node that does not leave within a few seconds of
being told is let go as if it had.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .head import HeadService

__all__ = ["Drains"]

LEAVE_WITHIN = 10.0  # seconds a drained node's agent has to leave once told to, after which it is let go


class Drains:
    """The drains of one head (started on its loop thread, or by an attached driver's request)."""

    def __init__(self, service: HeadService) -> None:
        self.service = service
        self.threads: dict[int, threading.Thread] = {}
        self.log: list[str] = []  # what the drains did, most recent last (for status and tests)
        self.lock = threading.Lock()

    def start(self, node: int, deadline: float = 60.0, by: str = "a driver or task of the cluster") -> dict[str, Any]:
        """Start draining ``node`` (a number of ``nexus.nodes()``, as an int); ValueError saying why it cannot be.
        From here on nothing new goes there (done before it returns); what can move moves on a thread of its own."""
        with self.lock:  # (asked on the head's loop thread, and on its runtime's for attached drivers and tasks)
            return self._start(node, deadline, by)

    def _start(self, node: int, deadline: float, by: str) -> dict[str, Any]:
        service = self.service
        if isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not 0 < deadline < 86400:
            raise ValueError(f"a drain's deadline is a positive number of seconds (under a day), not {deadline!r}")
        record = service.membership.get(node) if isinstance(node, int) and not isinstance(node, bool) else None
        if record is None:
            known = ", ".join(f"{r.node_id:06x}" for r in list(service.membership) if r.alive)
            raise ValueError(f"there is no node {node!r} in this cluster (its nodes alive: {known}; nexus.nodes() lists them)")
        if not record.alive:
            raise ValueError(f"node {node:06x} is dead already ({record.why})")
        if record is service.own:
            raise ValueError(f"node {node:06x} is the head's own: it cannot be drained (nexus stop stops the head)")
        if service.runtime is None:
            raise ValueError("this head runs no cluster: there is nothing to drain")
        if not record.draining:
            self._say(f"node {node:06x} ({record.host}) is drained at the request of {by}")
            record.draining = True
            rt = service.runtime
            with rt.lock:  # nothing new goes there from now
                rt.scheduler.node_gone(node)  # (its pool goes: no actor or bundle is placed there; its bundles move)
                for w in rt.workers:
                    if w.node == node:
                        w.retire()
                rt.spares[:] = [w for w in rt.spares if w.node != node]
            thread = self.threads[node] = threading.Thread(
                target=self._drain, args=(node, float(deadline)), name=f"nexus-drain-{node:x}", daemon=True
            )
            thread.start()
        return {"node_id": node, "state": record.state}

    def _say(self, line: str) -> None:
        self.log.append(line)
        del self.log[:-200]
        self.service.print(f"nexus head: {line}")

    def _drain(self, node: int, deadline: float) -> None:
        try:
            self._run(node, deadline)
        except Exception as exc:  # (a defect: said; the node is told to stop all the same)
            self._say(f"draining node {node:06x} failed: {exc!r}; it is told to stop")
            self._stop(node)

    def _run(self, node: int, deadline: float) -> None:
        rt = self.service.runtime
        end = time.monotonic() + deadline
        with rt.lock:
            retired = [w for w in rt.workers if w.node == node]
            actors = [a for a in rt.actors_dir.actors.values() if a.dead is None and a.worker is not None and a.worker.node == node]
        virtual = [a for a in actors if (a.name or "").startswith(("virtual:", "virtual-host:"))]
        restartable = [a for a in actors if a not in virtual and a.max_restarts != 0]
        self._say(
            f"draining node {node:06x} (deadline {deadline:g} s): {len(retired)} task worker(s) take no new task; "
            f"{len(virtual)} virtual activation(s) or host(s) of them to passivate, {len(restartable)} actor(s) to restart elsewhere, "
            f"{len(actors) - len(virtual) - len(restartable)} that cannot move"
        )
        passivated = self._passivate(virtual, end)
        for actor in restartable:
            rt.kill(actor.actor_id, False)  # (as if its process had died: it restarts, placed on another node)
        while time.monotonic() < end:
            with rt.lock:
                running = sum(w.inflight for w in rt.workers if w.node == node)
                staying = [a for a in rt.actors_dir.actors.values() if a.dead is None and a.worker is not None and a.worker.node == node]
            if not running and not staying:
                break
            time.sleep(0.05)
        else:
            self._say(f"node {node:06x} reached its drain deadline with {running} task(s) running and {len(staying)} actor(s) there")
        self._say(f"node {node:06x} is drained ({passivated} virtual activation(s) passivated): it is told to stop")
        self._stop(node)

    def _passivate(self, actors: list[Any], end: float) -> int:
        """Passivate these virtual activations through the directory (each once its leases ended); how many went."""
        from ..services.virtual import DIRECTORY
        from ..values import deserialize

        rt = self.service.runtime
        if not actors:
            return 0
        try:
            directory, _cls, bounded = rt.get_actor(DIRECTORY, None)
        except ValueError:
            return 0  # (no directory: the activations are the actors of a directory that died; they move no more)
        refs, hosts = [], [a for a in actors if a.name.startswith("virtual-host:")]
        for actor in actors:
            if actor in hosts:  # (many activations in one process: each passivated, then the host goes)
                refs.append(rt.submit_call(directory, "passivate_host", (actor.actor_id,), {}, 1, False, bounded)[0])
            else:
                kind, _, identity = actor.name[len("virtual:") :].rpartition("/")
                refs.append(rt.submit_call(directory, "passivate", (kind, identity), {}, 1, False, bounded)[0])
        blobs = rt.get_blobs([r.id for r in refs], max(1.0, end - time.monotonic()))
        for host in hosts:
            rt.kill(host.actor_id, True)
        if blobs is None:
            return 0
        went = [deserialize(blob) for blob in blobs if not blob.error]  # (True or False an activation, a count a host)
        return sum(int(n) for n in went if isinstance(n, int))

    def _stop(self, node: int) -> None:
        service = self.service
        service.tell_node(node, "stop", why="it was drained")
        until = time.monotonic() + LEAVE_WITHIN
        while time.monotonic() < until:
            record = service.membership.get(node)
            if record is None or not record.alive:
                return
            time.sleep(0.05)
        self._say(f"node {node:06x} did not leave within {LEAVE_WITHIN:g} s of being told to: it is let go")
        service.let_go(node, "it was drained (and did not leave when told to)")
