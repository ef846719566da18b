"""ThreadPoolDispatcher: worker threads with local run queues.

Design, driven by two facts measured on our 2-core machines: waking a parked
thread and handing it the GIL costs ~18 us (a lock ping-pong between two
threads is 36 us per round trip), while running an actor turn costs ~1 us.
So the dispatcher avoids wake-ups on the hot path:

- a turn scheduled *from a worker* goes to that worker's local queue and runs
  next on the same thread -- actor-to-actor messaging never wakes a thread;
- a turn scheduled from outside goes to the global queue and wakes one parked
  worker (or starts one, up to ``max_workers``);
- a thread about to block on a future whose actor has a pending turn may run
  that turn itself (``help``), so an ``ask`` from a plain thread needs no
  thread hop at all;
- a worker that blocks inside user code hands its local queue to the others:
  at once when it blocks in a Nexus wait, and through a monitor thread that
  notices a worker stuck in one turn (``time.sleep``, I/O) for ``stall_after``.
"""

from __future__ import annotations

import _thread
import collections
import logging
import os
import threading
from typing import Any, Callable

from . import _threadstate
from .dispatcher import DispatcherStatistics, TurnRunner
from .future import Future

__all__ = ["ThreadPoolDispatcher"]

_log = logging.getLogger("nexus.core.dispatch")

_GLOBAL_CHECK_EVERY = 61  # as Go's scheduler: look at the global queue now and then, for fairness


class _Worker:
    __slots__ = ("pool", "index", "local", "park", "ticks", "seen_ticks", "idle", "thread")

    def __init__(self, pool: ThreadPoolDispatcher, index: int) -> None:
        self.pool = pool
        self.index = index
        self.local: collections.deque[Callable[[], Any]] = collections.deque()
        self.park = _thread.allocate_lock()
        self.park.acquire()
        self.ticks = 0
        self.seen_ticks = -1
        self.idle = False
        self.thread: threading.Thread | None = None

    def hand_off(self) -> None:
        self.pool._hand_off(self)


