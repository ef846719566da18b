"""A worker as the head sees it: its state, the work it has, the refs and regions it holds."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

from ...core.errors import NexusError

if TYPE_CHECKING:
    from .actors import ActorRecord

__all__ = ["InvalidTransitionError", "WorkerRecord", "WorkerStatus"]


class InvalidTransitionError(NexusError):
    """A record was asked to move to a state it cannot reach from its current one (a bug in the caller)."""


class WorkerStatus(enum.Enum):
    STARTING = "starting"  # its process runs; it has not said hello yet
    READY = "ready"  # takes work
    BROKEN = "broken"  # its channel turned out corrupt: not read any more, the process is being replaced
    DEAD = "dead"  # its process exited


_NEXT = {
    WorkerStatus.STARTING: frozenset({WorkerStatus.READY, WorkerStatus.BROKEN, WorkerStatus.DEAD}),
    WorkerStatus.READY: frozenset({WorkerStatus.BROKEN, WorkerStatus.DEAD}),
    WorkerStatus.BROKEN: frozenset({WorkerStatus.DEAD}),
    WorkerStatus.DEAD: frozenset(),
}


class WorkerRecord:
    """One worker process: a task worker (``kind="task"``), the host of one actor (``"actor"``), or a driver
    attached from elsewhere (``"driver"``: it runs nothing, and asks as a worker does).

    ``link`` is the node's handle on the process and its channel: opaque
    here, carried so that what the head decides can be sent to it.
    """

    __slots__ = (
        "actor",
        "alive",
        "allocs",
        "blocked",
        "broken",
        "busy_since",
        "calls",
        "cpu_held",
        "held",
        "index",
        "inflight",
        "kill_pending",
        "kind",
        "link",
        "name",
        "node",
        "outbox",
        "pid",
        "pinned",
        "ready",
        "remote",
        "retired",
        "revoking",
        "shipped",
        "spent",
        "state",
        "surplus",
        "worker_id",
    )

    def __init__(self, index: int, kind: str, worker_id: int = 0) -> None:
        self.index = index  # its number on its node (its process number in ids, see state.ids)
        self.worker_id = worker_id or index  # node and number: unique in the cluster
        self.kind = kind
        self.name = f"{'driver' if kind == 'driver' else 'worker'}-{index}"
        self.node = 0  # the node it runs on (its number: see state.ids)
        self.remote = False  # in another process than this host's arena is mapped by: blobs go with their bytes
        self.state = WorkerStatus.STARTING
        self.alive, self.ready, self.broken = True, False, False  # what ``state`` says (see ``to``)
        self.pid = 0
        self.link: Any = None
        self.shipped: set[bytes] = set()  # definitions it has
        self.inflight = 0  # tasks sent and not yet done (the first runs, the others wait in its channel)
        self.cpu_held = 0.0  # CPUs the task running now holds
        self.busy_since = 0.0
        self.blocked = False  # its main thread waits in get: it counts no CPU and runs tasks sent meanwhile
        self.revoking = False  # asked to give back the tasks queued behind its long one
        self.kill_pending = False  # to be killed (a force cancel) once those are given back
        self.retired = False  # takes no new work (its node drains): it finishes what it has
        self.surplus = False  # started while others waited in get (see head.surplus): it leaves when idle, not replaced
        self.calls: dict[bytes, int] | None = None  # tasks sent, by function, of functions with max_calls
        self.spent = False  # was sent a function's max_calls-th task: retired, it leaves once idle and is replaced
        self.actor: ActorRecord | None = None
        # Calls and tasks held back while the worker is busy with earlier ones; sent as one message when
        # an answer comes (so no earlier call can be waiting for them), or when the outbox is full.
        self.outbox: list[tuple[Any, ...]] = []
        self.held: dict[int, int] = {}  # refs this worker holds, by object id (dropped if it dies)
        self.pinned: dict[int, int] = {}  # pins it holds
        self.allocs: dict[int, int] = {}  # arena regions it was given and has not filled and handed back yet

    def __repr__(self) -> str:
        return f"WorkerRecord({self.name}, {self.kind}, {self.state.value}, inflight={self.inflight})"

    def to(self, state: WorkerStatus) -> None:
        if state not in _NEXT[self.state]:
            raise InvalidTransitionError(f"{self.name} cannot go from {self.state.value} to {state.value}")
        self.state = state
        # Kept as attributes, not properties: the scheduler reads them for every worker at every dispatch
        # (a property is a Python call each time: 15% more calls per task, measured with cProfile).
        self.alive = state is not WorkerStatus.DEAD  # its process has not been seen to exit (it may be broken)
        self.ready = state is WorkerStatus.READY and not self.retired
        self.broken = state is WorkerStatus.BROKEN

    def idle_for_tasks(self) -> bool:
        """A ready worker with nothing running, or one whose main thread waits in get (tasks run on top of it)."""
        return self.ready and (self.inflight == 0 or self.blocked)

    def retire(self) -> None:
        """Take no new work from now on (its node drains); what it has, it finishes."""
        self.retired = True
        self.ready = False

    def count_call(self, fn_id: bytes, max_calls: int) -> None:
        """A task of a function with ``max_calls`` is sent here: the last one it may run retires it (``spent``)."""
        calls = self.calls if self.calls is not None else {}
        self.calls = calls
        calls[fn_id] = calls.get(fn_id, 0) + 1
        if calls[fn_id] >= max_calls:
            self.spent = True
            self.retire()

    def forget(self) -> tuple[dict[int, int], dict[int, int], dict[int, int]]:
        """What a dead worker held (refs, pins, regions), handed back once: it holds nothing from here on."""
        held, pinned, allocs = self.held, self.pinned, self.allocs
        self.held, self.pinned, self.allocs = {}, {}, {}
        self.outbox = []
        return held, pinned, allocs

    def count(self, oid: int, dref: int, dpin: int) -> None:
        """Record that this worker took (or gave back) ``dref`` refs and ``dpin`` pins of ``oid``."""
        if dref:
            self.held[oid] = self.held.get(oid, 0) + dref
        if dpin:
            self.pinned[oid] = self.pinned.get(oid, 0) + dpin
