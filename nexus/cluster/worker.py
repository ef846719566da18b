"""A worker process: runs tasks, or hosts one actor, for the driver that started it.

Started as ``python -m nexus.cluster.worker <worker-id> <kind> <bootstrap-fd> <death-fd>``
by the driver, never forked from it (a notebook kernel has threads); the
channel to attach to (with its secrets) arrives on the inherited bootstrap
pipe, never on the command line, which every local user can read. The
main thread receives from the driver's channel and runs what arrives; a task
or method that calls ``get`` keeps receiving while it waits, runs tasks that
arrive meanwhile on top of its stack (so nested work never deadlocks a small
pool) and queues actor calls until the current one returns (so an actor
never runs two calls at once unless ``max_concurrency`` says so). The
worker exits when the driver says so, or when the driver dies (the read end
of a pipe only the driver holds becomes readable).
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import itertools
import os
import secrets
import select
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NoReturn

from ..core.errors import NexusError
from . import context
from .protocol import SPIN_SECONDS, LogLimiter, Pump, pack
from .store import Arena, Pin
from .transport import ChannelCorruptError, ChannelSpec, Connection, load_transport
from .values import (
    Blob,
    ObjectRef,
    StoreClient,
    current_client,
    deserialize,
    error_blob,
    join_args,
    serialize,
    set_client,
    split_args,
)

if TYPE_CHECKING:
    import asyncio

__all__ = ["WorkerRuntime", "main"]

_now = time.monotonic_ns
_trace_context: contextvars.ContextVar[tuple[int, int]] = contextvars.ContextVar("nexus_trace", default=(0, 0))
"""(trace, span) of the task or call running in this context: what work it submits is part of that trace."""

WORKER_SPIN = SPIN_SECONDS
STEAL_AFTER = 0.01
"""A call or task running longer than this lets the monitor thread receive for it: tasks queued behind it
can be taken back by the driver for an idle worker, and a get() on another thread of the task is answered."""
HOLD_UNDER = 100e-6
"""An answer is held back (to go with the next ones in one message) only after a call this quick, before one
expected to be as quick (its function or method took less than this last time)."""
HOLD_MAX = 64
HOLD_AGE = 1e-3
"""Answers are never held much longer than this past the first of them."""


class _Waiter:
    __slots__ = ("event", "ids", "results")

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids
        self.results: dict[int, Blob] = {}
        self.event = threading.Event()


def _set_policy(batch: bool) -> None:
    """Put the calling thread under ``SCHED_BATCH`` (or back to the normal policy).

    A worker's receiving thread runs under SCHED_BATCH: when the driver
    wakes a parked worker, the worker takes the next free core instead of
    preempting the driver on its own. On a host with more busy processes
    than cores (calls spread over several actors, tasks submitted from
    several threads), every wake-up otherwise cost the driver 50-130 µs of
    its core, and 1:n actor calls ran 1.6x slower. With a core free the
    worker runs at once either way. Threads that run an actor's calls
    handed over by the receiving thread (a thread pool) keep the normal
    policy: the hand-over must preempt the spinning receiver. Other threads
    started in the worker, and processes started by tasks, inherit the
    policy (they still get their fair share of CPU; they just do not preempt
    on waking). ``NEXUS_SCHED_BATCH=0`` turns this off.
    """
    if hasattr(os, "SCHED_BATCH"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_BATCH if batch else os.SCHED_OTHER, os.sched_param(0))


class _ActorHost:
    def __init__(self, actor_id: int, instance: Any, max_concurrency: int, is_async: bool) -> None:
        self.actor_id = actor_id
        self.instance = instance
        self.is_async = is_async
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pool: ThreadPoolExecutor | None = None
        self.semaphore: asyncio.Semaphore | None = None
        self.concurrent = is_async or max_concurrency > 1  # calls run on threads or an event loop
        if is_async:
            import asyncio  # only here: a worker that hosts no async actor starts ~15 ms sooner without it

            # Run by the worker's main thread, which also receives (WorkerRuntime._serve_async): a call
            # starts without a hand-over to another thread.
            self.loop = asyncio.new_event_loop()
            self.semaphore = asyncio.Semaphore(max_concurrency)
        elif max_concurrency > 1:
            self.pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="nexus-actor", initializer=_set_policy, initargs=(False,))


class WorkerRuntime:
    """The runtime of one worker process; also what ``nexus.get`` and ``.remote()`` use inside it."""

    def __init__(self, conn: Connection, worker_id: int, kind: str, death_fd: int | None) -> None:
        self.conn = conn
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
        self.requests = itertools.count(1)
        self.ids = itertools.count(1)
        # Ids this worker makes: unique in the cluster (its index) and across clusters (a random salt), so that
        # a ref kept from an earlier cluster never names an object of this one.
        self.id_base = (secrets.randbits(15) + 1) << 48 | (worker_id + 1) << 32
        self.send_lock = threading.Lock()
        self.pump = Pump(self._handle, self._bad)
        self.log = LogLimiter()
        # Ref and pin changes (oid, dref, dpin), in the order they happened; they go to the driver before
        # anything else this process sends (a ref received in a value is counted before the value is let go).
        self.ref_ops: deque[tuple[int, int, int]] = deque()
        self.main_ident = threading.main_thread().ident
        self.held: list[tuple[str, Any]] = []  # answers ("d") and ref changes ("r") waiting to go, in order
        self.held_answers = 0
        self.held_since = 0.0
        self.held_lock = threading.Lock()
        self.held_cond = threading.Condition(self.held_lock)
        self.watchdog: threading.Thread | None = None
        # Receiving is a role: the main thread holds it while it receives; while a task or call runs longer
        # than STEAL_AFTER, the monitor thread takes it (see _monitor).
        self.role = threading.Lock()
        self.task_lock = threading.Lock()  # taking the next task vs. the driver taking it back (revoke)
        self.running_since = 0.0
        self.blocked = False  # what the driver was last told (see _report_blocked)
        self.last_answered = 0  # the task answered last (see _next_task)
        self.parked_wake: Any = None  # while an async actor's loop is parked: wakes it (see send)
        self.thread_waiters = 0  # threads other than the main one waiting for an answer from the driver
        self.durations: dict[Any, float] = {}  # how long each function or method took last time

    # -- plumbing --------------------------------------------------------------------

    def send(self, body: tuple[Any, ...]) -> None:
        if self.held or self.ref_ops:
            with self.held_lock:
                self._flush_held()  # what was answered or counted before goes before what follows
        self.conn.send(pack(body))
        wake = self.parked_wake
        if wake is not None and threading.get_ident() == self.main_ident and not self.conn.park_begin():
            # An async actor's loop is parked on the channel and a coroutine sent this: on zmq, sending lets
            # the socket take in a message that arrived, and its descriptor (edge-triggered) says nothing more.
            wake(-2)

    def _absorb_ref_ops(self) -> None:
        """Move the ref changes made so far into the held sequence, after the answers held before them."""
        pop = self.ref_ops.popleft
        held = self.held
        try:
            while True:
                held.append(("r", pop()))
        except IndexError:
            pass

    def _answer(self, call_id: int, items: list[tuple[int, Blob]], key: Any, took: float, timing: Any = None) -> None:
        """Send the results of a call or task, or hold them to go with the next answers in one message.

        Held only when this call was quick and the next one waiting here is
        expected to be quick too (its function or method was last time); held
        answers go out with the next answer that is not held, and in any case
        within about ``HOLD_AGE`` (a watchdog thread sends them when the call
        now running turns out slow). Ref changes keep their place among held
        answers: a ref released after an answer holding it was made goes after it.
        """
        self.durations[key] = took
        with self.held_lock:
            self._absorb_ref_ops()
            self.held.append(("d", (call_id, items, timing)))
            self.held_answers += 1
            if took < HOLD_UNDER and self.held_answers < HOLD_MAX and self._next_is_quick():
                now = time.perf_counter()
                if self.held_answers == 1:
                    self.held_since = now
                    self._start_watchdog()
                    self.held_cond.notify()
                    return
                if now - self.held_since < HOLD_AGE:
                    return
            self._flush_held()

    def _next_is_quick(self) -> bool:
        try:  # the monitor thread may take tasks away meanwhile (a revoke)
            if self.tasks:
                key = self.tasks[0][2]
            elif self.backlog and self.backlog[0][0] == "call":
                key = self.backlog[0][3]
            else:
                return False
        except IndexError:
            return False
        took = self.durations.get(key)
        return took is not None and took < HOLD_UNDER

    def _flush_held(self) -> None:
        """Send held answers and ref changes in their order (with ``held_lock`` held, so that nothing overtakes them)."""
        self._absorb_ref_ops()
        entries, self.held = self.held, []
        self.held_answers = 0
        run: list[Any] = []
        kind = ""
        for entry_kind, entry in entries:
            if entry_kind != kind and run:
                self._send_run(kind, run)
                run = []
            kind = entry_kind
            run.append(entry)
        if run:
            self._send_run(kind, run)

    def _send_run(self, kind: str, run: list[Any]) -> None:
        if kind == "r":
            self.conn.send(pack(("refs", run)))
        elif len(run) == 1:
            self.conn.send(pack(("done", *run[0])))
        else:
            self.conn.send(pack(("done_many", run)))

    def _start_watchdog(self) -> None:
        if self.watchdog is None:
            self.watchdog = threading.Thread(target=self._watch_held, name="nexus-answers", daemon=True)
            self.watchdog.start()

    def _watch_held(self) -> None:
        with self.held_lock:
            while not self.exiting:
                if not self.held:
                    self.held_cond.wait()
                    continue
                late = self.held_since + HOLD_AGE - time.perf_counter()
                if late > 0:
                    self.held_cond.wait(late)
                    continue
                with contextlib.suppress(Exception):
                    self._flush_held()

    def _bad(self, _key: Any, exc: Exception) -> None:
        if isinstance(exc, ChannelCorruptError):  # nothing more can be read from the driver: leave, to be replaced
            print(f"nexus {self.where}: {exc}; the worker exits", file=sys.stderr, flush=True)
            os._exit(1)
        self.log(f"nexus {self.where}: dropped a malformed message: {exc}")

    def new_id(self) -> int:
        return self.id_base | next(self.ids)

    def ref_op(self, oid: int, dref: int, dpin: int) -> None:
        """Count a ref or pin change (from any thread, finalizers included: a deque append needs no lock)."""
        self.ref_ops.append((oid, dref, dpin))

    # -- the loop ----------------------------------------------------------------------

    def serve(self) -> None:
        self.send(("hello", self.worker_id, os.getpid()))
        extra = [self.death_fd] if self.death_fd is not None else []
        parent = os.getppid()
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
            if self.ref_ops or self.held:  # nothing left to run: what is held back goes now
                with self.held_lock:
                    self._flush_held()
            with self.role:
                self.in_pump = True
                try:
                    ready = self.pump.once([(0, self.conn)], extra, timeout=1.0, spin=WORKER_SPIN)
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
        while not self.exiting:
            while self.backlog:
                self._dispatch(self.backlog.popleft())
            if self.ref_ops or self.held:
                with self.held_lock:
                    self._flush_held()
            deadline = time.perf_counter() + WORKER_SPIN
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

    def _handle(self, _key: Any, body: tuple[Any, ...]) -> None:
        op = body[0]
        if op == "objects":
            _, request, items = body
            waiter = self.waiters.get(request)
            if waiter is not None:
                waiter.results.update(items)
                waiter.event.set()
        elif op == "def":
            _, def_id, blob = body
            try:
                self.defs[def_id] = deserialize(blob)
            except Exception as exc:  # e.g. its module does not import here: every use of it fails with this
                self.defs[def_id] = _Unloadable(exc)
        elif op == "batch":  # calls or tasks the driver coalesced: queued, then run by the loop in order
            for item in body[1]:
                if item[0] == "task":
                    self.tasks.append(item)
                elif item[0] == "call":
                    self.backlog.append(item)
                else:
                    self._handle(_key, item)
        elif op == "exit":
            self.exiting = True
            if threading.get_ident() != self.main_ident:
                # Received by the monitor for a main thread stuck in a long task or call (or a blocked event
                # loop): the driver is shutting down and waits for this process, so leave now.
                os._exit(0)
        elif op == "task":
            self.tasks.append(body)  # run after the channel is drained, so a cancel sent meanwhile is seen first
        elif op == "cancel":
            self.cancelled.add(body[1])
            if body[1] == self.current_task and threading.get_ident() != self.main_ident:
                signal.pthread_kill(self.main_ident or 0, signal.SIGUSR1)  # interrupt it, even in a sleep
        elif op == "revoke":
            self._revoke(body[1])
        elif op == "call" and not self.backlog and self.actor is not None and self.actor.concurrent:
            self._dispatch(body)  # to the actor's threads or event loop: it returns at once
        elif op in ("call", "create_actor"):
            # Run by the main loop, never here: receiving must not hold the role while user code runs,
            # and one caller's calls run in order behind those already waiting.
            self.backlog.append(body)
        else:
            self._dispatch(body)

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
            time.sleep(STEAL_AFTER / 2)
            if os.getppid() != parent or watch.poll(0):  # the driver died, while user code may hold the main thread
                _driver_gone()
            since = self.running_since
            long_call = since and time.perf_counter() - since > STEAL_AFTER
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
        from ..core.errors import TaskCancelledError

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

    def _next_task(self) -> None:
        with self.task_lock:
            if not self.tasks:
                return
            body = self.tasks.popleft()
        task_id = body[1]
        if task_id in self.cancelled:
            self.cancelled.discard(task_id)
            from ..core.errors import TaskCancelledError

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

    # -- tasks ------------------------------------------------------------------------------

    def _arguments(self, args_blob: Blob, deps: list[tuple[int, Blob]]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        args, kwargs = deserialize(args_blob)
        values = []
        for _, blob in deps:
            if blob.error:
                raise _DependencyFailed(blob)
            values.append(deserialize(blob))
        return join_args(args, kwargs, values)

    def _results(self, value: Any, result_ids: list[int], name: str) -> list[tuple[int, Blob]]:
        if len(result_ids) == 1:
            return [(result_ids[0], serialize(value, f"the result of {name}"))]
        values = list(value) if isinstance(value, (tuple, list)) else None
        if values is None or len(values) != len(result_ids):
            raise ValueError(f"{name} has num_returns={len(result_ids)} but returned {type(value).__name__} {value!r:.60}")
        items: list[tuple[int, Blob]] = []
        try:
            for oid, v in zip(result_ids, values, strict=True):
                items.append((oid, serialize(v, f"a result of {name}")))
        except BaseException:
            _give_back([blob for _, blob in items])  # the call fails as a whole: regions of the others come back
            raise
        return items

    def _outcome(
        self, fn: Any, name: str, args_blob: Blob, deps: list[tuple[int, Blob]], result_ids: list[int]
    ) -> tuple[list[tuple[int, Blob]], Any, tuple[int, int, int, int, bool]]:
        """The results (serialized), the value itself, and when it ran (start, arguments read, returned, results
        made; monotonic ns; ok). Keep the value until the results are sent, so that refs inside it are
        released only after the message holding them."""
        main = threading.get_ident() == self.main_ident
        start = ready = ran = _now()
        try:
            args, kwargs = self._arguments(args_blob, deps)
            ready = _now()
            if main:
                self.cancellable += 1
            try:
                value = fn(*args, **kwargs)
            finally:
                if main:
                    self.cancellable -= 1
            ran = _now()
            return self._results(value, result_ids, name), value, (start, ready, ran, _now(), True)
        except _DependencyFailed as failed:
            return [(oid, failed.blob) for oid in result_ids], None, (start, ready, ready, _now(), False)
        except BaseException as exc:  # the task's failure is its result
            if isinstance(exc, (KeyboardInterrupt, SystemExit)) and self.exiting:
                raise
            if isinstance(exc, SystemExit):
                self._exit_for_user_code(exc, name)
            blob = error_blob(exc, self.where)
            ran = max(ran, ready)
            return [(oid, blob) for oid in result_ids], None, (start, ready, ran, _now(), False)

    def _run_task(
        self,
        task_id: int,
        fn_id: bytes,
        name: str,
        args_blob: Blob,
        deps: list[tuple[int, Blob]],
        result_ids: list[int],
        trace: int = 0,
    ) -> None:
        fn = self.defs.get(fn_id)
        start = time.perf_counter()
        outer, self.current_task = self.current_task, task_id
        context_token = _trace_context.set((trace or task_id, task_id))
        timing: Any = None
        try:
            if fn is None:
                blob = error_blob(NexusError(f"worker has no definition of {name}"), self.where)
                items = [(oid, blob) for oid in result_ids]
            else:
                items, _value, timing = self._outcome(fn, name, args_blob, deps, result_ids)
        finally:
            _trace_context.reset(context_token)
            self.current_task = outer
            self.cancelled.discard(task_id)
        self.last_answered = task_id
        if threading.get_ident() == self.main_ident:
            self._answer(task_id, items, fn_id, time.perf_counter() - start, timing)
        else:
            self.send(("done", task_id, items, timing))

    # -- actors ------------------------------------------------------------------------------

    def _create_actor(
        self, actor_id: int, cls_id: bytes, name: str, args_blob: Blob, deps: list[tuple[int, Blob]], options: dict
    ) -> None:
        cls = self.defs.get(cls_id)
        try:
            if cls is None:
                raise NexusError(f"worker has no definition of {name}")
            args, kwargs = self._arguments(args_blob, deps)
            instance = cls(*args, **kwargs)
            is_async = any(inspect.iscoroutinefunction(getattr(cls, m, None)) for m in dir(cls) if not m.startswith("__"))
            concurrency = options.get("max_concurrency") or (1000 if is_async else 1)
            self.actor = _ActorHost(actor_id, instance, concurrency, is_async)
            sequential = self.actor.loop is None and self.actor.pool is None
            self.send(("actor_ready", actor_id, None, sequential, concurrency))
        except _DependencyFailed as failed:
            self.send(("actor_ready", actor_id, failed.blob))
        except BaseException as exc:
            if isinstance(exc, SystemExit):
                self._exit_for_user_code(exc, f"the constructor of {name}")
            self.send(("actor_ready", actor_id, error_blob(exc, self.where)))

    def _exit_for_user_code(self, exc: SystemExit, what: str) -> NoReturn:
        """``sys.exit()`` in user code: this worker process exits, as a Ray worker does.

        The driver sees a worker die: a task is retried per ``max_retries``
        (then fails with WorkerCrashedError), an actor restarts per
        ``max_restarts``. Answers held back for earlier calls go first.
        """
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        print(f"nexus {self.where}: {what} called sys.exit({exc.code!r}); the worker process exits", file=sys.stderr, flush=True)
        if self.held_lock.acquire(timeout=1.0):
            try:
                self._flush_held()
            except Exception:
                pass
            finally:
                self.held_lock.release()
        os._exit(code)

    def _call(
        self,
        actor_id: int,
        call_id: int,
        method: str,
        args_blob: Blob,
        deps: list[tuple[int, Blob]],
        result_ids: list[int],
        trace: int = 0,
    ) -> None:
        host = self.actor
        if host is None or host.actor_id != actor_id:
            blob = error_blob(NexusError(f"actor {actor_id:x} does not live in {self.where}"), self.where)
            if result_ids:
                self.send(("done", call_id, [(oid, blob) for oid in result_ids], None))
            return
        context = (trace or call_id, call_id)
        bound = getattr(host.instance, method, None)
        name = f"{type(host.instance).__qualname__}.{method}"
        if bound is None:
            bound = _missing(type(host.instance).__qualname__, method)
        if host.loop is not None:
            self._call_async(host, bound, name, call_id, args_blob, deps, result_ids, context)
        elif host.pool is not None:
            host.pool.submit(self._finish_call, bound, name, call_id, args_blob, deps, result_ids, None, context)
        else:
            self.busy_call = True
            try:
                start = self.running_since = time.perf_counter()
                self._finish_call(bound, name, call_id, args_blob, deps, result_ids, (method, start), context)
            finally:
                self.busy_call = False
                self.running_since = 0.0

    def _finish_call(
        self,
        bound: Any,
        name: str,
        call_id: int,
        args_blob: Blob,
        deps: list,
        result_ids: list[int],
        timed: Any = None,
        context: tuple[int, int] = (0, 0),
    ) -> None:
        token = _trace_context.set(context)
        try:
            items, _value, timing = self._outcome(bound, name, args_blob, deps, result_ids or [0])
        finally:
            _trace_context.reset(token)
        if result_ids:
            if timed is not None:  # a sequential actor's call, on the main thread: (method, start)
                self._answer(call_id, items, timed[0], time.perf_counter() - timed[1], timing)
            else:
                self.send(("done", call_id, items, timing))
        elif items[0][1].error:
            print(f"nexus {self.where}: {name} (a tell) failed:\n{deserialize(items[0][1]).traceback_text}", file=sys.stderr)

    def _call_async(
        self,
        host: _ActorHost,
        bound: Any,
        name: str,
        call_id: int,
        args_blob: Blob,
        deps: list,
        result_ids: list[int],
        context: tuple[int, int] = (0, 0),
    ) -> None:
        async def run() -> None:
            assert host.semaphore is not None
            _trace_context.set(context)  # this coroutine's own context
            start = ready = ran = _now()
            ok = False
            async with host.semaphore:
                try:
                    args, kwargs = self._arguments(args_blob, deps)
                    ready = _now()
                    value = bound(*args, **kwargs)
                    if inspect.isawaitable(value):
                        value = await value
                    ran = _now()
                    items = self._results(value, result_ids or [0], name)
                    ok = True
                except _DependencyFailed as failed:
                    items = [(oid, failed.blob) for oid in result_ids or [0]]
                except BaseException as exc:
                    if isinstance(exc, SystemExit):
                        self._exit_for_user_code(exc, name)
                    blob = error_blob(exc, self.where)
                    items = [(oid, blob) for oid in result_ids or [0]]
            if result_ids:
                self.send(("done", call_id, items, (start, ready, max(ran, ready), _now(), ok)))
            elif not ok and items[0][1].error:
                print(f"nexus {self.where}: {name} (a tell) failed:\n{deserialize(items[0][1]).traceback_text}", file=sys.stderr)

        assert host.loop is not None
        if threading.get_ident() == self.main_ident:
            host.loop.create_task(run())
        else:  # the monitor thread received it for a main thread blocked in a call
            import asyncio

            asyncio.run_coroutine_threadsafe(run(), host.loop)

    # -- what user code inside the worker calls -------------------------------------------------------

    def ship(self, def_id: bytes, blob_factory: Any) -> Blob | None:
        if def_id in self.shipped:
            return None
        self.shipped.add(def_id)
        return blob_factory()

    def submit_task(
        self, fn_id: bytes, blob_factory: Any, name: str, args: tuple, kwargs: dict, num_returns: int, options: dict
    ) -> list[ObjectRef]:
        definition = self.ship(fn_id, blob_factory)
        args, kwargs, deps = split_args(args, kwargs)
        args_blob = serialize((args, kwargs), f"the arguments of {name}")
        result_ids = [self.new_id() for _ in range(num_returns)]
        trace, parent = _trace_context.get()
        self.send(("submit", fn_id, definition, name, args_blob, deps, result_ids, options, trace, parent))
        return [ObjectRef(oid) for oid in result_ids]

    def create_actor(self, cls_id: bytes, blob_factory: Any, name: str, args: tuple, kwargs: dict, options: dict) -> int:
        definition = self.ship(cls_id, blob_factory)
        args, kwargs, deps = split_args(args, kwargs)
        args_blob = serialize((args, kwargs), f"the arguments of {name}")
        actor_id = self.new_id()
        reply = self._request(("create_actor", actor_id, cls_id, definition, name, args_blob, deps, options))
        if reply is not None:
            raise deserialize(reply).to_exception()
        return actor_id

    def submit_call(self, actor_id: int, method: str, args: tuple, kwargs: dict, num_returns: int, tell: bool) -> list[ObjectRef]:
        args, kwargs, deps = split_args(args, kwargs)
        args_blob = serialize((args, kwargs), f"the arguments of {method}")
        result_ids = [] if tell else [self.new_id() for _ in range(num_returns)]
        trace, parent = _trace_context.get()
        self.send(("submit_call", actor_id, method, args_blob, deps, result_ids, trace, parent))
        return [ObjectRef(oid) for oid in result_ids]

    def put(self, value: Any) -> ObjectRef:
        blob = serialize(value, "the value to put")
        oid = self.new_id()
        self.send(("put", oid, blob))
        return ObjectRef(oid)

    def _request(self, body: tuple[Any, ...], timeout: float | None = None, blocking: bool = True) -> Any:
        """Send a request whose answer comes back as ``objects`` under a fresh request id; return the answer.

        ``blocking=False`` for a short request (an arena region): the worker
        does not count as blocked meanwhile and runs nothing else.
        """
        request = next(self.requests)
        waiter = _Waiter([0])
        self.waiters[request] = waiter
        try:
            self.send((body[0], request, *body[1:]))
            self._wait(waiter, timeout, blocking)
            if not waiter.event.is_set():
                from .api import GetTimeoutError

                raise GetTimeoutError(f"no answer from the driver within {timeout} s")
            return waiter.results.get(0)
        finally:
            self.waiters.pop(request, None)

    def _wait(self, waiter: _Waiter, timeout: float | None, blocking: bool = True) -> None:
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
        self._report_blocked(True)
        try:
            while not waiter.event.is_set() and not self.exiting:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return
                if self.tasks:  # tasks that arrive while this one waits run on top of it: nested work never deadlocks
                    self._next_task()
                    self._report_blocked(True)  # waiting again (a nested wait that ended said otherwise)
                    continue
                extra = [self.death_fd] if self.death_fd is not None else []
                with self.role:
                    self.in_pump = True
                    try:
                        gone = self.pump.once([(0, self.conn)], extra, min(left or 1.0, 1.0))
                    finally:
                        self.in_pump = False
                if gone:
                    _driver_gone()
                if self.current_task and self.current_task in self.cancelled and self.cancellable:
                    self._raise_cancelled()  # cancelled while it waited (perhaps while a nested task ran)
        finally:
            self._report_blocked(False)

    def _report_blocked(self, flag: bool) -> None:
        """Tell the driver whether the main thread waits (it then counts no CPU here and sends tasks to run
        on top of the waiting one); only changes are sent."""
        if self.blocked != flag:
            self.blocked = flag
            self.send(("blocked", flag))

    def get_blobs(self, ids: list[int], timeout: float | None) -> dict[int, Blob] | None:
        request = next(self.requests)
        waiter = _Waiter(ids)
        self.waiters[request] = waiter
        try:
            self.send(("get", request, ids, timeout))
            self._wait(waiter, timeout)
            return waiter.results if waiter.event.is_set() else None
        finally:
            self.waiters.pop(request, None)

    def wait_ids(self, ids: list[int], num_returns: int, timeout: float | None) -> list[int]:
        request = next(self.requests)
        waiter = _Waiter(ids)
        self.waiters[request] = waiter
        try:
            self.send(("wait", request, ids, num_returns, timeout))
            self._wait(waiter, None if timeout is None else timeout + 5.0)
            ready = waiter.results.get(0)
            return list(ready) if ready is not None else []  # type: ignore[call-overload]
        finally:
            self.waiters.pop(request, None)

    def control(self, body: tuple[Any, ...]) -> Any:
        return self._request(body)


def _give_back(blobs: list[Blob]) -> None:
    client = current_client()
    for blob in blobs:
        if blob.region is not None and client is not None:
            with contextlib.suppress(Exception):
                client.free(*blob.region)


class _DependencyFailed(Exception):
    def __init__(self, blob: Blob) -> None:
        super().__init__("a dependency failed")
        self.blob = blob


class _Unloadable:
    """A function or class that could not be loaded in this worker; calling it raises why."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __call__(self, *_args: Any, **_kwargs: Any) -> Any:
        raise self.exc


