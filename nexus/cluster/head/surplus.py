"""Task workers beyond one a CPU, while tasks wait in ``get`` (as Ray starts more workers then).

A task blocked in ``get`` lends its CPU. Its worker runs on top of it the
tasks it waits for (what the tasks it runs submitted: ``TaskQueue.take_nested``),
but a task of the queue that is not one of those must not run there: it
would lie over the waiting one until it ends, and if it waits for that one
(a chain of tasks, each getting the one before) neither ever ends. So while
the local workers that run (not blocked) are fewer than the CPUs and tasks
are queued, a surplus worker starts and takes them; the tasks prefetched
behind the blocked one are asked back for it. A surplus worker leaves once it
is idle and the CPUs are all taken again. With ``surplus_workers`` of them
already started (or on a joined node's workers), queued tasks go on top of a
waiting one as before: nested work never deadlocks for want of a process.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..state.workers import WorkerRecord
    from .runtime import Runtime

__all__ = ["SurplusWorkers"]


class SurplusWorkers:
    """Part of the head's task scheduler (``scheduler.surplus``); every method is called with the lock held."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.starting = 0  # surplus workers started that have not said hello yet
        self.started = 0  # surplus workers alive (started, not gone)
        self.watch = False  # a worker blocked since the last check found none: check() looks (else it costs nothing)

    def room(self) -> bool:
        """Whether another surplus worker may start (then nothing is stacked on a waiting task)."""
        return self.started < self.rt.config.surplus_workers

    def on_blocked(self, w: WorkerRecord) -> None:
        """``w`` waits in a get: the tasks prefetched behind the waiting one come back (for another worker, or to
        go on top of it, sent as such, when no surplus worker may start)."""
        self.watch = True
        tasks = self.rt.tasks
        self.rt.scheduler.take_back_posted(w)  # (not sent yet: they come back at once)
        queued = tasks.queued_on(w)
        if len(queued) > 1 and not w.revoking:
            w.revoking = True
            self.rt.outbox.send(w, ("revoke", queued))

    def check(self) -> None:
        """After a dispatch: start a surplus worker if tasks are queued while lent CPUs stand idle."""
        rt = self.rt
        if not rt.tasks.queue or rt.closing or not self.room() or self.starting:
            return
        local = [w for w in rt.workers if not w.remote and w.alive]
        if not any(w.blocked for w in local):
            self.watch = False  # (until a worker blocks again)
            return
        running = sum(1 for w in local if not w.blocked)
        if running >= rt.num_cpus:
            return
        if any(w.ready and w.inflight == 0 for w in local):
            return  # (an idle worker takes them at the next dispatch)
        self.starting += 1
        self.started += 1
        rt.helper(self._start)

    def _start(self) -> None:
        rt = self.rt
        try:
            w = rt.spawn("task")
            w.surplus = True
            ok = rt.wait_started(w, rt.config.worker_start_timeout)
        except Exception:
            ok, w = False, None
        with rt.lock:
            self.starting -= 1
            if w is None or not ok:
                self.started -= 1
            rt.scheduler.dispatch()

    def maybe_leave(self, w: WorkerRecord) -> None:
        """``w`` has nothing to run: a surplus worker leaves if the CPUs are taken without it."""
        if not w.surplus or w.inflight or w.blocked or w.actor is not None or self.rt.tasks.queue:
            return
        if self.rt.actors_dir.lifetimes.owned.get(w.worker_id):
            return  # (the actors its tasks made end with it: it stays)
        rt = self.rt
        running = sum(1 for v in rt.workers if not v.remote and v.alive and not v.blocked and v is not w)
        if running < rt.num_cpus and any(v.blocked for v in rt.workers if not v.remote):
            return  # (still lent: it may be wanted again at once)
        rt.workers.remove(w)  # (no task goes to it from now on; its exit is not replaced: see worker_exited)
        self.started -= 1
        with contextlib.suppress(Exception):
            rt.outbox.send(w, ("exit",))
