"""What the head decides under its lock for the outside world to carry out once it is released.

Each command is a plain record; the node that owns the thing named carries
it out (:class:`~nexus.cluster.head.lock.TableLock` runs them in order, by
type, with the lock released). Only these reach outside the tables: a send,
a process kill, a spill file removal. Nothing here does I/O.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["Command", "Kill", "Push", "RemoveSpill", "Unreferenced"]


class Push(NamedTuple):
    """Send what waits in a worker's outbox, as far as its channel has room (never waits)."""

    link: Any  # the worker's process link (node.processes.WorkerProcess)


class Kill(NamedTuple):
    """Kill a worker's process; its node sees it die and the head settles what it held."""

    link: Any


class RemoveSpill(NamedTuple):
    """Remove a spill file nobody needs any more (its object was freed, or read back)."""

    name: str


class Unreferenced(NamedTuple):
    """The last handle of an actor went: it ends once the calls it has are done (see head.actor_lifetime)."""

    actor_id: int


Command = Push | Kill | RemoveSpill | Unreferenced
