"""The head's tasks: submitting, placing (see state.tasks for the rules), answers, retries, stealing, cancelling.

Tasks into a placement group's bundle (see head.groups) are placed as any task with needs of its own: the needs
are the group's names, which only the bundle's node offers.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...core.errors import TaskCancelledError
from ..events import TaskRetried
from ..state.commands import Kill
from ..state.groups import GroupStatus, group_in
from ..state.tasks import TaskQueue, TaskRecord
from ..state.workers import WorkerRecord
from ..strategies import label_selector, placement
from ..values import Blob, ObjectRef, error_blob, serialize, split_args
from .groups import GroupDirectory
from .lineage import Lineage
from .surplus import SurplusWorkers

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["TaskScheduler"]

_now = time.monotonic_ns

_REVOKE_PATIENCE = 1.0  # s a force cancel waits for the tasks queued behind its task to be given back


class TaskScheduler:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.lock = rt.lock
        self.new_id = rt.ids.new
        self.config = rt.config
        self.tasks: TaskQueue = rt.tasks
        self.objects = rt.objects
        self.outbox = rt.outbox
        self.steal_watch = False  # an idle worker and a busy one with tasks queued: look again soon
        self.queue_full_warned = False
        self.backpressure = False  # the workers were told the queue is full: their submitters wait
        self.room_waiters: list[tuple[WorkerRecord, int]] = []  # workers that asked for room (see on_room)
        rt.objects.on_ready[TaskRecord] = self._args_made
        self.lineage = Lineage(rt)
        self.surplus = SurplusWorkers(rt)  # workers beyond one a CPU while tasks wait in get
        self.groups = GroupDirectory(rt)  # placement groups: their bundles are reserved before any task is placed

    def _args_made(self, task: TaskRecord) -> None:
        if self.tasks.waiting.pop(task.task_id, None) is not None:  # not cancelled meanwhile
            self.tasks.push(task)
            self.dispatch()

    # -- submitting ------------------------------------------------------------------------

    def define(self, def_id: bytes, factory: Callable[[], Blob]) -> None:
        defs = self.rt.defs
        if def_id not in defs:
            blob = factory()
            with self.lock:
                defs.setdefault(def_id, blob)

    def submit(
        self, fn_id: bytes, factory: Callable[[], Blob], name: str, args: tuple, kwargs: dict, num_returns: int, options: dict
    ) -> list[ObjectRef]:
        rt = self.rt
        begin = _now() if rt.observed is not None else 0
        binding = self.groups.binding(options, name, 1.0)
        needs, strategy, where = (binding.needs, None, None) if binding is not None else self.placement_of(options, name)
        self.define(fn_id, factory)
        if self.tasks.full():
            self.wait_for_queue_room()
        args, kwargs, deps = split_args(args, kwargs)
        args_blob = serialize((args, kwargs), f"the arguments of {name}")
        result_ids = [self.new_id() for _ in range(num_returns)]
        refs = [ObjectRef(oid) for oid in result_ids]
        with self.lock:
            new = self.objects.table.new
            for oid in result_ids:
                new(oid)
            task = TaskRecord(self.new_id(), fn_id, name, args_blob, deps, result_ids, needs, self.config.default_task_retries)
            task.args_oid = self.objects.args_object(args_blob)
            task.set_retry_options(options)
            task.strategy, task.where = strategy, where
            if binding is not None and self.groups.removed(binding):  # (since binding() looked: it was not locked since)
                self.cancel_unsent(task, f"before it ran: its placement group {binding.group_id:024x} was removed")
                return refs
            self.groups.bound(task.task_id, binding)
            if begin and rt.observed is not None:
                rt.push((rt.seq(), "submitted", _now(), task.task_id, name, "task", task.task_id, 0, "driver", begin))
            self.enqueue(task)
        rt.receiver.assist()
        return refs

    def wait_for_queue_room(self) -> None:
        """Back-pressure: tasks are submitted faster than the workers run them; wait until the queue drains a bit."""
        if not self.queue_full_warned:
            self.queue_full_warned = True
            print(
                f"nexus: {len(self.tasks):,} tasks are waiting for a worker ({self.tasks.queued_bytes:,} bytes of arguments); "
                "submitting waits for the workers to catch up",
                file=sys.stderr,
            )
        while not self.tasks.drained_enough() and not self.rt.closing:
            self.rt.receiver.assist()
            time.sleep(0.001)

    def on_submit(
        self,
        w: WorkerRecord,
        fn_id: bytes,
        def_blob: Blob | None,
        name: str,
        args_blob: Blob,
        deps: list[int],
        result_ids: list[int],
        options: dict,
        trace: int = 0,
        parent: int = 0,
    ) -> None:
        rt = self.rt
        with self.lock:
            if def_blob is not None:
                rt.defs[fn_id] = def_blob
            for oid in result_ids:
                self.objects.made_by(w, oid)
            task = TaskRecord(self.new_id(), fn_id, name, args_blob, deps, result_ids, None, self.config.default_task_retries)
            task.args_oid = self.objects.args_object(args_blob, w)
            task.trace, task.parent = trace or task.task_id, parent
            rt.emit("submitted", task.task_id, name, "task", task.trace, parent, w.name, 0)
            task.set_retry_options(options)
            try:
                binding = self.groups.binding(options, name, 1.0, self.groups.inherited(w, parent))
                if binding is not None:
                    task.needs = binding.needs
                else:
                    task.needs, task.strategy, task.where = self.placement_of(options, name)
            except ValueError as exc:
                blob = error_blob(exc, "the driver")
                for oid in result_ids:
                    self.objects.store(oid, blob)
                self.objects.decref(task.args_oid)
                return
            self.groups.bound(task.task_id, binding)
            self.enqueue(task)

    def placement_of(self, options: dict, name: str) -> tuple[dict[str, float] | None, tuple[Any, ...] | None, Any]:
        """A task's needs, strategy and label selector from its options; ValueError if it can never run."""
        if not options:
            return None, None, None
        rt = self.rt
        where = label_selector(options.get("label_selector"), name)
        needs = rt.resources.needs_of(options, name, default_cpu=1.0, where=where)
        strategy = placement(options.get("scheduling_strategy"), name, rt.alive_nodes())
        if (strategy is not None or where is not None) and needs is None:
            needs = {"CPU": 1.0}  # placed on its own, never prefetched
        if strategy is not None and strategy[0] == "node" and not strategy[2] and needs is not None:
            pool = rt.resources.pools.get(strategy[1])
            if pool is not None and (not pool.can_ever_hold(needs) or (where is not None and not where(pool.labels))):
                raise ValueError(f"{name} can never run: node {strategy[1]:06x}, which it must run on, does not have what it needs")
        return needs, strategy, where

    def enqueue(self, task: TaskRecord) -> None:
        tasks = self.tasks
        if self.objects.table.hold(task.deps, task) == 0:  # else queued once they are made (_args_made)
            tasks.push(task)
            self.dispatch()
        else:
            tasks.waiting[task.task_id] = task
        config = self.config
        if not self.backpressure and (len(tasks.queue) >= config.max_queued_tasks or tasks.queued_bytes >= config.max_queued_bytes):
            self.tell_backpressure(True)

    def fail_stranded(self, node: int, why: str) -> None:
        """Queued tasks bound to ``node`` (a hard affinity) fail: it is gone (lock held); so do those that no node
        alive now could ever run (the one that could was ``node``)."""
        from ...core.errors import NexusError

        stranded = [
            t
            for t in self.tasks.queue
            if t.strategy is not None and t.strategy[0] == "node" and t.strategy[1] == node and not t.strategy[2]
        ]
        never = [t for t in self.tasks.never_fitting() if t not in stranded] if node not in self.rt.resources.pools else []
        groups = self.groups.groups
        never = [t for t in never if (g := groups.get(group_in(t.needs))) is None or g.state is GroupStatus.REMOVED]  # (others wait)
        for task in stranded + never:
            self.tasks.remove(task)
            if task in never:
                exc = NexusError(f"{task.name} can never run now: node {node:06x} {why}, and no other node has what it needs")
            else:
                exc = NexusError(f"{task.name} can never run: node {node:06x}, which it must run on, {why}")
            blob = error_blob(exc, "the driver")
            for oid in task.result_ids:
                self.objects.store(oid, blob)
            self.objects.decref(task.args_oid)

    def node_gone(self, node: int) -> None:
        """``node`` died or left (lock held): what it has leaves the pools; the placement groups' bundles it had are
        reserved again elsewhere, when they fit."""
        self.rt.resources.remove_node(node)
        self.groups.node_lost(node)

    def cancel_group(self, group_id: int, why: str) -> None:
        """The tasks in placement group ``group_id`` end (lock held): queued ones are cancelled, running ones are
        cancelled with their worker (it is killed, and replaced), so that nothing runs on what the group held."""
        tasks = self.tasks
        for task in [t for t in tasks.waiting.values() if group_in(t.needs) == group_id]:
            del tasks.waiting[task.task_id]
            self.cancel_unsent(task, f"before it ran: {why}")
        for task in [t for t in tasks.queue if group_in(t.needs) == group_id]:
            tasks.remove(task)
            self.cancel_unsent(task, f"before it ran: {why}")
        for task in [t for t in tasks.running.values() if group_in(t.needs) == group_id and t.worker is not None]:
            assert task.worker is not None
            task.cancelled = True
            cancelled = TaskCancelledError(f"task {task.name} was cancelled while it ran: {why} (its worker was killed)")
            blob = error_blob(cancelled, "the driver")
            for oid in task.result_ids:  # (first: what its worker's death then says is not stored over it)
                self.objects.store(oid, blob)
            self.lock.after(Kill(task.worker.link))

    def tell_backpressure(self, full: bool) -> None:
        """Tell every worker that the queue is full (its submitters wait, as one in the driver does) or has room."""
        self.backpressure = full
        for w in self.rt.every_worker_record():
            if w.ready:
                self.outbox.send(w, ("backpressure", full))

    # -- placing -------------------------------------------------------------------------------

    def dispatch(self) -> None:
        """Place queued tasks on workers (see TaskQueue.dispatch); with nothing queued, look for work to steal."""
        if self.rt.closing:
            return
        if self.groups.pending and self.rt.resources.freed:  # groups waiting for room, which may be free now: first
            self.groups.retry()
        placing = self.rt.actors_dir.placing
        if placing.pending:  # actors waiting for what they need: first, as it may be free now
            placing.retry()
        if self.tasks.queue:
            self.tasks.stack_on_blocked = not self.surplus.room()
            self.tasks.dispatch(self.rt.workers, time.monotonic(), self._send_task)
            if self.surplus.watch:
                self.surplus.check()
        else:
            self.steal()
        if (self.backpressure or self.room_waiters) and self.tasks.drained_enough():
            self.tell_backpressure(False)
            waiters, self.room_waiters = self.room_waiters, []
            for w, request in waiters:
                self.outbox.send(w, ("objects", request, [(0, None)]))

    def on_room(self, w: WorkerRecord, request: int) -> None:
        """A worker submitted its window of tasks (see ``submit_window``): answered once the queue has room."""
        with self.lock:
            if self.tasks.full() or self.room_waiters:
                self.room_waiters.append((w, request))
            else:
                self.outbox.send(w, ("objects", request, [(0, None)]))

    def submit_window(self) -> int:
        """Tasks a worker may submit before it asks for room: the queue's bound holds within a window per worker."""
        return max(1, self.config.max_queued_tasks // 10)

    def _send_task(self, w: WorkerRecord, task: TaskRecord) -> None:
        rt = self.rt
        if task.fn_id not in w.shipped:
            self.outbox.send(w, ("def", task.fn_id, rt.defs[task.fn_id]))
            w.shipped.add(task.fn_id)
        objects = self.objects
        deps, args_blob = objects.ship_args(w, task.deps, task.args_oid, task.args_blob)
        body: tuple[Any, ...] = ("task", task.task_id, task.fn_id, task.name, args_blob, deps, task.result_ids, task.trace)
        if w.blocked:  # (on top of the task that waits there: see head.surplus)
            body += (task.yields, True)
        elif task.yields is not None:
            body += (task.yields,)
        if task.max_calls:
            w.count_call(task.fn_id, task.max_calls)
        if w.blocked:
            self.outbox.flush(w)
            self.outbox.send(w, body)
        else:
            self.outbox.post(w, body, w.inflight - 1, after=2)  # one prefetched task always waits in the channel
        # the dependencies stay pinned until the task is done: it may be taken back and sent again

    def steal(self) -> None:
        """Work stealing: an idle worker takes the tasks queued behind a long one on a busy worker.

        Tasks still in the busy worker's outbox come back at once; those
        already in its channel are asked back (``revoke``): its monitor
        thread answers within a few ms with the ones that had not started,
        and they go to the front of the queue. Called with the lock held.
        """
        tasks = self.tasks
        if self.rt.closing:
            self.steal_watch = False
            return
        self.steal_watch, victims = tasks.steal_candidates(self.rt.workers, time.monotonic())
        for v in victims:
            back = [tasks.running[body[1]] for body in v.outbox if body[1] in tasks.running]
            for body in v.outbox:
                self.objects.unship(v, body)
            v.outbox.clear()
            for task in reversed(back):  # (each goes to the front of the queue: the first stays first)
                self._take_back(v, task)
            queued = tasks.queued_on(v)
            if len(queued) > 1:
                v.revoking = True
                self.outbox.send(v, ("revoke", queued))
        if tasks.queue:
            self.dispatch()

    # -- answers ---------------------------------------------------------------------------------

    def on_done(self, w: WorkerRecord, task_id: int, items: list[tuple[int, Blob]], timing: Any = None) -> None:
        rt = self.rt
        if timing is not None and rt.observed is not None:
            if w.remote and w.node != rt.node_id and rt.membership is not None:
                timing = _head_time(timing, rt.membership.get(w.node))
            rt.push((rt.seq(), "finished", timing[3], task_id, w.name, w.pid, *timing))
        tasks = self.tasks
        with self.lock:
            task = tasks.running.get(task_id)
            if task is not None and task.worker is w and self._retry_on_error(w, task, items):
                tasks.take_back(w, task)
                tasks.requeue_last(task)
                w.busy_since = time.monotonic()
                w.cpu_held = 1.0 if w.inflight else 0.0
                self.outbox.flush(w)
                self.dispatch()
                return
            store = self.objects.store
            for oid, blob in items:
                store(oid, blob, w)
            task = tasks.running.get(task_id)
            if task is not None and task.worker is w:
                self.finished(w, task, self.lineage.keep(w, task))
                if w.surplus and not w.inflight:
                    self.surplus.maybe_leave(w)
                if w.spent and not w.inflight:
                    self._leave_spent(w)
                if timing is not None:
                    tasks.took[task.fn_id] = (timing[3] - timing[0]) * 1e-9
            elif task is None and w.actor is not None:
                rt.actors_dir.lifetimes.call_done(w.actor, task_id)
            self.outbox.flush(w)
            self.dispatch()

    def _leave_spent(self, w: WorkerRecord) -> None:
        """``w`` ran a function's ``max_calls`` tasks (as Ray's, to free what a library keeps in the process, such
        as GPU memory): it exits, and a new worker takes its place (a joined node's own replaces it there)."""
        rt = self.rt
        if w not in rt.workers:
            return
        rt.workers.remove(w)  # (its exit is not replaced again: see worker_exited)
        with contextlib.suppress(Exception):
            rt.outbox.send(w, ("exit",))
        if w.surplus:
            self.surplus.started -= 1
        elif not w.remote and not rt.closing:
            rt.helper(rt.spawn, "task")

    def on_done_many(self, w: WorkerRecord, entries: list[tuple[int, list[tuple[int, Blob]], Any]]) -> None:
        """Answers a worker coalesced: calls that finished while more waited in its channel."""
        with self.lock:
            for task_id, items, timing in entries:
                self.on_done(w, task_id, items, timing)

    def finished(self, w: WorkerRecord, task: TaskRecord, kept: bool = False) -> None:
        """``task`` ended on ``w``; what it held goes, unless it is ``kept`` for lineage (see head.lineage)."""
        groups = self.groups
        if groups.lent:
            groups.reclaim(task_id=task.task_id)  # (before what it holds is released)
        self.tasks.finished(w, task, time.monotonic())
        if groups.captured:
            groups.captured.pop(task.task_id, None)
        if kept:
            return
        self.objects.unpin(task.deps)
        self.objects.decref(task.args_oid)
        task.args_oid = 0

    def _retry_on_error(self, w: WorkerRecord, task: TaskRecord, items: list[tuple[int, Blob]]) -> bool:
        """Whether a task that raised is retried (``retry_exceptions`` and retries left); counts the attempt."""
        if not task.retry_exceptions or task.retries == 0 or task.cancelled:
            return False
        failed = next((blob for _, blob in items if blob.error), None)
        if failed is None:
            return False
        from ..values import deserialize

        try:
            error = deserialize(failed)
        except Exception:
            return False
        exc = getattr(error, "exception", None)
        if isinstance(exc, TaskCancelledError):
            return False
        if task.retry_exceptions is not True and not (exc is not None and isinstance(exc, task.retry_exceptions)):
            return False
        for _, blob in items:
            if blob.region is not None and w.allocs.pop(blob.region[0], None) is not None:  # (not freed again if w dies)
                self.rt.store.free_for(w, *blob.region)
        self.count_retry(task, f"it raised {getattr(error, 'type_name', 'an exception')}")
        return True

    def count_retry(self, task: TaskRecord, reason: str) -> None:
        if self.groups.lent:
            self.groups.reclaim(task_id=task.task_id)  # (before it is taken back: what it holds is released then)
        self.rt.events.publish(TaskRetried(task.name, task.count_retry(), reason))

    def on_blocked(self, w: WorkerRecord, flag: bool) -> None:
        with self.lock:
            w.blocked = flag
            if flag:
                self.surplus.on_blocked(w)  # (what waits behind it goes to another worker)
                self.rt.resources.freed = True  # (its CPU is the node's meanwhile)
                self.groups.lend(w)  # (a task in a placement group lends its bundle's CPUs back meanwhile)
                self.outbox.flush(w)  # a worker blocked in get runs arriving tasks: let it have them
                self.dispatch()
            else:
                if self.groups.lent:
                    self.groups.reclaim(w)
                for v in [v for v in self.rt.workers if v.surplus and v.inflight == 0]:
                    self.surplus.maybe_leave(v)

    def on_revoked(self, w: WorkerRecord, task_ids: list[int]) -> None:
        tasks = self.tasks
        with self.lock:
            w.revoking = False
            for task_id in reversed(task_ids):  # appendleft: the first stays first
                task = tasks.running.get(task_id)
                if task is not None and task.worker is w:
                    self._take_back(w, task)
            if w.kill_pending:  # (a force cancel: see _force_cancel)
                w.kill_pending = False
                self.lock.after(Kill(w.link))
            self.dispatch()

    # -- cancelling ------------------------------------------------------------------------------

    def cancel(self, oid: int, force: bool = False, recursive: bool = True) -> bool:
        """Cancel the task that would produce ``oid``: drop it if queued, else interrupt it (``force``: kill its worker);
        with ``recursive``, the tasks it submitted too, and theirs (as Ray's). True when a task was found."""
        tasks = self.tasks
        with self.lock:
            every = [*tasks.waiting.values(), *tasks.queue, *tasks.running.values()]
            found = next((t for t in every if oid in t.result_ids), None)
            if found is None:  # an actor's call: dropped if it has not started (force is not for calls, as in Ray)
                if force and self.rt.actors_dir.cancel_queued(oid, drop=False) is not None:
                    raise ValueError("force=True kills a task's worker; cancel an actor's call without it (nexus.kill ends the actor)")
                return bool(self.rt.actors_dir.cancel_queued(oid))
            doomed = [found]
            if recursive:  # (one pass to index the children, then down the tree: cheap under the lock)
                children: dict[int, list[TaskRecord]] = {}
                for task in every:
                    if task.parent:
                        children.setdefault(task.parent, []).append(task)
                for task in doomed:  # (grows as it goes: breadth first)
                    doomed.extend(children.pop(task.task_id, ()))
            ids = {task.task_id for task in doomed}
            for task in tasks.remove_many(ids):
                self.cancel_unsent(task, "before it ran")
            if recursive:
                self._cancel_calls_made_by(ids)
            for task in doomed:
                if tasks.waiting.get(task.task_id) is task:  # still waiting for an argument: settled now, never queued
                    del tasks.waiting[task.task_id]
                    self.cancel_unsent(task, "while it waited for its arguments")
                elif tasks.running.get(task.task_id) is task and task.worker is not None and not task.cancelled:
                    if self._unsend(task):
                        continue
                    task.cancelled = True
                    if force:
                        self._force_cancel(task)
                    else:  # the worker drops it if it has not started, else raises TaskCancelledError in it
                        self.outbox.send(task.worker, ("cancel", task.task_id))
                        if task.worker.blocked:
                            self._settle_cancelled(task)
            self.dispatch()  # (which also tells submitters waiting for room that there is room again)
        return True

    def _unsend(self, task: TaskRecord) -> bool:
        """(lock held) Whether ``task`` was still held in its worker's outbox (not sent): then it is cancelled here.
        (A cancel sent to the worker would overtake it there, and find nothing to cancel.)"""
        w = task.worker
        assert w is not None
        body = next((b for b in w.outbox if b[0] == "task" and b[1] == task.task_id), None)
        if body is None:
            return False
        w.outbox.remove(body)
        self.objects.unship(w, body)
        task.cancelled = True
        self._take_back(w, task)
        return True

    def _take_back(self, w: WorkerRecord, task: TaskRecord) -> None:
        """(lock held) ``task``, sent to ``w``, did not start there: back to the queue, or, cancelled, settled."""
        self.tasks.take_back(w, task)
        if task.cancelled:  # (its worker was told, and another would run it)
            self.tasks.remove_many({task.task_id})
            self.cancel_unsent(task, "before it ran")

    def take_back_posted(self, w: WorkerRecord) -> None:
        """(lock held) The tasks held in ``w``'s outbox, not sent yet, come back to the queue."""
        tasks = self.tasks
        posted = [body for body in w.outbox if body[0] == "task" and body[1] in tasks.running]
        if posted:
            w.outbox[:] = [body for body in w.outbox if body not in posted]
            for body in reversed(posted):  # (each goes to the front of the queue: the first stays first)
                self.objects.unship(w, body)
                self._take_back(w, tasks.running[body[1]])

    def _force_cancel(self, task: TaskRecord) -> None:
        """(lock held) Kill the worker that runs ``task`` (its process: TaskCancelledError, and a new worker). The
        tasks queued behind it there, which have not started, are asked back first and go elsewhere: they are
        not lost with it (nor retried for it, at the cost of a retry they may not have); only those running on
        top of it (while it waits in a get) go down with it. One queued behind another is cancelled as without
        force: no process is killed for it."""
        w = task.worker
        assert w is not None
        if self.tasks.queued_on(w)[0] != task.task_id:  # queued there behind another (or run on top of one)
            self.outbox.send(w, ("cancel", task.task_id))  # (the worker drops it, or raises in it: the rest goes on)
            return
        w.retire()  # (nothing more is sent to it)
        self.take_back_posted(w)
        behind = [t for t in self.tasks.queued_on(w) if t != task.task_id]
        if not behind:
            self.lock.after(Kill(w.link))
            return
        w.kill_pending = True
        w.revoking = True
        self.outbox.send(w, ("revoke", behind))  # answered within ms by its monitor thread: see on_revoked

        def kill_anyway() -> None:  # (no answer: the worker is stuck where it cannot even answer)
            with self.lock:
                if w.kill_pending and w.alive:
                    w.kill_pending = False
                    self.lock.after(Kill(w.link))

        timer = threading.Timer(_REVOKE_PATIENCE, kill_anyway)
        timer.daemon = True
        timer.start()

    def _settle_cancelled(self, task: TaskRecord) -> None:
        """(lock held) A cancelled task whose worker waits in a get: it fails now, not when the worker gets back to it.

        The worker runs other tasks on top of one that waits, and the task may
        lie under some that wait for it (a chain of tasks, each getting the
        one before): it could not raise before they end, nor they before it
        does. Its answer, if one comes later, is dropped.
        """
        assert task.worker is not None
        self.finished(task.worker, task)
        blob = error_blob(TaskCancelledError(f"task {task.name} was cancelled while it waited in a get (nexus.cancel)"), "the driver")
        for result in task.result_ids:
            self.objects.store(result, blob)

    def _cancel_calls_made_by(self, ids: set[int]) -> None:
        """(lock held) The actor calls the tasks ``ids`` made: dropped if they have not begun (not their own calls)."""
        directory = self.rt.actors_dir
        for actor in directory.actors.values():
            queued = [c for c in actor.queue if c.parent in ids]
            for call in queued:
                actor.queue.remove(call)
                cancelled = TaskCancelledError(f"the call {actor.label}.{call.method} was cancelled before it ran, with its caller")
                directory._settle([call], error_blob(cancelled, "the driver"))
            sent = [c for c in actor.inflight.values() if c.parent in ids]
            if sent and actor.worker is not None:
                for call in sent:  # (its worker drops each unless it has begun)
                    self.outbox.send(actor.worker, ("cancel", call.call_id))
            if queued:
                directory.pump_calls(actor)

    def cancel_unsent(self, task: TaskRecord, when: str) -> None:
        task.cancelled = True
        if self.groups.captured:
            self.groups.captured.pop(task.task_id, None)
        blob = error_blob(TaskCancelledError(f"task {task.name} was cancelled {when}"), "the driver")
        for result in task.result_ids:
            self.objects.store(result, blob)
        self.objects.unpin(task.deps)
        self.objects.decref(task.args_oid)
        task.args_oid = 0


def _head_time(timing: Any, node: Any) -> Any:
    """A joined node's worker's timing (its host's monotonic clock) on the head's clock, so one timeline lines up."""
    if node is None or not node.mono_offset:
        return timing
    shift = node.mono_offset
    return (timing[0] + shift, timing[1] + shift, timing[2] + shift, timing[3] + shift, *timing[4:])