class _WorkerStore(StoreClient):
    """A worker's side of the object store: regions come from the driver; ref changes go to it, in order."""

    adopts_pins = True

    def __init__(self, runtime: WorkerRuntime, arena_name: str | None) -> None:
        self.runtime = runtime
        self.arena = Arena.attach(arena_name) if arena_name else None

    def allocate(self, nbytes: int) -> int:
        answer = self.runtime._request(("alloc", nbytes), blocking=False)
        if isinstance(answer, Blob):
            raise deserialize(answer).to_exception()
        return int(answer)

    def free(self, offset: int, nbytes: int) -> None:
        self.runtime.send(("free", offset, nbytes))

    def pin(self, oid: int, region: tuple[int, int]) -> Pin:
        assert self.arena is not None
        self.runtime.ref_op(oid, 0, 1)
        return self.arena.pin(region[0], region[1], lambda: self.runtime.ref_op(oid, 0, -1))

    def adopt_pin(self, oid: int, region: tuple[int, int] | None) -> Any:
        """The pin the driver took when it sent us this blob: released when the blob and its views are gone."""
        if not oid:
            return None
        if region is None or self.arena is None:
            return _Hold(lambda: self.runtime.ref_op(oid, 0, -1))
        return self.arena.pin(region[0], region[1], lambda: self.runtime.ref_op(oid, 0, -1))

    def acquire(self, oid: int) -> None:
        self.runtime.ref_op(oid, 1, 0)

    def acquire_many(self, oids: tuple[int, ...]) -> None:
        self.runtime.ref_ops.extend((oid, 1, 0) for oid in oids)

    def release(self, oid: int) -> None:
        self.runtime.ref_op(oid, -1, 0)


