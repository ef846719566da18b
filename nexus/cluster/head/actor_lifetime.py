"""An actor ends when its last handle goes, as Ray's: unless it is named or ``lifetime="detached"``.

Its handles are counted as refs of an object under the actor's own id, made
here when the actor is: the handle its creator gets holds one ref
(``ActorHandle._ref``), and a handle inside a value, an argument or another
actor's state holds one more wherever it is unpickled, exactly as an
ObjectRef does (a worker that dies lets go of its own). When the object is
freed, the actor is told to end once it has no calls queued or running: a
``__ray_terminate__`` call, so its ``__ray_shutdown__`` runs and the answers
of its earlier calls go out first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..state.actors import ActorRecord, ends_with_its_handles
from ..state.commands import Unreferenced
from ..values import serialize

if TYPE_CHECKING:
    from ..state.workers import WorkerRecord
    from .runtime import Runtime

__all__ = ["ActorLifetimes"]


class ActorLifetimes:
    """Part of the head's runtime (``rt.lifetimes``)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.lock = rt.lock
        self.objects = rt.objects
        self.ending: set[int] = set()  # actors with no handle left, waiting for their calls to be done
        self.owned: dict[int, set[int]] = {}  # by the id of the worker (or attached driver) that made them
        rt.lock.carry_out[Unreferenced] = self.unreferenced

    def track(self, actor_id: int, options: dict[str, Any], creator: WorkerRecord | None) -> None:
        """Count the handles of a new actor (lock held): one so far, its creator's (a worker's, or this driver's)."""
        if not ends_with_its_handles(options):
            return
        objects = self.objects
        objects.new(actor_id)
        if creator is not None:
            creator.held[actor_id] = creator.held.get(actor_id, 0) + 1  # (let go if that worker dies)
            self.owned.setdefault(creator.worker_id, set()).add(actor_id)
        objects.store(actor_id, serialize(None, "an actor's handles", inline=True))
        objects.watch_free(actor_id, self._gone)

    def owner_gone(self, w: WorkerRecord) -> None:
        """The worker (or attached driver) ``w`` is gone (lock held): the actors it made go too, as Ray's do with
        their owner, unless detached; their handles elsewhere then say so (ActorDiedError)."""
        from ...core.errors import ActorDiedError

        directory = self.rt.actors_dir
        for actor_id in self.owned.pop(w.worker_id, ()):
            actor = directory.actors.get(actor_id)
            if actor is not None and actor.dead is None:
                directory.end(actor, ActorDiedError(f"actor {actor.label} ended with its owner, {w.name}, which made it"))

    def _gone(self, actor_id: int) -> None:
        self.lock.after(Unreferenced(actor_id))  # (freed with the lock held, maybe in a finalizer: decided after)

    def unreferenced(self, actor_id: int) -> None:
        with self.lock:
            actor = self.rt.actors.get(actor_id)
            if actor is None or actor.dead is not None or self.rt.closing:
                self.ending.discard(actor_id)
                return
            if actor.queue or actor.inflight:
                self.ending.add(actor_id)  # (ended by call_done once they are)
                return
            self.ending.discard(actor_id)
        self.rt.actors_dir.submit_call(actor_id, "__ray_terminate__", (), {}, 1, True)

    def call_done(self, actor: ActorRecord, call_id: int) -> None:
        """A call of ``actor`` answered (lock held): an actor with no handle left ends after its last one."""
        self.rt.actors_dir.call_done(actor, call_id)
        if self.ending and actor.actor_id in self.ending and not actor.inflight and not actor.queue:
            self.lock.after(Unreferenced(actor.actor_id))
