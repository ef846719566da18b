"""An actor's lifecycle as the head keeps it: states with explicit transitions, its calls, mailbox and restarts."""

from __future__ import annotations

import enum
import itertools
from collections import deque
from collections.abc import Callable
from typing import Any

from ...core.errors import ActorDiedError
from .tasks import CallRecord
from .workers import InvalidTransitionError, WorkerRecord

__all__ = ["ActorRecord", "ActorStatus", "Admission", "ends_with_its_handles"]


def ends_with_its_handles(options: dict[str, Any]) -> bool:
    """Whether an actor made with ``options`` ends when its last handle goes (as Ray's): not a named one, nor
    one made with ``lifetime="detached"``."""
    return options.get("name") is None and options.get("lifetime") != "detached"


class ActorStatus(enum.Enum):
    PENDING = "pending"  # created; waits for its constructor's arguments (ObjectRefs not ready yet)
    STARTING = "starting"  # placed in a worker process; its constructor runs
    ALIVE = "alive"  # takes calls
    RESTARTING = "restarting"  # its process died and it may restart: a new one is being placed
    DEAD = "dead"  # for good: killed, constructor failed, or out of restarts


_OVERTAKE = 64  # queued calls looked through for one of another caller, when the first waits for its arguments

_NEXT = {
    ActorStatus.PENDING: frozenset({ActorStatus.STARTING, ActorStatus.DEAD}),
    ActorStatus.STARTING: frozenset({ActorStatus.ALIVE, ActorStatus.RESTARTING, ActorStatus.DEAD}),
    ActorStatus.ALIVE: frozenset({ActorStatus.RESTARTING, ActorStatus.DEAD}),
    ActorStatus.RESTARTING: frozenset({ActorStatus.STARTING, ActorStatus.DEAD}),
    ActorStatus.DEAD: frozenset(),
}


class Admission(enum.Enum):
    """What a bounded mailbox says to one more call (see :meth:`ActorRecord.admit`)."""

    ADMIT = "admit"
    DROP_NEW = "drop the new call"
    DROP_OLDEST = "drop the oldest queued call, then admit"
    FAIL = "raise MailboxFullError"
    WAIT = "wait for room"


