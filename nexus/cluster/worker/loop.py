"""The loop of a worker process: it receives from the driver's channel and runs what arrives, in order."""

from __future__ import annotations

import itertools
import os
import select
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..config import ClusterConfig
from ..protocol import LogLimiter, Pump, pack
from ..state.ids import IdSpace
from ..transport import ChannelCorruptError, Connection
from ..values import deserialize, error_blob
from .actors import ActorHosting, _ActorHost
from .answers import HeldAnswers
from .client import WorkerClient, _Waiter
from .execution import _Unloadable

if TYPE_CHECKING:
    import asyncio

__all__ = ["WorkerRuntime"]

_NESTED_PATIENCE = 1.0  # s before a task here that was not sent to go on top of a waiting one runs there anyway


class WorkerRuntime(WorkerClient, ActorHosting):
    """The runtime of one worker process; also what ``nexus.get`` and ``.remote()`` use inside it.

    Its parts: ``WorkerClient`` (what user code calls), ``ActorHosting`` and
    ``TaskExecution`` (how what arrives runs) share its state; its answers go
    through the ``HeldAnswers`` it owns. This class receives and dispatches.
    """

    def __init__(self, conn: Connection, worker_id: int, kind: str, death_fd: int | None, config: ClusterConfig | None = None) -> None:
        # The driver's tunables: ``spin`` (how long the receiver polls before it parks), ``steal_after`` (a call or
        # task running longer lets the monitor thread receive for it: tasks queued behind it can be taken back for
        # an idle worker, and a get() on another thread of the task is answered), the ``hold_*`` of answers.
        self.config = config = config or ClusterConfig()
        self.spin = config.spin
        self.steal_after = config.steal_after
        self.conn = conn
        self.encode = getattr(conn, "encode", pack)  # a channel between hosts packs large buffers as frames of their own
        self.worker_id = worker_id
        self.kind = kind
        self.death_fd = death_fd
        self.where = f"worker-{worker_id} (pid {os.getpid()})"
        self.defs: dict[bytes, Any] = {}
        self.shipped: set[bytes] = set()
        self.actor: _ActorHost | None = None
        self.backlog: deque[tuple[Any, ...]] = deque()
        self.tasks: deque[tuple[Any, ...]] = deque()
        self.cancelled: set[int] = set()
        self.current_task = 0  # the task running on the main thread (innermost, when tasks nest in a get)
        self.in_pump = False  # the main thread is receiving: a cancellation must not interrupt that
        self.cancel_pending = False
        self.cancellable = 0  # > 0 while user code of a task runs on the main thread
        self.busy_call = False
        self.exiting = False
        self.main_thread = threading.main_thread()
        self.waiters: dict[int, _Waiter] = {}
        self.queue_full = False  # the driver's task queue is full: submitting waits for room (see submit_task)
        self.queue_room = _Waiter([])  # set when it has room again
        self.submit_window = 1 << 62  # tasks it may submit before it asks for room (the driver says at hello)
        self.submitted = 0  # tasks submitted since it last asked
        self.requests = itertools.count(1)
        # Ids this worker makes: its node's and its own number in each (see state.ids): unique in the cluster,
        # and across clusters (the node's number is drawn at random), so that a ref kept from an earlier cluster
        # never names an object of this one.
        self.id_space = IdSpace(int(os.environ.get("NEXUS_NODE_ID") or 1), worker_id)
        self.new_id = self.id_space.new
        self.send_lock = threading.Lock()
        self.pump = Pump(self._handle, self._bad)
        self.handlers = self._handlers()
        self.log = LogLimiter()
        self.main_ident = threading.main_thread().ident
        self.answers = HeldAnswers(conn, self, config)  # answers and ref changes not sent yet; they go before anything else
        # Receiving is a role: the main thread holds it while it receives; while a task or call runs longer
        # than steal_after, the monitor thread takes it (see _monitor).
        self.role = threading.Lock()
        self.task_lock = threading.Lock()  # taking the next task vs. the driver taking it back (revoke)
        self.running_since = 0.0
        self.blocked = False  # what the driver was last told (see _report_blocked)
        self.last_answered = 0  # the task answered last (see _next_task)
        self.parked_wake: Any = None  # while an async actor's loop is parked: wakes it (see send)
        self.thread_waiters = 0  # threads other than the main one waiting for an answer from the driver

    # -- plumbing --------------------------------------------------------------------

    def send(self, body: tuple[Any, ...]) -> None:
        answers = self.answers
        if answers.held or answers.ref_ops:
            with answers.held_lock:
                answers.flush_held()  # what was answered or counted before goes before what follows
        self.conn.send(self.encode(body))
        wake = self.parked_wake
        if wake is not None and threading.get_ident() == self.main_ident and not self.conn.park_begin():
            # An async actor's loop is parked on the channel and a coroutine sent this: on zmq, sending lets
            # the socket take in a message that arrived, and its descriptor (edge-triggered) says nothing more.
            wake(-2)

    def _bad(self, _key: Any, exc: Exception) -> None:
        if isinstance(exc, ChannelCorruptError):  # nothing more can be read from the driver: leave, to be replaced
            print(f"nexus {self.where}: {exc}; the worker exits", file=sys.stderr, flush=True)
            os._exit(1)
        self.log(f"nexus {self.where}: dropped a malformed message: {exc}")

    # -- the loop ----------------------------------------------------------------------

    def serve(self) -> None:
        self.send(("hello", self.worker_id, os.getpid()))
        extra = [self.death_fd] if self.death_fd is not None else []
        parent = os.getppid()
        answers = self.answers
        threading.Thread(target=self._monitor, name="nexus-monitor", daemon=True).start()
        while not self.exiting:
            if self.tasks:
                self._next_task()
                continue
            if self.actor is not None and self.actor.loop is not None:
                self.actor.loop.run_until_complete(self._serve_async(parent))
                continue
            if self.backlog and not self.busy_call:
                self._dispatch(self.backlog.popleft())
                continue
            if answers.ref_ops or answers.held:  # nothing left to run: what is held back goes now
                with answers.held_lock:
                    answers.flush_held()
            with self.role:
                self.in_pump = True
                try:
                    ready = self.pump.once([(0, self.conn)], extra, timeout=1.0, spin=self.spin)
                finally:
                    self.in_pump = False
            if ready or os.getppid() != parent:
                _driver_gone()

    async def _serve_async(self, parent: int) -> None:
        """The main loop of an ``async def`` actor's worker, run inside the actor's event loop.

        Receiving is one more coroutine: it drains the channel, starts each
        call as a task on this loop, lets the loop run, and parks on the
        channel's descriptor (with the loop's reader) when nothing came
        within the spin time. Calls start with no hand-over to another
        thread; the receive role is held only while draining, so a blocking
        ``get`` inside a call still receives for itself.
        """
        import asyncio

        loop = asyncio.get_running_loop()
        conns = [(0, self.conn)]
        extra = [self.death_fd] if self.death_fd is not None else []
        pause = asyncio.sleep
        answers = self.answers
        while not self.exiting:
            while self.backlog:
                # Started, then taken off: while it is started the backlog is not empty, so a call the monitor
                # receives meanwhile goes behind it (_on_call), not ahead of it. (Starting one only schedules it.)
                self._dispatch(self.backlog[0])
                self.backlog.popleft()
            if answers.ref_ops or answers.held:
                with answers.held_lock:
                    answers.flush_held()
            deadline = time.perf_counter() + self.spin
            got = 0
            while not got and not self.exiting:
                with self.role:
                    got = self.pump.drain(conns)
                # The calls just started, and any other coroutine that is ready, run here. Marked as a call
                # running: one that blocks the loop for long lets the monitor thread receive meanwhile.
                self.running_since = time.perf_counter()
                await pause(0)
                self.running_since = 0.0
                if time.perf_counter() >= deadline:
                    break
            if got or self.exiting or self.backlog:
                continue
            self.running_since = time.perf_counter()  # coroutines run while this waits, as above
            try:
                gone = await self._park(loop, extra)
            finally:
                self.running_since = 0.0
            if gone or os.getppid() != parent:
                _driver_gone()

    async def _park(self, loop: asyncio.AbstractEventLoop, extra: list[int]) -> bool:
        """Wait (at most a second) until the channel may hold a message; True if the driver is gone."""
        if not self.conn.park_begin():
            return False
        woken = loop.create_future()

        def ready(fd: int) -> None:
            if not woken.done():
                woken.set_result(fd)

        fds = [self.conn.fileno(), *extra]
        for fd in fds:
            loop.add_reader(fd, ready, fd)
        timer = loop.call_later(1.0, ready, -1)
        self.parked_wake = ready
        try:
            fd = await woken
        finally:
            self.parked_wake = None
            timer.cancel()
            for each in fds:
                loop.remove_reader(each)
            self.conn.park_end()
        return fd in extra

    def _handlers(self) -> dict[str, Callable[[tuple[Any, ...]], None]]:
        """What each message from the driver is handled by (its first element names the operation)."""
        return {
            "objects": self._on_objects,
            "def": self._on_def,
            "batch": self._on_batch,
            "exit": self._on_exit,
            "task": self.tasks.append,  # run after the channel is drained, so a cancel sent meanwhile is seen first
            "cancel": self._on_cancel,
            "revoke": lambda body: self._revoke(body[1]),
            "window": self._on_window,
            "backpressure": self._on_backpressure,
            "call": self._on_call,
            "create_actor": self.backlog.append,  # run by the main loop (see _on_call)
        }

    def _handle(self, _key: Any, body: tuple[Any, ...]) -> None:
        handler = self.handlers.get(body[0])
        if handler is None:
            self._bad(_key, ValueError(f"unknown operation {body[0]!r}"))
            return
        handler(body)

    def _on_def(self, body: tuple[Any, ...]) -> None:
        _, def_id, blob = body
        try:
            self.defs[def_id] = deserialize(blob)
        except Exception as exc:  # e.g. its module does not import here: every use of it fails with this
            self.defs[def_id] = _Unloadable(exc)

    def _on_batch(self, body: tuple[Any, ...]) -> None:
        """Calls or tasks the driver coalesced: queued, then run by the loop in order."""
        for item in body[1]:
            if item[0] == "task":
                self.tasks.append(item)
            elif item[0] == "call":
                self.backlog.append(item)
            else:
                self._handle(None, item)

    def _on_exit(self, _body: tuple[Any, ...]) -> None:
        self.exiting = True
        if threading.get_ident() != self.main_ident:
            # Received by the monitor for a main thread stuck in a long task or call (or a blocked event
            # loop): the driver is shutting down and waits for this process, so leave now.
            os._exit(0)

    def _on_cancel(self, body: tuple[Any, ...]) -> None:
        self.cancelled.add(body[1])
        host = self.actor
        running = host.running.get(body[1]) if host is not None else None
        if running is not None:  # an async call: cancelled in its loop
            running[0].call_soon_threadsafe(running[1].cancel)
        if body[1] == self.current_task and threading.get_ident() != self.main_ident:
            signal.pthread_kill(self.main_ident or 0, signal.SIGUSR1)  # interrupt it, even in a sleep

    def _on_call(self, body: tuple[Any, ...]) -> None:
        if not self.backlog and self.actor is not None and self.actor.concurrent:
            self._dispatch(body)  # to the actor's threads or event loop: it returns at once
        else:
            # Run by the main loop, never here: receiving must not hold the role while user code runs,
            # and one caller's calls run in order behind those already waiting.
            self.backlog.append(body)

    def _monitor(self) -> None:
        """Receive on behalf of a main thread busy with a long task or call (every few ms, while it lasts).

        Messages are only queued here (tasks, calls behind the running one,
        answers to waiters): nothing runs on this thread. It also notices the
        driver's death when the main thread is stuck in user code.
        """
        parent = os.getppid()
        watch = select.poll()
        if self.death_fd is not None:
            watch.register(self.death_fd, select.POLLIN)
        while not self.exiting:
            time.sleep(self.steal_after / 2)
            if os.getppid() != parent or watch.poll(0):  # the driver died, while user code may hold the main thread
                _driver_gone()
            since = self.running_since
            long_call = since and time.perf_counter() - since > self.steal_after
            if (long_call or self.thread_waiters) and self.role.acquire(blocking=False):
                try:
                    self.pump.drain([(0, self.conn)])
                except Exception as exc:  # never let the monitor die: the main thread still receives
                    self._bad(None, exc)
                finally:
                    self.role.release()
                wake, host = self.parked_wake, self.actor
                if wake is not None and self.backlog and host is not None and host.loop is not None:
                    host.loop.call_soon_threadsafe(wake, -2)  # an async actor's parked loop: run what came

    def _on_cancel_signal(self, _signum: int, _frame: Any) -> None:
        """SIGUSR1: the running task was cancelled; raise in it (later, if the main thread is receiving)."""
        if self.current_task and self.current_task in self.cancelled:
            if self.in_pump or not self.cancellable:
                self.cancel_pending = True
            else:
                self._raise_cancelled()

    def _raise_cancelled(self) -> None:
        from ...core.errors import TaskCancelledError

        self.cancel_pending = False
        raise TaskCancelledError(f"task {self.current_task:x} was cancelled while it ran (nexus.cancel)")

    def _revoke(self, task_ids: list[int]) -> None:
        """The driver takes back tasks queued here behind a long one (for an idle worker); answer which it got."""
        wanted = set(task_ids)
        with self.task_lock:
            taken = [body for body in self.tasks if body[1] in wanted]
            for body in taken:
                self.tasks.remove(body)
        self.send(("revoked", [body[1] for body in taken]))

    def _next_task(self, waiting_for: list[int] | None = None) -> None:
        with self.task_lock:
            if not self.tasks:
                return
            body = self.tasks.popleft() if waiting_for is None else self._nested(waiting_for)
        task_id = body[1]
        if task_id in self.cancelled:
            self.cancelled.discard(task_id)
            from ...core.errors import TaskCancelledError

            self._answer_error(task_id, body[6], TaskCancelledError(f"task {body[3]} was cancelled before it ran"))
            return
        try:
            self._dispatch(body)
        except BaseException as exc:
            # Not from the task's code (its outcome catches that) but from the worker's own around it, e.g. a
            # RecursionError with tasks nested very deep: answer the task with it rather than lose it (its caller
            # would wait for ever), unless it was answered already.
            if self.last_answered == task_id:
                raise
            self._answer_error(task_id, body[6], exc)
            if not isinstance(exc, Exception):
                raise

    def _runs_on_top(self, ids: list[int]) -> bool:
        """Whether a task here may run on top of one waiting for ``ids``: one that makes one of them, or one the
        head sent to go on top (``on_top``, the field after ``yields``: see head.surplus)."""
        wanted = set(ids)
        with self.task_lock:
            return any(not wanted.isdisjoint(body[6]) or (len(body) > 9 and body[9]) for body in self.tasks)

    def _nested(self, waiting_for: list[int]) -> tuple[Any, ...]:
        """What runs on top of a task blocked in a get of ``waiting_for``: the task that makes one of them if it is
        here, else one sent to go on top, else (after a long wait: see _wait) the one that came last."""
        wanted = set(waiting_for)
        for body in reversed(self.tasks):
            if not wanted.isdisjoint(body[6]):
                self.tasks.remove(body)
                return body
        for body in reversed(self.tasks):
            if len(body) > 9 and body[9]:
                self.tasks.remove(body)
                return body
        return self.tasks.pop()

    def _answer_error(self, task_id: int, result_ids: list[int], exc: BaseException) -> None:
        blob = error_blob(exc, self.where)
        self.send(("done", task_id, [(oid, blob) for oid in result_ids], None))

    def _dispatch(self, body: tuple[Any, ...]) -> None:
        op = body[0]
        if op == "task":
            outer = self.running_since
            self.running_since = time.perf_counter()
            try:
                self._run_task(*body[1:])
            finally:
                self.running_since = outer
        elif op == "call":
            self._call(*body[1:])
        elif op == "create_actor":
            self._create_actor(*body[1:])
        else:
            print(f"nexus {self.where}: unknown operation {op!r}", file=sys.stderr)

    # -- waiting for the driver's answer (to what user code asked, see WorkerClient) ---------------------

    def _wait(self, waiter: _Waiter, timeout: float | None, blocking: bool = True, told: bool = False) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        if threading.current_thread() is not self.main_thread:
            self.thread_waiters += 1  # the monitor receives for us if the main thread is busy
            try:
                waiter.event.wait(timeout)
            finally:
                self.thread_waiters -= 1
            return
        if not blocking:
            extra = [self.death_fd] if self.death_fd is not None else []
            while not waiter.event.is_set() and not self.exiting:
                with self.role:
                    gone = self.pump.once([(0, self.conn)], extra, 1.0)
                if gone:
                    _driver_gone()
            return
        if told:  # (the driver knows: it counts this worker blocked if the answer cannot come at once)
            self.blocked = True
        else:
            self._report_blocked(True, anew=True)
        patience = 0.0  # until when tasks here wait for the one that makes what this get waits for (see below)
        try:
            while not waiter.event.is_set() and not self.exiting:
                now = time.monotonic()
                left = None if deadline is None else deadline - now
                if left is not None and left <= 0:
                    return
                pause = min(left or 1.0, 1.0)
                if self.tasks:  # tasks that arrive while this one waits run on top of it: nested work never deadlocks
                    # Only the one this get waits for, or one the head sent to go on top: a task prefetched
                    # before is asked back for another worker (head.surplus), as it would hold this one up until
                    # it ends (and never end, if it waits for this one). Only if it stays does it run, late.
                    patience = patience or now + _NESTED_PATIENCE
                    if now >= patience or self._runs_on_top(waiter.ids):
                        self._next_task(waiter.ids)
                        self._report_blocked(True)  # waiting again (a nested wait that ended said otherwise)
                        patience = 0.0
                        continue
                    pause = min(pause, patience - now)
                extra = [self.death_fd] if self.death_fd is not None else []
                with self.role:
                    self.in_pump = True
                    try:
                        gone = self.pump.once([(0, self.conn)], extra, pause)
                    finally:
                        self.in_pump = False
                if gone:
                    _driver_gone()
                if self.current_task and self.current_task in self.cancelled and self.cancellable:
                    self._raise_cancelled()  # cancelled while it waited (perhaps while a nested task ran)
        finally:
            self._report_blocked(False)

    def _main_thread_waits(self) -> bool:
        return threading.current_thread() is self.main_thread

    def _report_blocked(self, flag: bool, anew: bool = False) -> None:
        """Tell the driver whether the main thread waits (it then counts no CPU here and sends tasks to run
        on top of the waiting one); only changes are sent, and each wait that begins (``anew``): a task run on
        top of a waiting one that waits in turn lends what it holds as well (a placement group's CPU)."""
        if self.blocked != flag or (anew and flag):
            self.blocked = flag
            self.send(("blocked", flag))


def _driver_gone() -> None:
    """The driver died without shutting us down: remove the cluster's files (nobody else will) and exit."""
    from ..shm_util import cluster_id, remove_cluster_files

    remove_cluster_files(cluster_id())
    os._exit(1)
