"""Tasks and actor calls, and the queue of tasks waiting for a worker: fitting, dispatch with prefetch, stealing.

Placement is pull-based: a free worker takes the next task that fits, so a
long task never holds others back behind it on a busy worker. A worker
blocked in ``get`` counts as free (nested and recursive tasks cannot
deadlock a small pool). The queue only decides and keeps count; the head
ships what it decides.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ..config import ClusterConfig
from .resources import Resources
from .workers import WorkerRecord

__all__ = ["CallRecord", "NodeLoad", "TaskQueue", "TaskRecord"]


class TaskRecord:
    __slots__ = (
        "args_blob",
        "args_oid",
        "attempt",
        "cancelled",
        "deps",
        "fn_id",
        "kept",
        "max_calls",
        "missing",
        "name",
        "needs",
        "parent",
        "result_ids",
        "retries",
        "retry_exceptions",
        "strategy",
        "task_id",
        "trace",
        "where",
        "worker",
        "yields",
    )

    def __init__(
        self,
        task_id: int,
        fn_id: bytes,
        name: str,
        args_blob: Any,
        deps: list[int],
        result_ids: list[int],
        needs: dict[str, float] | None = None,
        retries: int = 3,
    ) -> None:
        self.needs = needs  # None: one CPU and nothing else (the common case, which may be prefetched)
        self.task_id = task_id
        self.parent = 0  # the task or call that submitted it (0: a driver)
        self.fn_id = fn_id
        self.name = name
        self.args_blob = args_blob
        self.deps = deps
        self.result_ids = result_ids
        self.missing = 0  # dependencies not ready yet
        self.worker: WorkerRecord | None = None
        self.args_oid = 0  # large arguments, or ones holding refs, are stored as an object of their own
        self.retries = retries  # left: retried when its worker dies (max_retries; -1: forever)
        self.retry_exceptions: Any = False  # also retried when it raises: True, or a tuple of exception types
        self.attempt = 0
        self.kept = 0  # its results kept for lineage (stored only on a joined node: see head.lineage)
        self.cancelled = False
        self.trace = self.task_id  # the trace it belongs to: the id of the call that started the chain
        self.strategy: tuple[Any, ...] | None = None  # where it may run: ("node", id, soft) or ("spread",) (see strategies)
        self.where: Callable[[Any], bool] | None = None  # the nodes' labels it may run on (see strategies.label_selector)
        self.yields: Any = None
        self.max_calls = 0  # a worker runs this function this many times at most, then leaves (0: no bound)

    def set_retry_options(self, options: dict[str, Any]) -> None:
        retries = options.get("max_retries")
        if retries is not None:
            self.retries = int(retries)
        self.yields = options.get("_yields")  # a generator's: how it hands back its values (see cluster.generators)
        self.max_calls = options.get("max_calls") or 0
        retry = options.get("retry_exceptions", False)
        if isinstance(retry, type):
            retry = (retry,)
        self.retry_exceptions = tuple(retry) if isinstance(retry, (list, tuple)) else bool(retry)

    def count_retry(self) -> int:
        """One more attempt; returns its number."""
        if self.retries > 0:
            self.retries -= 1
        self.attempt += 1
        return self.attempt


class CallRecord:
    """A call of an actor method: queued at the head until the actor is ready and its arguments are."""

    __slots__ = ("actor", "args_blob", "args_oid", "call_id", "deps", "method", "missing", "parent", "result_ids", "retries", "trace")

    def __init__(
        self, call_id: int, method: str, args_blob: Any, deps: list[int], result_ids: list[int], actor: Any = None, parent: int = 0
    ) -> None:
        self.actor = actor  # the ActorRecord it calls
        self.call_id = call_id
        self.method = method
        self.args_blob = args_blob
        self.deps = deps
        self.result_ids = result_ids
        self.missing = 0
        self.args_oid = 0
        self.retries = 0  # sent again this often if the actor's process dies while it runs (-1: always)
        self.trace = self.call_id
        self.parent = parent  # the task or call that made it (0: a driver)


class TaskQueue:
    """Tasks waiting for their arguments, waiting for a worker, and running; the decisions of placing them."""

    def __init__(self, resources: Resources, config: ClusterConfig) -> None:
        self.resources = resources
        self.config = config
        self.queue: deque[TaskRecord] = deque()
        self.waiting: dict[int, TaskRecord] = {}  # tasks waiting for their arguments (ObjectRefs not ready yet)
        self.running: dict[int, TaskRecord] = {}  # sent to a worker, not answered yet
        self.special_queued = 0  # queued tasks with needs of their own (they are never prefetched)
        self.stack_on_blocked = False  # queued tasks may go on top of a task waiting in get (see head.surplus)
        self.queued_bytes = 0  # inline argument bytes of the queued tasks
        self.took: dict[bytes, float] = {}  # function id -> seconds its last task ran (for the prefetch depth)
        self.stolen = 0

    def __len__(self) -> int:
        return len(self.queue)

    def full(self) -> bool:
        return len(self.queue) >= self.config.max_queued_tasks or self.queued_bytes >= self.config.max_queued_bytes

    def drained_enough(self) -> bool:
        """Back below 90% of the bounds: a submitter waiting for room goes on."""
        c = self.config
        return len(self.queue) < c.max_queued_tasks * 0.9 and self.queued_bytes < c.max_queued_bytes * 0.9

    # -- the queue --------------------------------------------------------------------------

    def push(self, task: TaskRecord) -> None:
        if task.needs is not None:
            self.special_queued += 1
        if not task.args_oid:
            self.queued_bytes += task.args_blob.nbytes
        self.queue.append(task)

    def remove(self, task: TaskRecord) -> None:
        """Take a queued task out (it was cancelled)."""
        self.queue.remove(task)
        if task.needs is not None:
            self.special_queued -= 1
        if not task.args_oid:
            self.queued_bytes -= task.args_blob.nbytes

    def remove_many(self, gone: set[int]) -> list[TaskRecord]:
        """Take the queued tasks whose ids are in ``gone`` out, in one pass (they were cancelled); returns them."""
        taken = [t for t in self.queue if t.task_id in gone]
        if taken:
            self.queue = deque(t for t in self.queue if t.task_id not in gone)
            for task in taken:
                if task.needs is not None:
                    self.special_queued -= 1
                if not task.args_oid:
                    self.queued_bytes -= task.args_blob.nbytes
        return taken

    def requeue_last(self, task: TaskRecord) -> None:
        """A task taken back to be retried goes to the back: it failed, the others go first."""
        self.queue.remove(task)
        self.queue.append(task)

    def free_cpus(self, workers: Iterable[WorkerRecord], node: int | None = None) -> float:
        """CPUs no running task or actor holds: in the cluster, or on ``node``."""
        if node is None:
            running = sum(w.cpu_held for w in workers if w.inflight and not w.blocked and w.alive)
            return self.resources.total["CPU"] - running - self.resources.used["CPU"]
        pool = self.resources.pools.get(node)
        if pool is None:
            return 0.0
        running = sum(w.cpu_held for w in workers if w.node == node and w.inflight and not w.blocked and w.alive)
        return pool.total["CPU"] - running - pool.used["CPU"]

    def fits(self, task: TaskRecord, workers: list[WorkerRecord], w: WorkerRecord | None = None, load: NodeLoad | None = None) -> bool:
        """Whether ``task`` fits what is free now: on ``w``'s node when the cluster has several (``load``: theirs)."""
        if w is not None and load is not None and load.cpus is not None:
            node = w.node
            free = load.cpus.get(node, 0.0)
            if task.needs is None:
                return free >= 1.0
            if task.where is not None and not task.where(self.resources.labels_of(node)):
                return False
            return self.resources.fits(task.needs, free, node)
        if task.needs is None:
            return self.free_cpus(workers) >= 1.0
        return self.resources.fits(task.needs, self.free_cpus(workers))

    def take_fitting(self, workers: list[WorkerRecord], w: WorkerRecord | None = None, load: NodeLoad | None = None) -> TaskRecord | None:
        """The first queued task that fits the free resources (a big one waiting does not hold back small ones)
        and, for ``w``, may run there (its scheduling strategy)."""
        spread_refused = False  # (SPREAD asks the same of every task: once refused here, refused for all)
        for i, task in enumerate(self.queue):
            if i > 64:
                break  # (a long queue is not scanned whole for every worker)
            if task.strategy is not None and w is not None:
                if load is None:
                    load = NodeLoad(workers)
                spread = task.strategy[0] == "spread"
                if spread and spread_refused:
                    continue
                if not self.placeable_on(task, w, load):
                    spread_refused = spread_refused or spread
                    continue
            if self.fits(task, workers, w, load):
                del self.queue[i]
                if task.needs is not None:
                    self.special_queued -= 1
                return task
        return None

    def take_nested(self, workers: list[WorkerRecord], w: WorkerRecord, load: NodeLoad | None) -> TaskRecord | None:
        """For ``w``, blocked in a get: a queued task that one of the tasks it runs submitted (what it most likely
        waits for), newest first. A worker blocked in a get runs tasks on top of the one that waits; given the next
        of the queue instead, a chain of nested tasks on one CPU stacked every outer task of the queue before the
        inner one each waits for (1,000 ``f -> g -> h`` chains: the last outer task ran before the first inner one)."""
        queue, running = self.queue, self.running
        for i in range(len(queue) - 1, max(-1, len(queue) - 66), -1):  # (submitted last: at the tail)
            task = queue[i]
            parent = running.get(task.parent) if task.parent else None
            if parent is not None and parent.worker is w and task.strategy is None and self.fits(task, workers, w, load):
                del queue[i]
                if task.needs is not None:
                    self.special_queued -= 1
                return task
        return None

    @staticmethod
    def placeable_on(task: TaskRecord, w: WorkerRecord, load: NodeLoad) -> bool:
        """Whether ``task``'s strategy lets it run on ``w`` now (``w`` is idle; ``load``: the nodes' workers now)."""
        strategy = task.strategy
        assert strategy is not None
        if strategy[0] == "node":
            _, node, soft = strategy
            return w.node == node or (bool(soft) and not load.idle.get(node))
        return load.least_busy(w.node)  # SPREAD

    # -- placing ---------------------------------------------------------------------------

    def dispatch(self, workers: list[WorkerRecord], now: float, send: Callable[[WorkerRecord, TaskRecord], None]) -> None:
        """Idle workers first, one task each; with a backlog, top workers up to ``prefetch`` tasks in flight.

        Prefetching hides the round trip through the driver between two short
        tasks (it doubles the rate of a flood of small tasks); the price is
        that a task prefetched behind a long one waits for it, so it happens
        only while more tasks wait than there are workers, and only to a
        worker whose current task started less than ``prefetch_young`` ago.
        A function whose last task ran under ``quick_task`` gets
        ``prefetch_quick`` in flight per worker: its tasks then travel
        coalesced, many to a message (tasks submitted together run 1.2-1.3x
        faster); stealing takes back those stuck behind one that turns out
        long. ``send(worker, task)`` is called for each task placed, after
        :meth:`started` counted it.
        """
        queue = self.queue
        ready = [w for w in workers if w.ready]
        multi = self.resources.multi  # several nodes: a task fits a node, not the cluster
        # (for strategies and nodes: counted once, kept up to date)
        load = NodeLoad(workers, self.resources if multi else None) if self.special_queued or multi else None
        for w in ready:
            if not queue:
                return
            if w.inflight == 0 or w.blocked:
                if w.blocked:  # what its tasks wait for; others only where no surplus worker can take them
                    task = self.take_nested(workers, w, load)
                    if task is None and (w.remote or self.stack_on_blocked):
                        task = self.take_fitting(workers, w, load)
                    if task is None:
                        continue
                else:
                    task = self.take_fitting(workers, w, load)
                if task is None:
                    if self.special_queued or multi:
                        continue  # what is queued may not run on this worker, but on another
                    return
                if load is not None:
                    load.took(w, 1.0 if task.needs is None else task.needs.get("CPU", 0.0))
                self.started(w, task, now)
                send(w, task)
        if len(queue) <= len(ready) or self.special_queued:
            return
        c = self.config
        young = [w for w in ready if not w.blocked and now - w.busy_since < c.prefetch_young]
        depth = 2
        took = self.took
        while queue and depth <= c.prefetch_quick:
            for w in young:
                if not queue:
                    return
                if depth > c.prefetch and took.get(queue[0].fn_id, 1.0) >= c.quick_task:
                    return  # deeper only for a task whose function is known to be quick
                if w.inflight < depth and w.ready:
                    task = queue.popleft()
                    self.started(w, task, now)
                    send(w, task)
            depth += 1

    def started(self, w: WorkerRecord, task: TaskRecord, now: float) -> None:
        """``task`` goes to ``w`` (taken from the queue)."""
        if not task.args_oid:
            self.queued_bytes -= task.args_blob.nbytes
        if w.inflight == 0 or w.blocked:
            w.busy_since = now
            w.cpu_held = 1.0 if task.needs is None else task.needs.get("CPU", 0.0)
        if task.needs is not None:
            self.resources.hold(task.needs, cpu=False, node=w.node)
        w.inflight += 1
        task.worker = w
        self.running[task.task_id] = task

    def finished(self, w: WorkerRecord, task: TaskRecord, now: float) -> None:
        """``task`` ended on ``w`` (answered, or lost with its worker)."""
        self.running.pop(task.task_id, None)
        w.inflight -= 1
        w.busy_since = now  # the next task in its channel (a prefetched, plain one) starts now
        if w.inflight:
            w.cpu_held = 1.0
        else:  # its worker's CPU is free: a pending placement group may fit now
            w.cpu_held = 0.0
            self.resources.freed = True
        if task.needs is not None:
            self.resources.release(task.needs, cpu=False, node=w.node)

    def take_back(self, w: WorkerRecord, task: TaskRecord) -> None:
        """A task sent to ``w`` that had not started goes back to the front of the queue."""
        self.running.pop(task.task_id, None)
        w.inflight -= 1
        if not w.inflight:
            self.resources.freed = True
        if task.needs is not None:
            self.resources.release(task.needs, cpu=False, node=w.node)
            self.special_queued += 1
        task.worker = None
        self.queue.appendleft(task)
        if not task.args_oid:
            self.queued_bytes += task.args_blob.nbytes
        self.stolen += 1

    def steal_candidates(self, workers: list[WorkerRecord], now: float) -> tuple[bool, list[WorkerRecord]]:
        """Work stealing: (look again soon, the busy workers whose queued tasks an idle worker should take).

        Only while nothing is queued and some worker is idle; a worker busy
        with one task for ``steal_after`` gives back the tasks queued
        behind it (those in its outbox at once, those in its channel by a
        ``revoke``).
        """
        if self.queue or not any(w.inflight == 0 and w.ready for w in workers):
            return False, []
        watch = False
        victims = []
        for v in workers:
            if v.inflight < 2 or v.blocked or v.revoking or not v.alive:
                continue
            if now - v.busy_since < self.config.steal_after:
                watch = True
                continue
            victims.append(v)
        return watch, victims

    def never_fitting(self) -> list[TaskRecord]:
        """Queued tasks that no node alive now could ever hold (the one that could is gone)."""
        r = self.resources
        seen: dict[tuple[Any, ...], bool] = {}  # (tasks alike are asked about once: a failure looks at every queued task)
        stranded = []
        for t in self.queue:
            if t.needs is None:
                continue
            key = (tuple(sorted(t.needs.items())), t.where)
            never = seen.get(key)
            if never is None:
                never = seen[key] = not r.nodes_for(t.needs, t.where)
            if never:
                stranded.append(t)
        return stranded

    def why_waiting(self, task: TaskRecord, workers: list[WorkerRecord], cpus: dict[int, float] | None = None) -> str:
        """Why a queued task has not started: what it needs and what the nodes that could run it have free.

        ``cpus``: the nodes' free CPUs (``NodeLoad(workers, resources).cpus``), when asked for many tasks at once.
        """
        if task.task_id in self.waiting:
            return "its arguments are not ready yet"
        r = self.resources
        needs = task.needs or {"CPU": 1.0}
        strategy = task.strategy
        nodes = [strategy[1]] if strategy is not None and strategy[0] == "node" and not strategy[2] else r.nodes_for(needs, task.where)
        wanted = ", ".join(f"{v:g} {k}" for k, v in needs.items() if v)
        if not any(n in r.pools for n in nodes):
            return f"it needs {wanted} and no node alive now could ever run it"
        said = []
        for node in nodes[:4]:
            if node not in r.pools:
                continue
            free = r.free(node, cpus[node] if cpus is not None and node in cpus else self.free_cpus(workers, node))
            short = [k for k, v in needs.items() if free.get(k, 0.0) < v]
            have = ", ".join(f"{max(free.get(k, 0.0), 0.0):g} {k}" for k in short) + " free" if short else "no idle worker"
            said.append(f"node {node:06x} has {have}")
        more = f" (and {len(nodes) - 4} more nodes)" if len(nodes) > 4 else ""
        return f"waiting for {wanted}: " + "; ".join(said) + more

    def queued_on(self, w: WorkerRecord) -> list[int]:
        """The ids of the tasks sent to ``w`` and not answered (the first runs, the others wait in its channel)."""
        return [t.task_id for t in self.running.values() if t.worker is w]