class ActorRecord:
    """One actor: its options, where it runs, its queued and running calls, and how to start it again."""

    def __init__(self, actor_id: int, cls_name: str, name: str | None, namespace: str) -> None:
        self.actor_id = actor_id
        self.cls_name = cls_name
        self.name = name
        self.namespace = namespace
        self.state = ActorStatus.PENDING
        self.labels: dict[str, tuple[str, str]] = {}  # method -> (class name, method): one tuple per method, for events
        self.worker: WorkerRecord | None = None
        self.dead: BaseException | None = None  # why it died, once it has
        self.exited = False  # its death was settled and published (resources, arguments given back)
        self.error_blob: Any = None  # its constructor's error: what every call then fails with
        self.queue: deque[CallRecord] = deque()
        self.missing = 0  # objects its constructor's arguments wait for
        self.placement: tuple[Any, ...] | None = None  # where it may run (see strategies.placement)
        self.inflight: dict[int, CallRecord] = {}
        self.on_ready: list[Callable[[Any], None]] = []  # told once its constructor ran (with its error or None)
        self.needs: dict[str, float] = {}
        self.held_on: int | None = None  # the node its needs are held on (see head.placing); None: none held
        self.waiting_for: str | None = None  # why it waits to be placed: what no node has free now (see head.placing)
        self.where: Callable[[Any], bool] | None = None  # the nodes' labels it may run on (strategies.label_selector)
        self.max_pending = -1
        self.sequential = False  # one call at a time (no threads, no event loop): its calls may be coalesced
        self.concurrency = 1  # how many of its calls may run at once (max_concurrency)
        self.max_restarts = 0  # -1: restart forever
        self.restarts = 0
        self.max_task_retries = 0  # calls in flight when its process dies are sent again this often (-1: always)
        self.mailbox: Any = None  # a bounded MailboxSpec: what to do with calls beyond its capacity
        # How to start it again: kept while it may restart
        self.cls_id = b""
        self.args_blob: Any = None
        self.args_oid = 0
        self.deps: list[int] = []
        self.options: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"ActorRecord({self.label}, {self.state.value})"

    @property
    def label(self) -> str:
        return f"{self.cls_name} ({self.actor_id:x})"

    @property
    def ready(self) -> bool:
        return self.state is ActorStatus.ALIVE

    def to(self, state: ActorStatus) -> None:
        if state not in _NEXT[self.state]:
            raise InvalidTransitionError(f"actor {self.label} cannot go from {self.state.value} to {state.value}")
        self.state = state

    def set_options(self, options: dict[str, Any]) -> None:
        pending = options.get("max_pending_calls")
        self.max_pending = -1 if pending is None else int(pending)  # 0 is a limit (no call may wait), -1 none
        self.max_restarts = int(options.get("max_restarts") or 0)
        self.max_task_retries = int(options.get("max_task_retries") or 0)
        self.mailbox = options.get("mailbox")

    def placed(self, w: WorkerRecord) -> None:
        """It goes to worker ``w``; its constructor runs there next."""
        self.to(ActorStatus.STARTING)
        self.worker = w
        w.actor = self

    def started(self, sequential: bool, concurrency: int) -> None:
        """Its constructor returned."""
        self.to(ActorStatus.ALIVE)
        self.sequential = sequential
        self.concurrency = max(1, concurrency)

    def die(self, why: str | BaseException) -> None:
        self.to(ActorStatus.DEAD)
        self.dead = why if isinstance(why, BaseException) else ActorDiedError(f"actor {self.label} died: {why}")

    # -- calls ---------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Calls queued here or running (answers pending)."""
        return len(self.queue) + len(self.inflight)

    def over_pending_limit(self) -> bool:
        return self.max_pending >= 0 and self.pending >= self.max_pending

    def admit(self) -> Admission:
        """What its bounded mailbox says to one more call now (ADMIT without a bound or while there is room)."""
        spec = self.mailbox
        if spec is None or self.dead is not None or spec.capacity is None or self.pending < spec.capacity:
            return Admission.ADMIT
        policy = spec.overflow.name  # an OverflowPolicy (nexus.core.mailbox), by name: this layer imports no runtime
        if policy == "FAIL":
            return Admission.FAIL
        if policy == "DROP_NEWEST":
            return Admission.DROP_NEW
        if policy == "DROP_OLDEST" and self.queue:
            return Admission.DROP_OLDEST
        return Admission.WAIT  # BLOCK (or DROP_OLDEST with every call already running)

    def sendable(self) -> CallRecord | None:
        """The next call to send, taken off the queue. Each caller's calls go in the order it made them (as Ray's:
        the caller is the task, actor call or driver that made them): one waiting for its arguments holds back
        the ones behind it of its caller, not those of others (looked for among the first ``_OVERTAKE`` queued)."""
        queue = self.queue
        if self.state is not ActorStatus.ALIVE or self.worker is None or not queue:
            return None
        if not queue[0].missing:
            call = queue.popleft()
        else:
            held = set()
            for i, waiting in enumerate(itertools.islice(queue, _OVERTAKE)):
                if waiting.missing or waiting.parent in held:
                    held.add(waiting.parent)
                    continue
                call = waiting
                del queue[i]
                break
            else:
                return None
        if call.result_ids:
            self.inflight[call.call_id] = call
        return call

    def coalesce_after(self) -> int:
        """Unanswered calls beyond which the next is held in the worker's outbox (see the head's outbox).

        A concurrent actor's call is held only while as many as it may run
        at once (and one more, waiting in the channel) are unanswered: it
        could not start before one of them ends anyway.
        """
        return 2 if self.sequential else self.concurrency + 1

    def take_all_calls(self) -> list[CallRecord]:
        calls = list(self.queue) + list(self.inflight.values())
        self.queue.clear()
        self.inflight.clear()
        return calls

    # -- restarts ------------------------------------------------------------------------------

    def may_restart(self) -> bool:
        return self.max_restarts not in (0, self.restarts)

    def begin_restart(self) -> tuple[list[CallRecord], list[CallRecord]]:
        """Its process died and it restarts: (calls sent again, calls that fail). The retried go to the front."""
        self.to(ActorStatus.RESTARTING)
        self.restarts += 1
        self.worker = None
        inflight = sorted(self.inflight.values(), key=lambda c: c.call_id)
        self.inflight.clear()
        retried = [c for c in inflight if c.retries != 0]
        failed = [c for c in inflight if c.retries == 0]
        for call in reversed(retried):
            if call.retries > 0:
                call.retries -= 1
            self.queue.appendleft(call)
        return retried, failed