class _Hold:
    """A pin of a blob that lives outside the arena (it holds refs): released with the blob."""

    __slots__ = ("_on_release",)

    def __init__(self, on_release: Any) -> None:
        self._on_release = on_release

    def __del__(self) -> None:
        hook, self._on_release = self._on_release, None
        if hook is not None:
            try:
                hook()
            except Exception:
                pass


def _driver_gone() -> None:
    """The driver died without shutting us down: remove the cluster's files (nobody else will) and exit."""
    from .shm_util import cluster_id, remove_cluster_files

    remove_cluster_files(cluster_id())
    os._exit(1)


def _missing(cls_name: str, method: str) -> Any:
    def missing(*_args: Any, **_kwargs: Any) -> Any:
        raise AttributeError(f"actor class {cls_name} has no method {method!r}")

    return missing


def _read_bootstrap(fd: int) -> str:
    """What the driver wrote to the pipe this process inherited (its channel, with any secret): read to the end."""
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    worker_id, kind, bootstrap_fd, death_fd = int(argv[0]), argv[1], int(argv[2]), int(argv[3])
    spec = ChannelSpec.decode(_read_bootstrap(bootstrap_fd))
    # Tasks that arrive while one waits in get() run on top of it, ~8 frames each: room for ~700 of them. Deeper
    # nesting fails the task that does not fit with a RecursionError (see _next_task) instead of hanging.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 6000))
    _set_policy(batch=os.environ.get("NEXUS_SCHED_BATCH", "1") != "0")
    conn = load_transport(spec.transport, os.environ.get("NEXUS_TRANSPORT_CLASS")).attach(spec)
    runtime = WorkerRuntime(conn, worker_id, kind, death_fd if death_fd >= 0 else None)
    context.set_current(runtime)
    signal.signal(signal.SIGUSR1, runtime._on_cancel_signal)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal reaches the whole group: the driver decides
    set_client(_WorkerStore(runtime, os.environ.get("NEXUS_ARENA")))
    try:
        runtime.serve()
    except KeyboardInterrupt:
        pass
    finally:
        set_client(None)
        try:
            conn.close()
        except Exception:
            pass
    os._exit(0)  # do not wait for actor threads or run atexit hooks of user code: the driver decides our fate


if __name__ == "__main__":
    raise SystemExit(main())