class NodeLoad:
    """The nodes' ready workers, idle and busy, and their free CPUs, for placing tasks in one pass of dispatch.

    ``cpus`` (by node) only when ``resources`` has several nodes: a task then fits a node, not the cluster.
    """

    __slots__ = ("busy", "cpus", "fewest", "idle")

    def __init__(self, workers: Iterable[WorkerRecord], resources: Resources | None = None) -> None:
        self.busy: dict[int, int] = {}
        self.idle: dict[int, int] = {}
        self.fewest: int | None = None  # the fewest busy workers of a node with an idle one (None: to count again)
        cpus = self.cpus = None if resources is None else {n: p.total["CPU"] - p.used["CPU"] for n, p in resources.pools.items()}
        for x in workers:
            if x.ready:
                counts = self.idle if x.inflight == 0 or x.blocked else self.busy
                counts[x.node] = counts.get(x.node, 0) + 1
            if cpus is not None and x.inflight and not x.blocked and x.alive and x.node in cpus:
                cpus[x.node] -= x.cpu_held

    def least_busy(self, node: int) -> bool:
        """Whether ``node`` has the fewest busy workers among the nodes with an idle one (SPREAD)."""
        busy = self.busy
        fewest = self.fewest
        if fewest is None:  # (counted once per change, not once per question: a pass asks it per worker and task)
            fewest = self.fewest = min((busy.get(n, 0) for n, k in self.idle.items() if k > 0), default=0)
        return busy.get(node, 0) <= fewest

    def took(self, w: WorkerRecord, cpu: float = 1.0) -> None:
        """``w`` (idle) takes a task that holds ``cpu`` CPUs."""
        if w.inflight == 0 or w.blocked:
            self.idle[w.node] = self.idle.get(w.node, 1) - 1
            self.busy[w.node] = self.busy.get(w.node, 0) + 1
            self.fewest = None
            if self.cpus is not None and not w.blocked and w.node in self.cpus:
                self.cpus[w.node] -= cpu