class ThreadPoolDispatcher:
    """Runs actor turns on up to ``max_workers`` daemon threads, started on demand."""

    is_async = False

    def __init__(
        self,
        max_workers: int | None = None,
        throughput: int = 300,
        name: str = "nexus-worker",
        stall_after: float = 0.01,
    ) -> None:
        if max_workers is None:
            max_workers = max(4, 2 * (os.cpu_count() or 1))
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        if throughput < 1:
            raise ValueError(f"throughput must be at least 1 message per turn, got {throughput}")
        self.throughput = throughput
        self._max_workers = max_workers
        self._name = name
        self._stall_after = stall_after
        self._global: collections.deque[Callable[[], Any]] = collections.deque()
        self._mutex = threading.Lock()
        self._idle: list[_Worker] = []
        self._workers: list[_Worker] = []
        self._closed = False
        self._monitor: threading.Thread | None = None
        self._monitor_wake = threading.Event()
        self._monitor_parked = False  # guarded by _mutex; set while the monitor sleeps with every worker idle

    # ---- scheduling ------------------------------------------------------

    def schedule(self, runnable: Callable[[], Any]) -> None:
        worker = getattr(_threadstate.local, "worker", None)
        if worker is not None and worker.pool is self:
            worker.local.append(runnable)
            return
        self._global.append(runnable)
        if not (self._idle and self._wake_one()) and len(self._workers) < self._max_workers:
            self._grow()  # nobody idle to take it (or the idle one was taken meanwhile)

    def help(self, mailbox: TurnRunner, until: Future[Any], deadline: float | None = None) -> None:
        mailbox.run_inline(until, deadline)

    def _wake_one(self) -> bool:
        with self._mutex:
            if not self._idle:
                return False
            worker = self._idle.pop()
            worker.idle = False
            wake_monitor = self._monitor_parked
            self._monitor_parked = False
        worker.park.release()
        if wake_monitor:
            self._monitor_wake.set()
        return True

    def _grow(self) -> None:
        # Threads start under the mutex, so shutdown() never sees a listed thread that has not started.
        with self._mutex:
            if self._closed or len(self._workers) >= self._max_workers:
                return
            worker = _Worker(self, len(self._workers))
            thread = threading.Thread(target=self._work, args=(worker,), name=f"{self._name}-{worker.index}", daemon=True)
            worker.thread = thread
            thread.start()
            self._workers.append(worker)
            if self._monitor is None and self._stall_after > 0:
                self._monitor = threading.Thread(target=self._watch, name=f"{self._name}-monitor", daemon=True)
                self._monitor.start()
        self._monitor_wake.set()

    def _hand_off(self, worker: _Worker) -> None:
        """Move ``worker``'s local queue to the global one and wake helpers for it."""
        moved = 0
        local = worker.local
        while True:
            try:
                self._global.append(local.popleft())
            except IndexError:
                break
            moved += 1
        for _ in range(moved):
            if not self._wake_one():
                if len(self._workers) < self._max_workers:
                    self._grow()
                else:
                    break

    # ---- workers -----------------------------------------------------------

    def _next(self, worker: _Worker) -> Callable[[], Any] | None:
        local, glob = worker.local, self._global
        try:
            if glob and worker.ticks % _GLOBAL_CHECK_EVERY == 0:
                return glob.popleft()
            if local:
                return local.popleft()
            if glob:
                return glob.popleft()
        except IndexError:
            pass
        for other in self._workers:  # steal the oldest turn of a busy worker
            if other is not worker and other.local:
                try:
                    return other.local.popleft()
                except IndexError:
                    continue
        return None

    def _park(self, worker: _Worker) -> None:
        with self._mutex:
            if self._closed:
                return
            worker.idle = True
            self._idle.append(worker)
        # Re-check after announcing idleness: a producer that appended before
        # seeing us in ``_idle`` did not wake anyone.
        if self._global or worker.local:
            with self._mutex:
                if worker.idle:
                    worker.idle = False
                    self._idle.remove(worker)
                    wake_monitor = self._monitor_parked
                    self._monitor_parked = False
                else:
                    wake_monitor = None  # someone popped us from ``_idle`` and releases ``park``
            if wake_monitor is not None:
                if wake_monitor:
                    self._monitor_wake.set()  # a worker is busy again: the stall monitor must watch it
                return
        worker.park.acquire()

    def _work(self, worker: _Worker) -> None:
        _threadstate.local.worker = worker
        try:
            while not self._closed:
                runnable = self._next(worker)
                if runnable is None:
                    self._park(worker)
                    continue
                worker.ticks += 1
                try:
                    runnable()
                except BaseException:  # a runnable must never kill a worker
                    _log.exception("dispatcher %s: a scheduled turn raised", self._name)
        finally:
            _threadstate.local.worker = None

    # ---- stall monitor -----------------------------------------------------

    def _watch(self) -> None:
        while not self._closed:
            with self._mutex:
                parked = all(w.idle for w in self._workers) and not self._global
                if parked:
                    self._monitor_parked = True
                    self._monitor_wake.clear()
            if parked:
                self._monitor_wake.wait()  # until a worker is woken or started
                continue
            self._monitor_wake.wait(self._stall_after)
            self._monitor_wake.clear()
            for worker in list(self._workers):
                stuck = not worker.idle and worker.ticks == worker.seen_ticks
                worker.seen_ticks = worker.ticks
                if stuck and worker.local:
                    self._hand_off(worker)
            if self._global and not self._idle and len(self._workers) < self._max_workers:
                if all(not w.idle and w.ticks == w.seen_ticks for w in self._workers):
                    self._grow()

    # ---- lifecycle -----------------------------------------------------

    def shutdown(self, wait: bool = True) -> None:
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
            for worker in idle:
                worker.idle = False  # under the mutex: a parking worker must not look for itself in _idle
            workers = list(self._workers)
        for worker in idle:
            worker.park.release()
        self._monitor_wake.set()
        if wait:
            me = threading.current_thread()
            for worker in workers:
                if worker.thread is not None and worker.thread is not me:
                    worker.thread.join(timeout=5.0)
            if self._monitor is not None and self._monitor is not me:
                self._monitor.join(timeout=5.0)

    def statistics(self) -> DispatcherStatistics:
        queued = len(self._global) + sum(len(w.local) for w in self._workers)
        turns = sum(w.ticks for w in self._workers)
        return DispatcherStatistics("thread-pool", len(self._workers), len(self._idle), queued, turns)

    def __repr__(self) -> str:
        return f"ThreadPoolDispatcher(max_workers={self._max_workers}, throughput={self.throughput})"
