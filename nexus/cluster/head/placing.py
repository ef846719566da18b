"""Where an actor runs: the node that holds what it needs, and a spare worker process there.

An actor that needs resources (``num_cpus``, ``num_gpus``, ``resources``) or
asks for node labels (``label_selector``) is given a node when it is created,
one where its needs are free now, and holds them there until it dies; it
starts on that node, and again there when its process restarts, or on
another that has them free when its node is gone. When no node has them
free now, it waits (as in Ray), saying why (``waiting_for``), and is placed
when they are (:meth:`ActorPlacement.retry`, at each dispatch); one that no
node could ever hold fails at once. Any other actor goes
where its scheduling strategy says, by default to a spare of the head's own
host first (as on one host).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...core.errors import NexusError
from ..state.actors import ActorRecord
from ..state.workers import WorkerRecord

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["ActorPlacement"]


class ActorPlacement:
    def __init__(
        self,
        rt: Runtime,
        actors: dict[int, ActorRecord],
        failed: Callable[[ActorRecord, BaseException], None],
        start: Callable[[ActorRecord], None],
    ) -> None:
        self.rt = rt
        self.actors = actors
        self.failed = failed  # the actor cannot start at all (lock held)
        self.start = start  # place an actor that now holds its needs (lock held: it hands over to a helper)
        self.pending: list[ActorRecord] = []  # actors waiting for what they need to be free, oldest first

    def hold_or_wait(self, actor: ActorRecord) -> None:
        """Hold ``actor``'s needs on a node now, or have it wait for them (lock held); ValueError if no node alive
        could ever hold them."""
        why = self.hold_node(actor)
        if why is None:
            return
        self._check_feasible(actor)
        actor.waiting_for = why
        self.pending.append(actor)

    def _check_feasible(self, actor: ActorRecord) -> None:
        r = self.rt.resources
        r.check_feasible(actor.needs, actor.cls_name, actor.where)
        strategy = actor.placement
        if strategy is not None and strategy[0] == "node" and not strategy[2] and strategy[1] not in r.nodes_for(actor.needs, actor.where):
            raise ValueError(f"{actor.cls_name} can never run: node {strategy[1]:06x} it is bound to does not have what it needs")

    def retry(self) -> None:
        """Place the waiting actors whose needs are free now (lock held); fail those no node could hold any more."""
        for actor in list(self.pending):
            if actor not in self.pending:
                continue  # (settled meanwhile: failing one runs this again)
            if actor.dead is None:
                why = self.hold_node(actor)
                if why is not None:
                    try:
                        self._check_feasible(actor)
                    except ValueError as exc:  # (the node that could is gone)
                        self.pending.remove(actor)
                        actor.waiting_for = None
                        self.failed(actor, NexusError(f"{exc}: the node that could hold it is gone"))
                        continue
                    actor.waiting_for = why
                    continue
            self.pending.remove(actor)
            actor.waiting_for = None
            if actor.dead is None and actor.missing == 0:
                self.start(actor)

    # -- a node for what it needs ---------------------------------------------------------------

    def hold_node(self, actor: ActorRecord) -> str | None:
        """Give ``actor`` (with needs or labels) a node where they are free now and hold them there (lock held).

        Returns None, or why no node can take it now.
        """
        rt = self.rt
        r = rt.resources
        needs = actor.needs
        candidates = r.nodes_for(needs, actor.where)
        strategy = actor.placement
        if strategy is not None and strategy[0] == "node":
            bound = strategy[1]
            if not strategy[2]:
                candidates = [n for n in candidates if n == bound]
            else:  # soft: that node first
                candidates.sort(key=lambda n: n != bound)
        elif strategy is not None and strategy[0] == "spread":
            hosting = self._hosting()
            candidates.sort(key=lambda n: hosting.get(n, 0))
        else:
            candidates.sort(key=lambda n: n != rt.node_id)  # the head's own host first, as on one host
        for node in candidates:
            if r.fits(needs, rt.tasks.free_cpus(rt.workers, node), node):
                r.hold(needs, node=node)
                actor.held_on = node
                return None
        wanted = ", ".join(f"{v:g} {k}" for k, v in needs.items() if v) or "its labels"
        if not r.multi:
            short = r.short_of(needs, rt.tasks.free_cpus(rt.workers))
            return f"{actor.cls_name} needs {', '.join(f'{needs[k]:g} {k}' for k in short)}, more than is free now"
        if not candidates:
            return f"{actor.cls_name} needs {wanted} and no node alive now has that (nexus.nodes() lists what they have)"
        return f"{actor.cls_name} needs {wanted} on one node, more than any node has free now"

    def _hosting(self) -> dict[int, int]:
        hosting: dict[int, int] = {}
        for other in self.actors.values():
            if other.worker is not None and other.dead is None:
                hosting[other.worker.node] = hosting.get(other.worker.node, 0) + 1
        return hosting

    def target(self, actor: ActorRecord) -> tuple[Any, ...] | None:
        """Where ``actor`` must start: the node that holds its needs, or where its strategy says."""
        if actor.held_on is not None:
            return ("node", actor.held_on, False)
        return actor.placement

    def moved(self, actor: ActorRecord) -> bool:
        """Its node is gone (lock held): it holds its needs on another now, or it failed (False)."""
        if actor.held_on is None or actor.held_on in self.rt.resources.pools:
            return True
        actor.held_on = None
        try:
            self.hold_or_wait(actor)
        except ValueError as exc:
            self.failed(actor, NexusError(f"actor {actor.cls_name} cannot be placed again: {exc}"))
            return False
        return actor.waiting_for is None  # (else placed when its needs are free: retry)

    # -- a spare worker there ---------------------------------------------------------------------

    def take_spare(self, actor: ActorRecord) -> tuple[WorkerRecord | None, int]:
        """A spare worker for ``actor`` where it must start (lock held); else None and the node to start one on.

        By default, a spare of this host (as on one host), else one of a joined node.
        """
        rt = self.rt
        spares = rt.spares
        strategy = self.target(actor)
        if strategy is not None and strategy[0] == "node":
            node = strategy[1]
            chosen = next((w for w in reversed(spares) if w.node == node), None)
            if chosen is not None:
                spares.remove(chosen)
            return chosen, node
        if strategy is not None and strategy[0] == "spread" and spares:
            hosting = self._hosting()
            chosen = min(reversed(spares), key=lambda w: hosting.get(w.node, 0))
            spares.remove(chosen)
            return chosen, chosen.node
        chosen = next((w for w in reversed(spares) if not w.remote), None) or (spares[-1] if spares else None)
        if chosen is not None:
            spares.remove(chosen)
        return chosen, rt.node_id

    def spare_from(self, node: int, actor: ActorRecord, fail: bool = True) -> WorkerRecord | None:
        """Ask joined node ``node`` for a spare and wait for it; if none comes, the actor fails (``fail``) or None."""
        rt = self.rt
        asked = rt.spawn_on is not None and rt.spawn_on(node, "actor")
        deadline = time.monotonic() + rt.config.worker_start_timeout
        rounds = 0
        while asked and time.monotonic() < deadline and not rt.closing:
            with rt.lock:
                chosen = next((w for w in rt.spares if w.node == node), None)
                if chosen is not None:
                    rt.spares.remove(chosen)
                    return chosen
            rounds += 1
            if not rounds % 10 and node not in rt.alive_nodes():  # (it died meanwhile: no worker comes from it)
                asked = False
                break
            time.sleep(0.01)
        if not fail:
            return None
        why = f"node {node:06x} gave no worker for it within {rt.config.worker_start_timeout:g} s" if asked else f"node {node:06x} is gone"
        with rt.lock:
            if actor.dead is None:
                self.failed(actor, NexusError(f"actor {actor.cls_name} cannot be placed: {why}"))
        return None
