"""The driver's runtime: worker processes, the task queue, actors and the objects they make.

One receiver thread serves every channel: it spins on the rings briefly after
each message, then parks on all of them at once, on the pidfd of every worker
(so a crash is noticed at once) and on their output pipes (so what a worker
prints shows up in the driver, prefixed with the worker).

Tasks wait in one queue at the driver and go to a worker as soon as it is idle
(pull-based placement: a free worker takes the next task, so a long task never
holds others back behind it on a busy worker). A worker blocked in ``get``
counts as idle: nested and recursive tasks cannot deadlock a small pool. Each
actor lives in a worker process of its own, taken from a pre-started spare so
that creating an actor does not wait for an interpreter to start.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any

from ..core.errors import (
    ActorDiedError,
    MailboxFullError,
    NexusError,
    ObjectLostError,
    ObjectStoreFullError,
    PendingCallsLimitExceededError,
    SystemShutdownError,
    TaskCancelledError,
    WorkerCrashedError,
)
from ..core.event_ring import EventRing
from ..core.event_stream import EventStream
from .events import ActorExited, ActorRestarting, CallDropped, TaskRetried, WorkerDied, WorkerStarted
from .protocol import SPIN_SECONDS, LogLimiter, Pump, pack
from .shm_util import cluster_id, remove_cluster_files, remove_dead_clusters
from .store import PREFAULT_STEP, Allocator, Arena, Pin, SpillFolder, default_capacity
from .transport import ChannelCorruptError, Transport, make_transport, transport_target
from .values import Blob, ObjectRef, StoreClient, error_blob, serialize, set_client, split_args

__all__ = ["Runtime"]

_ids = itertools.count(1)
_now = time.monotonic_ns
SAMPLE_EVERY = 1.0
"""Seconds between samples of each process's CPU, memory and waiting work."""
OBSERVED_EVENTS = 65536
"""Events the driver keeps for the observation layer (the oldest go first)."""
DEFAULT_TASK_RETRIES = 3
"""``max_retries`` of a task by default (as in Ray): retried this often when its worker dies."""
PREFETCH = 4
"""Most tasks in flight to one worker while a backlog waits (see Runtime._dispatch)."""
PREFETCH_QUICK = 16
"""The same for a function whose last run took less than QUICK_TASK: its tasks go to workers in batches."""
QUICK_TASK = 100e-6
PREFETCH_YOUNG = 0.002
"""A worker whose current task has run longer than this gets no prefetched tasks: they would wait behind it."""
ROLE_GRACE = 0.002
"""After a get() returns, the receiver thread leaves receiving to callers this long: the next get() usually comes sooner."""
STEAL_AFTER = 0.01
"""A worker busy this long with one task has the tasks queued behind it taken back for an idle worker."""
PREFAULT_FIRST = 64 << 20
"""The arena memory faulted in ahead of time at start (in the background)."""
PREFAULT_AHEAD = 256 << 20
"""How far past the highest region ever handed out the arena is kept faulted in."""
MAX_QUEUED_TASKS = 200_000
"""Tasks waiting at the driver beyond which a submitting thread waits for the workers (back-pressure)."""
MAX_QUEUED_BYTES = 1 << 30
"""Bytes of inline arguments of waiting tasks beyond which a submitting thread waits likewise."""
PIN_CACHE = 64
"""Read mappings of recently read objects the driver keeps for the next get of them."""
ASSIST_EVERY = 20e-6
"""A submitting thread drains the channels at most this often (each drain polls every channel)."""
COALESCE_AFTER = 4
"""A worker with this many calls or tasks unanswered gets further ones coalesced into one ``batch`` message."""
COALESCE_MAX = 64
"""Most messages held in a worker's outbox; a full outbox is sent at once."""
MAX_START_FAILURES = 3
"""Workers in a row that die before they start, after which the pool stops replacing them."""


class _Object:
    """An object the driver keeps: its blob once made, who counts on it, where its bytes are."""

    __slots__ = ("blob", "callbacks", "contained", "event", "pins", "refs", "region", "spilled", "used")

    def __init__(self, refs: int = 1) -> None:
        self.blob: Blob | None = None
        self.event: threading.Event | None = None
        self.callbacks: list[Callable[[], None]] = []
        self.refs = refs  # ObjectRefs anywhere, values holding it, tasks waiting for it
        self.pins = 0  # readers' views (and blobs on their way to a worker): not freed, not spilled
        self.region: tuple[int, int] | None = None  # its bytes in the arena
        self.contained: tuple[int, ...] = ()  # objects whose refs its value holds
        self.spilled: str | None = None  # the file it was spilled to
        self.used = 0  # when it was last stored or read (for spilling the least recently used)


class _WorkerProc:
    def __init__(self, index: int, kind: str) -> None:
        self.index = index
        self.kind = kind
        self.name = f"worker-{index}"
        self.conn: Any = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0
        self.pidfd = -1
        self.shipped: set[bytes] = set()
        self.inflight = 0  # tasks sent and not yet done (the first runs, the others wait in its channel)
        self.cpu_held = 0.0  # CPUs the task running now holds
        self.busy_since = 0.0
        self.blocked = False
        self.ready = threading.Event()
        self.alive = True
        self.actor: _Actor | None = None
        self.out_buffers: dict[int, bytes] = {}
        # Calls and tasks held back while the worker is busy with earlier ones; sent as one message when
        # an answer comes (so no earlier call can be waiting for them), or when the outbox is full.
        self.outbox: list[tuple[Any, ...]] = []
        self.held: dict[int, int] = {}  # refs this worker holds, by object id (dropped if it dies)
        self.pinned: dict[int, int] = {}  # pins it holds
        self.allocs: dict[int, int] = {}  # arena regions it was given and has not filled and handed back yet
        self.revoking = False  # asked to give back the tasks queued behind its long one
        self.broken = False  # its channel turned out corrupt: not read any more, the worker is being replaced


class _Task:
    __slots__ = (
        "args_blob",
        "args_oid",
        "attempt",
        "cancelled",
        "deps",
        "fn_id",
        "missing",
        "name",
        "needs",
        "result_ids",
        "retries",
        "retry_exceptions",
        "task_id",
        "trace",
        "worker",
    )

    def __init__(
        self, fn_id: bytes, name: str, args_blob: Blob, deps: list[int], result_ids: list[int], needs: dict[str, float] | None = None
    ) -> None:
        self.needs = needs  # None: one CPU and nothing else (the common case, which may be prefetched)
        self.task_id = next(_ids)
        self.fn_id = fn_id
        self.name = name
        self.args_blob = args_blob
        self.deps = deps
        self.result_ids = result_ids
        self.missing = 0
        self.worker: _WorkerProc | None = None
        self.args_oid = 0  # large arguments, or ones holding refs, are stored as an object of their own
        self.retries = DEFAULT_TASK_RETRIES  # left: retried when its worker dies (max_retries; -1: forever)
        self.retry_exceptions: Any = False  # also retried when it raises: True, or a tuple of exception types
        self.attempt = 0
        self.cancelled = False
        self.trace = self.task_id  # the trace it belongs to: the id of the call that started the chain


class _Call:
    __slots__ = ("args_blob", "args_oid", "call_id", "deps", "method", "missing", "result_ids", "retries", "trace")

    def __init__(self, method: str, args_blob: Blob, deps: list[int], result_ids: list[int]) -> None:
        self.call_id = next(_ids)
        self.method = method
        self.args_blob = args_blob
        self.deps = deps
        self.result_ids = result_ids
        self.missing = 0
        self.args_oid = 0
        self.retries = 0  # sent again this often if the actor's process dies while it runs (-1: always)
        self.trace = self.call_id


def _ignore(_record: Any) -> None:
    return None


class _Actor:
    def __init__(self, actor_id: int, cls_name: str, name: str | None, namespace: str) -> None:
        self.actor_id = actor_id
        self.cls_name = cls_name
        self.name = name
        self.namespace = namespace
        self.labels: dict[str, tuple[str, str]] = {}  # method -> (class name, method): one tuple per method, for events
        self.worker: _WorkerProc | None = None
        self.ready = False
        self.dead: BaseException | None = None
        self.exited = False  # its death was settled and published (see Runtime._fail_calls)
        self.error_blob: Blob | None = None
        self.queue: deque[_Call] = deque()
        self.inflight: dict[int, _Call] = {}
        self.on_ready: list[Callable[[Blob | None], None]] = []
        self.needs: dict[str, float] = {}
        self.max_pending = -1
        self.sequential = False  # one call at a time (no threads, no event loop): its calls may be coalesced
        self.concurrency = 1  # how many of its calls may run at once (max_concurrency)
        self.max_restarts = 0  # -1: restart forever
        self.restarts = 0
        self.max_task_retries = 0  # calls in flight when its process dies are sent again this often (-1: always)
        self.mailbox: Any = None  # a bounded MailboxSpec: what to do with calls beyond its capacity
        # How to start it again: kept while it may restart
        self.cls_id = b""
        self.args_blob: Blob | None = None
        self.args_oid = 0
        self.deps: list[int] = []
        self.options: dict[str, Any] = {}


class Runtime:
    """The local cluster, as the driver sees it."""

    def __init__(
        self,
        num_cpus: int,
        transport: str | Transport = "shm",
        namespace: str = "default",
        spare_actor_workers: int = 1,
        resources: dict[str, float] | None = None,
        object_store_memory: int | None = None,
        observe: bool = True,
    ) -> None:
        self.num_cpus = num_cpus
        self.total: dict[str, float] = {"CPU": float(num_cpus), **{k: float(v) for k, v in (resources or {}).items()}}
        self.used: dict[str, float] = dict.fromkeys(self.total, 0.0)  # by special tasks and actors (CPU: by actors)
        self.special_queued = 0
        self.namespace = namespace
        self.lock = threading.RLock()
        self.objects: dict[int, _Object] = {}
        self.defs: dict[bytes, Blob] = {}
        self.queue: deque[_Task] = deque()
        self.waiting: dict[int, _Task] = {}  # tasks waiting for their arguments (ObjectRefs not ready yet)
        self.waits: set[threading.Event] = set()  # what threads in wait() wait on: set at shutdown
        self.running: dict[int, _Task] = {}
        self.actors: dict[int, _Actor] = {}
        self.named: dict[tuple[str, str], int] = {}
        self.workers: list[_WorkerProc] = []
        self.spares: list[_WorkerProc] = []
        self.indexes = itertools.count(1)
        self.transport: Transport = make_transport(transport)
        self.transport_name = transport if isinstance(transport, str) else self.transport.name
        self.pump = Pump(self._handle, self._bad)
        self.rejected = 0  # messages that could not be read
        self.dropped_channels = 0  # channels found corrupt (their workers were replaced)
        self.start_failures = 0  # workers in a row that died before they said hello
        self.log = LogLimiter()  # what peers can cause at any rate is logged at a bounded rate
        self.sends_give_up_at = float("inf")  # set at shutdown: sends to full channels stop waiting then
        self.closed = False
        self.closing = False
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        # Receiving is a role: the receiver thread holds it unless a caller of get() takes it to receive its
        # own result without a thread hand-off (a wake-up plus the GIL cost ~20-50 us here).
        self.role = threading.Lock()
        self.role_cond = threading.Condition()
        self.want_role = 0
        self.activity = 0.0
        self.assisted = 0.0
        self.receiver_parked = False
        self.generation = 0
        self.steal_watch = False  # an idle worker and a busy one with tasks queued: look again soon
        self.stolen = 0
        self.took: dict[bytes, float] = {}  # function id -> seconds its last task ran (for the prefetch depth)
        self._poll_generation = -1
        self._poll_cache: Any = ([], {}, [])
        self.death_r, self.death_w = os.pipe()
        os.set_inheritable(self.death_r, False)
        self.started_at = time.perf_counter()
        self.cluster = cluster_id()
        remove_dead_clusters()  # segments of clusters killed with their workers, before this one takes room
        self.arena = Arena.create(default_capacity(object_store_memory))
        self.allocator = Allocator(self.arena.size)
        self.ticks = itertools.count(1)
        self.deferred: deque[tuple[int, int, int]] = deque()  # ref changes from finalizers that found the lock taken
        self.spills = self.restores = self.spilled_bytes = 0
        self.spill_folder: SpillFolder | None = None  # made at the first spill
        # What happened, for the observation layer (nexus.observe reads it): one tuple per event, never a wait.
        self.observed: EventRing[tuple[Any, ...]] | None = EventRing(OBSERVED_EVENTS, flat=True) if observe else None
        # The hot paths record with these (two C calls, no Python frame): ``self._push((self._seq(), *record))``.
        self._seq: Callable[[], int] = int
        self._push: Callable[[tuple[Any, ...]], None] = _ignore
        if self.observed is not None:
            self._seq, self._push = self.observed.producer()
        self.queued_bytes = 0  # inline argument bytes of the tasks in the queue
        self.queue_full_warned = False
        self.events = EventStream()
        self.prefaulted = 0
        self.prefault_wanted = threading.Event()
        self.prefault_hold = False  # the prefaulter holds a step of the arena while it writes zeros there
        self.prefault_done = threading.Condition(self.lock)
        # Read mappings this process made lately, by object: the next get of the object reuses one
        # (no mmap, no pin count); dropped when the object's refs are gone or the store needs the room.
        self.pin_cache: OrderedDict[int, Pin] = OrderedDict()
        self.helpers: set[threading.Thread] = set()
        self.every_worker: list[_WorkerProc] = []
        self.prefaulter: threading.Thread | None = None
        procs = [self._spawn("task") for _ in range(num_cpus)]
        self.receiver = threading.Thread(target=self._receive_loop, name="nexus-driver-receiver", daemon=True)
        self.receiver.start()
        deadline = time.monotonic() + 60
        for w in procs:
            if not self._wait_started(w, deadline - time.monotonic()):
                code = w.proc.poll() if w.proc is not None else None
                self.shutdown()
                if code is not None:
                    raise NexusError(f"{w.name} exited with code {code} as it started (its output is above)")
                raise NexusError(f"{w.name} did not start within 60 s")
        # Spare workers for actors start now and are not waited for: an actor created before its spare is up
        # waits for it. Started with the task workers, they took a share of the cores init waits for.
        for _ in range(spare_actor_workers):
            self._spawn("actor")
        set_client(_DriverStore(self))
        self.prefaulter = threading.Thread(target=self._prefault_loop, name="nexus-prefault", daemon=True)
        self.prefaulter.start()
        if self.observed is not None:
            threading.Thread(target=self._sample_loop, name="nexus-sampler", daemon=True).start()

    # -- worker processes ----------------------------------------------------------------

    def _spawn(self, kind: str) -> _WorkerProc:
        if self.closing:
            raise NexusError("the cluster is shutting down")
        w = _WorkerProc(next(self.indexes), kind)
        conn, spec = self.transport.open_channel(w.name)
        w.conn = conn
        env = dict(
            os.environ,
            PYTHONUNBUFFERED="1",
            NEXUS_CLUSTER_ID=self.cluster,
            NEXUS_ARENA=self.arena.name,
            NEXUS_TRANSPORT_CLASS=transport_target(type(self.transport)),
        )
        # What the worker needs to attach, secrets included (a ZeroMQ channel's key), goes through a pipe it
        # inherits: a command line is readable by every local user (/proc/PID/cmdline), a pipe is not.
        bootstrap_r, bootstrap_w = os.pipe()
        try:
            os.write(bootstrap_w, spec.encode().encode())
        finally:
            os.close(bootstrap_w)
        try:
            w.proc = subprocess.Popen(
                [sys.executable, "-m", "nexus.cluster.worker", str(w.index), kind, str(bootstrap_r), str(self.death_r)],
                pass_fds=(*spec.pass_fds, self.death_r, bootstrap_r),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                # Not in the driver's process group: signals sent to the group (a notebook server stopping or
                # restarting its kernel signals the kernel's whole group, and ipykernel terminates its children)
                # must not kill workers one by one for the pool to replace; they leave when the driver says so,
                # or when it is gone (the death pipe).
                start_new_session=True,
            )
        except BaseException:
            conn.close()
            raise
        finally:
            os.close(bootstrap_r)
        w.pid = w.proc.pid
        w.pidfd = os.pidfd_open(w.proc.pid)
        proc = w.proc
        # A send to a full channel gives up when the worker is gone, and at shutdown once its timeout is over (a
        # worker that stopped reading must not hang shutdown).
        conn.peer_alive = lambda: proc.poll() is None and time.monotonic() < self.sends_give_up_at
        for stream in (w.proc.stdout, w.proc.stderr):
            assert stream is not None
            os.set_blocking(stream.fileno(), False)
        with self.lock:
            self.every_worker.append(w)
            if kind == "task":
                self.workers.append(w)
            else:
                self.spares.append(w)
            self.generation += 1
        self._wake_receiver()
        return w

    def _wait_started(self, w: _WorkerProc, timeout: float) -> bool:
        """Wait until ``w`` said hello; False if it died first, the cluster is closing, or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while not w.ready.wait(0.05):
            if not w.alive or self.closing or (w.proc is not None and w.proc.poll() is not None) or time.monotonic() > deadline:
                return w.ready.is_set()
        return True

    def _all_workers(self) -> list[_WorkerProc]:
        with self.lock:
            actor_workers = [a.worker for a in self.actors.values() if a.worker is not None and a.worker.alive]
            return [*self.workers, *self.spares, *actor_workers]

    def _emit(self, kind: str, *values: Any) -> None:
        """Record an event for the observation layer (see nexus.observe.hub for the kinds and their fields)."""
        if self.observed is not None:
            self.observed.append((kind, _now(), *values))

    def _wake_receiver(self) -> None:
        with contextlib.suppress(OSError):
            os.eventfd_write(self.wake_fd, 1)

    def send(self, w: _WorkerProc, body: tuple[Any, ...]) -> None:
        try:
            w.conn.send(pack(body))
        except Exception as exc:
            if w.alive and (w.proc is None or w.proc.poll() is None):
                raise NexusError(f"cannot send to {w.name}: {exc}") from exc
            # it died: the receiver sees its pidfd and settles what was sent to it (retries, errors)

    def _post(self, w: _WorkerProc, body: tuple[Any, ...], unanswered: int, after: int = COALESCE_AFTER) -> None:
        """Send a call or task, or hold it in the worker's outbox while ``unanswered`` earlier ones keep it busy.

        Only for work that runs strictly after the unanswered work (a
        sequential actor's calls, tasks prefetched behind a running one): an
        answer to any of those flushes the outbox, so nothing held can be
        what an earlier call waits for. Coalescing saves a message, an
        envelope and a pickle per call when calls are submitted in a burst.
        Called with the lock held.
        """
        if w.outbox or unanswered >= after:
            w.outbox.append(body)
            if len(w.outbox) >= COALESCE_MAX:
                self._flush(w)
        else:
            self.send(w, body)

    def _flush(self, w: _WorkerProc) -> None:
        if w.outbox:
            batch, w.outbox = w.outbox, []
            self.send(w, batch[0] if len(batch) == 1 else ("batch", batch))

    # -- the receiver ----------------------------------------------------------------------

    def _receive_loop(self) -> None:
        """Receive whenever no application thread is busy with the cluster.

        A thread that calls ``get`` receives its own result (see
        :meth:`wait_object`), and one that submits drains the channels between
        submissions (:meth:`_assist`); for ``ROLE_GRACE`` after either, this
        thread stays out of the way: two threads taking turns at receiving
        would hand the GIL back and forth on every message.
        """
        while not self.closed:
            with self.role_cond:
                while (self.want_role or time.monotonic() - self.activity < ROLE_GRACE) and not self.closed:
                    self.role_cond.wait(ROLE_GRACE if not self.want_role else None)
            with self.role:
                self.receiver_parked = True
                try:
                    self._receive_once(0.25, spin=0.0)
                finally:
                    self.receiver_parked = False

    def _assist(self) -> None:
        """Called after a submission: receive what is waiting, if nobody else is receiving right now."""
        now = self.activity = time.monotonic()
        if self.receiver_parked:
            self.receiver_parked = False
            self._wake_receiver()
        if now - self.assisted < ASSIST_EVERY:
            return  # in a burst of submissions, receive every few of them: answers wait in the rings meanwhile
        self.assisted = now
        if self.role.acquire(blocking=False):
            try:
                self.pump.drain(self._poll_set()[0])
            finally:
                self.role.release()

    def _poll_set(self) -> tuple[list[tuple[_WorkerProc, Any]], dict[int, tuple[str, Any]]]:
        if self._poll_generation != self.generation:
            workers = self._all_workers()
            conns = [(w, w.conn) for w in workers if w.alive and not w.broken]
            extra: dict[int, tuple[str, Any]] = {self.wake_fd: ("wake", None)}
            for w in workers:
                if w.alive and w.pidfd >= 0:
                    extra[w.pidfd] = ("exit", w)
                assert w.proc is not None
                for stream in (w.proc.stdout, w.proc.stderr):
                    if stream is not None and not stream.closed:
                        extra[stream.fileno()] = ("out", (w, stream))
            self._poll_cache = (conns, extra, list(extra))
            self._poll_generation = self.generation
        conns, extra, _ = self._poll_cache
        return conns, extra

    def _receive_once(self, timeout: float, spin: float = SPIN_SECONDS) -> None:
        """One round of receiving: spin on the channels, else park on them and on the extra descriptors."""
        if self.deferred:
            with self.lock:
                self._drain_deferred()
        conns, extra = self._poll_set()
        if self.steal_watch:
            timeout = min(timeout, STEAL_AFTER / 2)
        ready = self.pump.once(conns, self._poll_cache[2], timeout=timeout, spin=spin)
        if self.steal_watch:
            with self.lock:
                self._steal()
        for fd in ready:
            what, w = extra[fd]
            if what == "wake":
                with contextlib.suppress(OSError):
                    os.eventfd_read(self.wake_fd)
            elif what == "out":
                self._forward_output(*w)
            elif what == "exit" and w is not None:
                if not w.broken:
                    self.pump.drain([(w, w.conn)])  # what it sent before it died
                self._worker_died(w)

    def _forward_output(self, w: _WorkerProc, stream: Any) -> bool:
        """Print what worker ``w`` wrote on ``stream``, a line at a time with its name; False when nothing more is there."""
        if stream.closed:
            return False
        fd = stream.fileno()
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return False
        except OSError:
            chunk = b""
        assert w.proc is not None
        is_err = stream is w.proc.stderr
        if not chunk:
            stream.close()
            with self.lock:
                self.generation += 1
            return False
        data = w.out_buffers.get(fd, b"") + chunk
        *lines, rest = data.split(b"\n")
        w.out_buffers[fd] = rest
        pid = w.proc.pid
        target = sys.stderr if is_err else sys.stdout
        for line in lines:
            print(f"({w.name} pid={pid}) {line.decode(errors='replace')}", file=target, flush=True)
        return True

    def _bad(self, w: Any, exc: Exception) -> None:
        """A message that cannot be read: counted and dropped (logged at a bounded rate); a corrupt channel is dropped."""
        self.rejected += 1
        if isinstance(exc, ChannelCorruptError) and isinstance(w, _WorkerProc):
            self._drop_channel(w, exc)
            return
        self.log(f"nexus: dropped a malformed message from {getattr(w, 'name', w)}: {exc}")

    def _drop_channel(self, w: _WorkerProc, exc: Exception) -> None:
        """``w``'s channel cannot be read any more: stop reading it and replace the worker, as if it had crashed."""
        with self.lock:
            if w.broken:
                return
            w.broken = True
            self.dropped_channels += 1
            self.generation += 1  # out of the set the receiver polls
        self.log(f"nexus: {w.name}'s channel is unusable ({exc}); the worker is stopped and replaced")
        if w.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                w.proc.kill()  # the receiver sees it die: its tasks are retried, its actor restarts (_worker_died)

    def _handle(self, w: _WorkerProc, body: tuple[Any, ...]) -> None:
        op = body[0]
        handler = getattr(self, f"_on_{op}", None)
        if handler is None:
            self._bad(w, ValueError(f"unknown operation {op!r}"))
            return
        try:
            handler(w, *body[1:])
        except Exception as exc:
            self._bad(w, exc)

    def _on_hello(self, w: _WorkerProc, _index: int, pid: int) -> None:
        w.ready.set()
        self.start_failures = 0
        self.events.publish(WorkerStarted(w.name, pid, w.kind))
        self._emit("worker", w.name, pid, "started", w.kind)
        with self.lock:
            self._dispatch()  # tasks may have queued while this worker started (a replacement, say)

    def _on_done(self, w: _WorkerProc, task_id: int, items: list[tuple[int, Blob]], timing: Any = None) -> None:
        if timing is not None and self.observed is not None:
            self._push((self._seq(), "finished", timing[3], task_id, w.name, w.pid, *timing))
        with self.lock:
            task = self.running.get(task_id)
            if task is not None and task.worker is w and self._retry_on_error(task, items):
                self._take_back(w, task)
                self.queue.remove(task)  # to the back: it failed, the others go first
                self.queue.append(task)
                w.busy_since = time.monotonic()
                w.cpu_held = 1.0 if w.inflight else 0.0
                self._flush(w)
                self._dispatch()
                return
            for oid, blob in items:
                self._store(oid, blob, w)
            task = self.running.pop(task_id, None)
            if task is not None and task.worker is w:
                self._task_finished(w, task)
                if timing is not None:
                    self.took[task.fn_id] = (timing[3] - timing[0]) * 1e-9
            if w.actor is not None:
                call = w.actor.inflight.pop(task_id, None)
                if call is not None and (call.deps or call.args_oid):  # kept for a retry: not needed any more
                    self._unpin(call.deps)
                    call.deps = []
                    self._decref(call.args_oid)
                    call.args_oid = 0
            self._flush(w)
            self._dispatch()

    def _on_done_many(self, w: _WorkerProc, entries: list[tuple[int, list[tuple[int, Blob]], Any]]) -> None:
        """Answers a worker coalesced: calls that finished while more waited in its channel."""
        with self.lock:
            for task_id, items, timing in entries:
                self._on_done(w, task_id, items, timing)

    def _on_blocked(self, w: _WorkerProc, flag: bool) -> None:
        with self.lock:
            w.blocked = flag
            if flag:
                self._flush(w)  # a worker blocked in get runs arriving tasks: let it have them
                self._dispatch()

    def _on_submit(
        self,
        w: _WorkerProc,
        fn_id: bytes,
        def_blob: Blob | None,
        name: str,
        args_blob: Blob,
        deps: list[int],
        result_ids: list[int],
        _options: dict,
        trace: int = 0,
        parent: int = 0,
    ) -> None:
        with self.lock:
            if def_blob is not None:
                self.defs[fn_id] = def_blob
            for oid in result_ids:
                self._made_by(w, oid)
            task = _Task(fn_id, name, args_blob, deps, result_ids, needs=None)
            task.args_oid = self._args_object(args_blob, w)
            task.trace = trace or task.task_id
            self._emit("submitted", task.task_id, name, "task", task.trace, parent, w.name, 0)
            self._retry_options(task, _options)
            try:
                task.needs = self.needs_of(_options, name, default_cpu=1.0)
            except ValueError as exc:
                blob = error_blob(exc, "the driver")
                for oid in result_ids:
                    self._store(oid, blob)
                self._decref(task.args_oid)
                return
            self._enqueue(task)

    def _on_submit_call(
        self,
        w: _WorkerProc,
        actor_id: int,
        method: str,
        args_blob: Blob,
        deps: list[int],
        result_ids: list[int],
        trace: int = 0,
        parent: int = 0,
    ) -> None:
        with self.lock:
            for oid in result_ids:
                self._made_by(w, oid)
            call = _Call(method, args_blob, deps, result_ids)
            call.args_oid = self._args_object(args_blob, w)
            actor = self.actors.get(actor_id)
            call.retries = actor.max_task_retries if actor is not None else 0
            call.trace = trace or call.call_id
            if self.observed is not None:
                label = (actor.cls_name, method) if actor is not None else method
                self._emit("submitted", call.call_id, label, "call", call.trace, parent, w.name, 0)
            self._enqueue_call(actor_id, call)

    def _on_create_actor(
        self,
        w: _WorkerProc,
        request: int,
        actor_id: int,
        cls_id: bytes,
        def_blob: Blob | None,
        name: str,
        args_blob: Blob,
        deps: list[int],
        options: dict,
    ) -> None:
        if def_blob is not None:
            self.defs[cls_id] = def_blob
        if args_blob.region is not None:
            with self.lock:
                w.allocs.pop(args_blob.region[0], None)  # the arguments' object owns the region from here on

        def answer(error: Blob | None) -> None:
            self.send(w, ("objects", request, [(0, error)]))

        try:
            self._create_actor(actor_id, cls_id, name, args_blob, deps, options, answer)
        except Exception as exc:
            self._discard(args_blob)
            answer(error_blob(exc, "the driver"))

    def _on_put(self, w: _WorkerProc, oid: int, blob: Blob) -> None:
        with self.lock:
            self._made_by(w, oid)
            self._store(oid, blob, w)
        self._emit("object", oid, "put", blob.nbytes)

    def _on_refs(self, w: _WorkerProc, ops: list[tuple[int, int, int]]) -> None:
        """Reference and pin changes a worker made (refs received in values, dropped; views made, dropped)."""
        with self.lock:
            for oid, dref, dpin in ops:
                self._change(oid, dref, dpin, w)
            self._drain_deferred()

    def _on_alloc(self, w: _WorkerProc, request: int, nbytes: int) -> None:
        try:
            answer: Any = self.allocate(nbytes, w)
        except Exception as exc:
            answer = error_blob(exc, "the driver")
        self.send(w, ("objects", request, [(0, answer)]))

    def _on_free(self, w: _WorkerProc, offset: int, nbytes: int) -> None:
        with self.lock:
            if w.allocs.pop(offset, None) is not None:
                self.allocator.free(offset, nbytes)

    def _on_get(self, w: _WorkerProc, request: int, ids: list[int], _timeout: float | None) -> None:
        remaining = set(ids)

        def reply() -> None:
            if not w.alive:
                return
            items = [(oid, self._ship(w, oid)) for oid in ids]
            self.send(w, ("objects", request, items))

        with self.lock:
            for oid in ids:
                obj = self.objects.get(oid)
                if obj is None or obj.blob is not None:
                    remaining.discard(oid)
                    continue

                def arrived(oid: int = oid) -> None:
                    remaining.discard(oid)
                    if not remaining:
                        reply()

                obj.callbacks.append(arrived)
            if not remaining:
                reply()

    def _on_wait(self, w: _WorkerProc, request: int, ids: list[int], num_returns: int, timeout: float | None) -> None:
        def work() -> None:
            try:
                ready = self.wait_ids(ids, num_returns, timeout)
            except Exception:
                ready = []
            self.send(w, ("objects", request, [(0, ready)]))

        threading.Thread(target=work, name="nexus-wait", daemon=True).start()

    def _on_actor_ready(
        self, w: _WorkerProc, actor_id: int, error: Blob | None, sequential: bool = False, concurrency: int = 1
    ) -> None:
        with self.lock:
            actor = self.actors.get(actor_id)
            if actor is None:
                return
            actor.sequential = sequential
            actor.concurrency = max(1, concurrency)
            if error is not None:
                actor.error_blob = error
                actor.dead = _actor_died(actor, "its constructor raised")
                self._fail_calls(actor)
            else:
                actor.ready = True
                self._emit("actor", _label(actor), "restarted" if actor.restarts else "created", w.name, "")
                self._pump_calls(actor)
            callbacks, actor.on_ready = actor.on_ready, []
        for callback in callbacks:
            callback(error)

    def _on_control(self, w: _WorkerProc, request: int, op: str, *args: Any) -> None:
        try:
            result: Any = getattr(self, f"control_{op}")(*args)
        except Exception as exc:
            result = ("error", error_blob(exc, "the driver"))
        self.send(w, ("objects", request, [(0, result)]))

    # -- objects ---------------------------------------------------------------------------

    def _store(self, oid: int, blob: Blob, w: _WorkerProc | None = None) -> None:
        """``oid`` has its value (or error) now. A blob from worker ``w`` may fill a region it was given."""
        if w is not None and blob.region is not None:
            w.allocs.pop(blob.region[0], None)  # the region is the object's now, not the worker's
        obj = self.objects.get(oid)
        if obj is None or obj.blob is not None:  # every ref is gone, or it has its outcome (a late result after a kill)
            if blob.region is not None:
                self.allocator.free(*blob.region)
            return
        blob.oid = oid
        obj.blob = blob
        obj.region = blob.region
        obj.used = next(self.ticks)
        if blob.refs:
            obj.contained = blob.refs
            for inner in blob.refs:
                self._change(inner, 1, 0)
        if obj.event is not None:
            obj.event.set()
        callbacks, obj.callbacks = obj.callbacks, []
        for callback in callbacks:
            callback()
        self._maybe_free(oid, obj)

    def _made_by(self, w: _WorkerProc, oid: int) -> None:
        """Worker ``w`` made the id of a new object and holds the one ref to it."""
        if oid not in self.objects:
            self.objects[oid] = _Object()
            w.held[oid] = w.held.get(oid, 0) + 1

    def _args_object(self, args_blob: Blob, w: _WorkerProc | None = None) -> int:
        """Store arguments that live in the arena or hold refs as an object (one ref: the task's); 0 for plain ones."""
        if args_blob.region is None and not args_blob.refs:
            return 0
        oid = next(_ids)
        self.objects[oid] = _Object()
        self._store(oid, args_blob, w)
        return oid

    def _change(self, oid: int, dref: int, dpin: int, w: _WorkerProc | None = None) -> None:
        obj = self.objects.get(oid)
        if obj is None:
            return
        obj.refs += dref
        obj.pins += dpin
        if obj.refs <= 0 and oid in self.pin_cache:  # nobody can get it again: let its read mapping go
            del self.pin_cache[oid]
            self._drain_deferred()
        if w is not None:
            if dref:
                w.held[oid] = w.held.get(oid, 0) + dref
            if dpin:
                w.pinned[oid] = w.pinned.get(oid, 0) + dpin
        if dref < 0 or dpin < 0:
            self._maybe_free(oid, obj)

    def _decref(self, oid: int) -> None:
        if oid:
            self._change(oid, -1, 0)

    def _maybe_free(self, oid: int, obj: _Object) -> None:
        if obj.refs <= 0 and obj.pins <= 0 and obj.blob is not None and not obj.callbacks:
            self._free(oid, obj)

    def _free(self, oid: int, obj: _Object) -> None:
        if self.objects.pop(oid, None) is None:
            return
        if obj.region is not None:
            self.allocator.free(*obj.region)
            self._emit("object", oid, "freed", obj.region[1])
            obj.region = None
        if obj.spilled is not None and self.spill_folder is not None:
            self.spill_folder.remove(obj.spilled)
            obj.spilled = None
        for inner in obj.contained:
            self._change(inner, -1, 0)

    def _blob_or_lost(self, oid: int) -> Blob:
        if self.closing:
            return error_blob(SystemShutdownError("the cluster was shut down before this value arrived"), "the driver")
        obj = self.objects.get(oid)
        if obj is None or obj.blob is None:
            lost = ObjectLostError(f"object {oid:016x} is no longer stored (every reference to it was dropped)")
            return error_blob(lost, "the driver")
        try:
            return self._resident(oid, obj)
        except ObjectStoreFullError as exc:
            return error_blob(exc, "the driver")

    def _ship(self, w: _WorkerProc, oid: int) -> Blob:
        """The blob of ``oid`` for worker ``w``, pinned on its behalf (the worker's copy of the blob holds the pin)."""
        blob = self._blob_or_lost(oid)
        if blob.oid and (blob.region is not None or blob.refs) and w.alive:  # a dead worker's pins are settled
            self._change(oid, 0, 1, w)
            # A copy per shipment: one message may carry the object for several tasks, and pickle would send
            # one blob for all of them (one pin released at the other end for several taken here).
            return Blob(blob.payload, blob.buffers, blob.error, blob.region, blob.refs, blob.oid)
        return blob

    def _unship(self, w: _WorkerProc, body: tuple[Any, ...]) -> None:
        """A task body that never left the outbox: give back the pins _ship took for it."""
        shipped = [(blob.oid, blob) for _, blob in body[5]]
        if isinstance(body[4], Blob) and body[4].oid:
            shipped.append((body[4].oid, body[4]))
        for oid, blob in shipped:
            if oid and (blob.region is not None or blob.refs):
                self._change(oid, 0, -1, w)

    def release(self, oid: int) -> None:
        self._finalized(oid, -1, 0)

    def _finalized(self, oid: int, dref: int, dpin: int) -> None:
        """A ref or a view died in this process: count it now if the lock is free, else later.

        A finalizer runs wherever the garbage collector does: inside a
        locked section of this thread (which must not be interrupted), or
        on a thread that another one, holding the lock, waits for (a thread
        being started under the lock runs finalizers as it starts: waiting
        for the lock there deadlocked the driver). So it never waits: when
        the lock is taken, the change is queued for whoever takes it next
        (the receiver does within a round).
        """
        if self.closed:
            return
        if self.lock._is_owned() or not self.lock.acquire(blocking=False):  # type: ignore[attr-defined]
            self.deferred.append((oid, dref, dpin))
            return
        try:
            self._change(oid, dref, dpin)
            self._drain_deferred()
        finally:
            self.lock.release()

    def _drain_deferred(self) -> None:
        while self.deferred:
            self._change(*self.deferred.popleft())

    # -- the arena ----------------------------------------------------------------------------

    def allocate(self, nbytes: int, w: _WorkerProc | None = None, may_wait: bool = True) -> int:
        """A region of the arena for ``nbytes``, spilling least recently used objects to disk to make room.

        ``may_wait``: the caller holds the lock only for this call, so it may
        wait (~2 ms) for the prefaulter to give back the step it holds, rather
        than allocate around it and fragment the arena.
        """
        with self.lock:
            if self.closing:
                raise ObjectStoreFullError("the cluster is shutting down")
            while may_wait and self.prefault_hold:
                self.prefault_done.wait(0.05)
            while True:
                offset = self.allocator.alloc(nbytes)
                if offset is not None:
                    try:
                        self.arena.reserve(offset + nbytes)
                    except OSError:
                        self.allocator.free(offset, nbytes)
                        if self._spill_one():
                            continue
                        raise ObjectStoreFullError(self._full_message(nbytes, "/dev/shm itself is full")) from None
                    if w is not None:
                        if not w.alive:
                            self.allocator.free(offset, nbytes)
                            raise NexusError(f"{w.name} is gone")
                        w.allocs[offset] = nbytes
                    if self.allocator.high_water + PREFAULT_AHEAD // 2 > self.prefaulted:
                        self.prefault_wanted.set()
                    return offset
                if nbytes > self.allocator.capacity:
                    raise ObjectStoreFullError(self._full_message(nbytes, "it is larger than the store"))
                if self._spill_one():
                    continue
                if self.pin_cache:  # mappings kept for the next get only: give them up and try again
                    self.pin_cache.clear()
                    self._drain_deferred()
                    continue
                raise ObjectStoreFullError(self._full_message(nbytes, "nothing can be spilled"))

    def _prefault_loop(self) -> None:
        """Keep the arena's pages allocated ahead of the regions handed out (see Arena.prefault).

        Only memory no region ever covered is prefaulted (it is overwritten
        with zeros); an allocation that lands on the step being written
        waits for it.
        """
        self.prefault_wanted.set()
        while not self.closing:
            self.prefault_wanted.wait()
            with self.lock:
                if self.closing:
                    return
                start = max(self.prefaulted, self.allocator.high_water)
                target = min(self.arena.size, max(PREFAULT_FIRST, self.allocator.high_water + PREFAULT_AHEAD))
                if start >= target:
                    self.prefault_wanted.clear()
                    continue
                end = min(start + PREFAULT_STEP, target)
                try:
                    self.arena.reserve(end)
                except OSError:
                    return  # /dev/shm is full: allocations will say so when they need the memory
                if not self.allocator.take(start, end - start):  # held while zeros are written: nobody gets it
                    self.prefaulted = end
                    continue
                self.prefault_hold = True
            try:
                self.arena.prefault(start, end - start)
            except OSError:
                return
            finally:
                with self.lock:
                    self.allocator.free(start, end - start)
                    self.prefaulted = end
                    self.prefault_hold = False
                    self.prefault_done.notify_all()

    def _sample_loop(self) -> None:
        """Once a second: each process's CPU and memory, and the work waiting for it (``sample`` events)."""
        ticks = os.sysconf("SC_CLK_TCK")
        page = os.sysconf("SC_PAGE_SIZE")
        last: dict[int, tuple[float, int]] = {}
        while not self.closing:
            time.sleep(SAMPLE_EVERY)
            with self.lock:
                procs = [
                    (w.name, w.proc.pid, len(w.actor.queue) + len(w.actor.inflight) if w.actor else w.inflight)
                    for w in self.every_worker
                    if w.alive and w.proc is not None
                ]
                procs.append(("driver", os.getpid(), len(self.queue)))
            now = time.monotonic()
            for name, pid, queued in procs:
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    with open(f"/proc/{pid}/statm") as f:
                        rss = int(f.read().split()[1]) * page
                except (OSError, IndexError, ValueError):
                    continue
                cpu_ticks = int(fields[11]) + int(fields[12])
                before = last.get(pid)
                last[pid] = (now, cpu_ticks)
                cpu = 0.0 if before is None else 100.0 * (cpu_ticks - before[1]) / ticks / max(now - before[0], 1e-6)
                self._emit("sample", name, pid, round(cpu, 1), rss, queued)

    def _full_message(self, nbytes: int, why: str) -> str:
        pinned = [o for o in self.objects.values() if o.region is not None and o.pins > 0]
        return (
            f"the object store has no room for {nbytes:,} bytes ({why}): capacity {self.allocator.capacity:,} bytes, "
            f"{self.allocator.used:,} in use, {sum(o.region[1] for o in pinned if o.region):,} of them in {len(pinned)} "
            f"objects pinned by readers, largest free block {self.allocator.largest_free:,}; drop references or views "
            "of objects you no longer need, or start the cluster with a larger object_store_memory"
        )

    def _spill_one(self) -> bool:
        """Move the least recently used unpinned object to disk; False when there is none."""
        victim_id, victim = 0, None
        for oid, obj in self.objects.items():
            if obj.region is not None and obj.pins <= 0 and obj.blob is not None and (victim is None or obj.used < victim.used):
                victim_id, victim = oid, obj
        if victim is None or victim.region is None:
            return False
        offset, size = victim.region
        if self.spill_folder is None:
            self.spill_folder = SpillFolder()
        name = f"{victim_id:016x}"
        self.spill_folder.write(name, self.arena.read(offset, size))
        self.allocator.free(offset, size)
        victim.region = None
        victim.spilled = name
        self.spills += 1
        self._emit("object", victim_id, "spilled", size)
        self.spilled_bytes += size
        return True

    def _resident(self, oid: int, obj: _Object) -> Blob:
        """The object's blob, with its bytes back in the arena if they were spilled."""
        assert obj.blob is not None
        obj.used = next(self.ticks)
        if obj.spilled is None:
            return obj.blob
        assert obj.blob.region is not None
        size = obj.blob.region[1]
        offset = self.allocate(size, may_wait=False)  # the caller's locked section must not be interrupted
        assert self.spill_folder is not None
        try:
            self.spill_folder.read_into(obj.spilled, self.arena.view[offset : offset + size])
        except BaseException:
            self.allocator.free(offset, size)
            raise
        self.spill_folder.remove(obj.spilled)
        obj.spilled = None
        obj.blob = obj.blob.moved(offset)
        obj.region = obj.blob.region
        self.restores += 1
        self._emit("object", oid, "restored", size)
        return obj.blob

    def store_stats(self) -> dict[str, int]:
        with self.lock:
            in_arena = [o for o in self.objects.values() if o.region is not None]
            return {
                "capacity": self.allocator.capacity,
                "used": self.allocator.used,
                "objects": len(self.objects),
                "objects_in_arena": len(in_arena),
                "pinned": sum(1 for o in in_arena if o.pins > 0),
                "spilled_now": sum(1 for o in self.objects.values() if o.spilled is not None),
                "spills": self.spills,
                "restores": self.restores,
                "spilled_bytes": self.spilled_bytes,
                "reserved": self.arena.reserved,
            }

    def put(self, value: Any) -> ObjectRef:
        oid = next(_ids)
        blob = serialize(value, "the value to put", oid)
        with self.lock:
            self.objects[oid] = _Object()
            self._store(oid, blob)
        if self.observed is not None:
            self._push((self._seq(), "object", _now(), oid, "put", blob.nbytes))
        return ObjectRef(oid)

    def wait_object(self, oid: int, timeout: float | None) -> Blob | None:
        """The blob of ``oid`` once it is there (None after ``timeout``), pinned for reading if it is in the arena.

        The caller receives while it waits.
        """
        with self.lock:
            obj = self.objects.get(oid)
            if obj is None or obj.blob is not None:
                return self._for_reading(oid)
        blob = self._wait_object(oid, obj, timeout)
        if blob is None:
            return None
        with self.lock:
            return self._for_reading(oid)

    def _for_reading(self, oid: int) -> Blob:
        """The blob of ``oid`` with a read pin of its region taken now (under the lock: it cannot be spilled meanwhile)."""
        blob = self._blob_or_lost(oid)
        if blob.region is None or not blob.oid:
            return blob
        copy = Blob(blob.payload, blob.buffers, blob.error, blob.region, blob.refs, blob.oid)
        pin = self.pin_cache.get(oid)
        if pin is None:
            pin = self.pin_cache[oid] = self._pin(oid, blob.region)
            if len(self.pin_cache) > PIN_CACHE:
                self.pin_cache.popitem(last=False)
        else:
            self.pin_cache.move_to_end(oid)
        copy.pin = pin
        return copy

    def _pin(self, oid: int, region: tuple[int, int]) -> Pin:
        self._change(oid, 0, 1)
        return self.arena.pin(region[0], region[1], lambda: self._finalized(oid, 0, -1))

    def _wait_object(self, oid: int, obj: _Object, timeout: float | None) -> Blob | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.role_cond:
            self.want_role += 1
        if self.receiver_parked:  # it holds the role while parked: wake it so that it lets go
            self._wake_receiver()
        try:
            while obj.blob is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                if self.role.acquire(blocking=False):
                    try:
                        while obj.blob is None:
                            if self.closed:
                                return self._blob_or_lost(oid)
                            left = None if deadline is None else deadline - time.monotonic()
                            if left is not None and left <= 0:
                                return None
                            self._receive_once(0.05 if left is None else min(left, 0.05))
                    finally:
                        self.role.release()
                else:  # another thread receives: it sets the event when the object arrives
                    if self.closed:
                        return self._blob_or_lost(oid)
                    with self.lock:
                        if obj.blob is None and obj.event is None:
                            obj.event = threading.Event()
                        event = obj.event
                    if event is not None:
                        event.wait(0.001 if left is None else min(left, 0.001))
        finally:
            with self.role_cond:
                self.want_role -= 1
                self.activity = time.monotonic()
                self.role_cond.notify_all()
        return obj.blob

    def wait_ids(self, ids: Sequence[int], num_returns: int, timeout: float | None) -> list[int]:
        """The ids ready once ``num_returns`` are (or after ``timeout``); SystemShutdownError if the cluster shuts down first."""
        done = threading.Event()
        ready: list[int] = []
        with self.lock:
            if self.closing:
                raise SystemShutdownError("the cluster was shut down (nexus.shutdown)")
            for oid in ids:
                obj = self.objects.get(oid)
                if obj is None or obj.blob is not None:
                    ready.append(oid)
                else:

                    def arrived(oid: int = oid) -> None:
                        ready.append(oid)
                        if len(ready) >= num_returns:
                            done.set()

                    obj.callbacks.append(arrived)
            if len(ready) >= num_returns:
                done.set()
            else:
                self.waits.add(done)
        try:
            done.wait(timeout)
        finally:
            with self.lock:
                self.waits.discard(done)
        with self.lock:
            if self.closing and len(ready) < num_returns:
                raise SystemShutdownError("the cluster was shut down (nexus.shutdown) while this wait was waiting")
            return list(ready)

    # -- tasks ------------------------------------------------------------------------------

    def define(self, def_id: bytes, factory: Callable[[], Blob]) -> None:
        if def_id not in self.defs:
            blob = factory()
            with self.lock:
                self.defs.setdefault(def_id, blob)

    def submit_task(
        self, fn_id: bytes, factory: Callable[[], Blob], name: str, args: tuple, kwargs: dict, num_returns: int, options: dict
    ) -> list[ObjectRef]:
        begin = _now() if self.observed is not None else 0
        needs = self.needs_of(options, name, default_cpu=1.0)
        self.define(fn_id, factory)
        if len(self.queue) >= MAX_QUEUED_TASKS or self.queued_bytes >= MAX_QUEUED_BYTES:
            self._wait_for_queue_room()
        args, kwargs, deps = split_args(args, kwargs)
        args_blob = serialize((args, kwargs), f"the arguments of {name}")
        result_ids = [next(_ids) for _ in range(num_returns)]
        refs = [ObjectRef(oid) for oid in result_ids]
        with self.lock:
            for oid in result_ids:
                self.objects[oid] = _Object()
            task = _Task(fn_id, name, args_blob, deps, result_ids, needs)
            task.args_oid = self._args_object(args_blob)
            self._retry_options(task, options)
            if begin and self.observed is not None:
                self._push((self._seq(), "submitted", _now(), task.task_id, name, "task", task.task_id, 0, "driver", begin))
            self._enqueue(task)
        self._assist()
        return refs

    def _wait_for_queue_room(self) -> None:
        """Back-pressure: tasks are submitted faster than the workers run them; wait until the queue drains a bit."""
        if not self.queue_full_warned:
            self.queue_full_warned = True
            print(
                f"nexus: {len(self.queue):,} tasks are waiting for a worker ({self.queued_bytes:,} bytes of arguments); "
                "submitting waits for the workers to catch up",
                file=sys.stderr,
            )
        while (len(self.queue) >= MAX_QUEUED_TASKS * 0.9 or self.queued_bytes >= MAX_QUEUED_BYTES * 0.9) and not self.closing:
            self._assist()
            time.sleep(0.001)

    def needs_of(self, options: dict, name: str, default_cpu: float) -> dict[str, float] | None:
        """What a task or actor holds while it runs; None for a plain one-CPU task. Infeasible needs fail here."""
        if not options:
            return None
        cpu = options.get("num_cpus")
        resources = dict(options.get("resources") or {})
        if options.get("num_gpus"):
            resources["GPU"] = float(options["num_gpus"])
        if (cpu is None or cpu == default_cpu) and not resources:
            return None
        needs = {"CPU": float(default_cpu if cpu is None else cpu), **{k: float(v) for k, v in resources.items()}}
        for key, amount in needs.items():
            if amount < 0:
                raise ValueError(f"{name} asks for {amount} {key}: resource amounts cannot be negative")
            if amount > self.total.get(key, 0.0):
                have = self.total.get(key, 0.0)
                raise ValueError(
                    f"{name} can never run: it needs {amount:g} {key} and the cluster has {have:g} "
                    f"(nexus.init(num_cpus=..., resources={{...}}) sets what the cluster has)"
                )
        return needs

    @staticmethod
    def _retry_options(task: _Task, options: dict) -> None:
        retries = options.get("max_retries")
        if retries is not None:
            task.retries = int(retries)
        retry = options.get("retry_exceptions", False)
        if isinstance(retry, type):
            retry = (retry,)
        task.retry_exceptions = tuple(retry) if isinstance(retry, (list, tuple)) else bool(retry)

    def _hold_deps(self, deps: list[int], on_ready: Callable[[], None]) -> int:
        """Pin the dependencies; count those not ready yet and call ``on_ready`` as each arrives."""
        missing = 0
        for oid in deps:
            obj = self.objects.get(oid)
            if obj is None:
                continue
            obj.refs += 1
            if obj.blob is None:
                missing += 1
                obj.callbacks.append(on_ready)
        return missing

    def _dep_blobs(self, w: _WorkerProc, deps: list[int]) -> list[tuple[int, Blob]]:
        return [(oid, self._ship(w, oid)) for oid in deps]

    def _unpin(self, deps: list[int]) -> None:
        for oid in deps:
            self._change(oid, -1, 0)

    def _enqueue(self, task: _Task) -> None:
        def dep_ready() -> None:
            task.missing -= 1
            if task.missing == 0 and self.waiting.pop(task.task_id, None) is not None:  # not cancelled meanwhile
                self._queue_task(task)

        task.missing = self._hold_deps(task.deps, dep_ready)
        if task.missing == 0:
            self._queue_task(task)
        else:
            self.waiting[task.task_id] = task

    def _queue_task(self, task: _Task) -> None:
        if task.needs is not None:
            self.special_queued += 1
        if not task.args_oid:
            self.queued_bytes += task.args_blob.nbytes
        self.queue.append(task)
        self._dispatch()

    def _free_cpus(self) -> float:
        running = sum(w.cpu_held for w in self.workers if w.alive and w.inflight and not w.blocked)
        return self.total["CPU"] - running - self.used["CPU"]

    def _fits(self, task: _Task) -> bool:
        if task.needs is None:
            return self._free_cpus() >= 1.0
        for key, amount in task.needs.items():
            if key == "CPU":
                if self._free_cpus() < amount:
                    return False
            elif self.used[key] + amount > self.total[key]:
                return False
        return True

    def _take_fitting(self) -> _Task | None:
        """The first queued task that fits the free resources (a big one waiting does not hold back small ones)."""
        for i, task in enumerate(self.queue):
            if self._fits(task):
                del self.queue[i]
                if task.needs is not None:
                    self.special_queued -= 1
                return task
            if i >= 64:
                break
        return None

    def _dispatch(self) -> None:
        """Idle workers first, one task each; with a backlog, top workers up to PREFETCH tasks in flight.

        Prefetching hides the round trip through the driver between two short
        tasks (it doubles the rate of a flood of small tasks); the price is
        that a task prefetched behind a long one waits for it, so it happens
        only while more tasks wait than there are workers, and only to a
        worker whose current task started less than PREFETCH_YOUNG ago. A
        function whose last task ran under QUICK_TASK gets PREFETCH_QUICK in
        flight per worker: its tasks then travel coalesced, many to a message
        (tasks submitted together run 1.2-1.3x faster); work stealing takes
        back those stuck behind one that turns out long.
        """
        queue = self.queue
        if self.closing:
            return
        if not queue:
            self._steal()
            return
        ready = [w for w in self.workers if w.alive and w.ready.is_set()]
        for w in ready:
            if not queue:
                return
            if w.inflight == 0 or w.blocked:
                task = self._take_fitting()
                if task is None:
                    return
                self._send_task(w, task)
        if len(queue) <= len(ready) or self.special_queued:
            return
        now = time.monotonic()
        young = [w for w in ready if not w.blocked and now - w.busy_since < PREFETCH_YOUNG]
        depth = 2
        took = self.took
        while queue and depth <= PREFETCH_QUICK:
            for w in young:
                if not queue:
                    return
                if depth > PREFETCH and took.get(queue[0].fn_id, 1.0) >= QUICK_TASK:
                    return  # deeper only for a task whose function is known to be quick
                if w.inflight < depth:
                    self._send_task(w, queue.popleft())
            depth += 1

    def _steal(self) -> None:
        """Work stealing: an idle worker takes the tasks queued behind a long one on a busy worker.

        Tasks still in the busy worker's outbox come back at once; those
        already in its channel are asked back (``revoke``): its monitor
        thread answers within a few ms with the ones that had not started,
        and they go to the front of the queue. Called with the lock held.
        """
        if self.queue or self.closing:
            self.steal_watch = False
            return
        if not any(w.inflight == 0 and w.alive and w.ready.is_set() for w in self.workers):
            self.steal_watch = False
            return
        now = time.monotonic()
        watch = False
        for v in self.workers:
            if v.inflight < 2 or v.blocked or v.revoking or not v.alive:
                continue
            if now - v.busy_since < STEAL_AFTER:
                watch = True
                continue
            back = [self.running[body[1]] for body in v.outbox if body[1] in self.running]
            for body in v.outbox:
                self._unship(v, body)
            v.outbox.clear()
            for task in back:
                self._take_back(v, task)
            queued = [t.task_id for t in self.running.values() if t.worker is v]
            if len(queued) > 1:
                v.revoking = True
                self.send(v, ("revoke", queued))
        self.steal_watch = watch
        if self.queue:
            self._dispatch()

    def _retry_on_error(self, task: _Task, items: list[tuple[int, Blob]]) -> bool:
        """Whether a task that raised is retried (``retry_exceptions`` and retries left); counts the attempt."""
        if not task.retry_exceptions or task.retries == 0 or task.cancelled:
            return False
        failed = next((blob for _, blob in items if blob.error), None)
        if failed is None:
            return False
        from .values import deserialize

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
            if blob.region is not None:
                self.allocator.free(*blob.region)
        self._count_retry(task, f"it raised {getattr(error, 'type_name', 'an exception')}")
        return True

    def _count_retry(self, task: _Task, reason: str) -> None:
        if task.retries > 0:
            task.retries -= 1
        task.attempt += 1
        self.events.publish(TaskRetried(task.name, task.attempt, reason))

    def _take_back(self, w: _WorkerProc, task: _Task) -> None:
        """A task sent to ``w`` that had not started goes back to the front of the queue."""
        self.running.pop(task.task_id, None)
        w.inflight -= 1
        if task.needs is not None:
            for key, amount in task.needs.items():
                if key != "CPU":
                    self.used[key] -= amount
            self.special_queued += 1
        task.worker = None
        self.queue.appendleft(task)
        if not task.args_oid:
            self.queued_bytes += task.args_blob.nbytes
        self.stolen += 1

    def _on_revoked(self, w: _WorkerProc, task_ids: list[int]) -> None:
        with self.lock:
            w.revoking = False
            for task_id in reversed(task_ids):  # appendleft: the first stays first
                task = self.running.get(task_id)
                if task is not None and task.worker is w:
                    self._take_back(w, task)
            self._dispatch()

    def _task_finished(self, w: _WorkerProc, task: _Task) -> None:
        self._unpin(task.deps)
        self._decref(task.args_oid)
        task.args_oid = 0
        w.inflight -= 1
        w.busy_since = time.monotonic()  # the next task in its channel (a prefetched, plain one) starts now
        w.cpu_held = 1.0 if w.inflight else 0.0
        if task.needs is not None:
            for key, amount in task.needs.items():
                if key != "CPU":
                    self.used[key] -= amount

    def _send_task(self, w: _WorkerProc, task: _Task) -> None:
        if not task.args_oid:
            self.queued_bytes -= task.args_blob.nbytes
        if task.fn_id not in w.shipped:
            self.send(w, ("def", task.fn_id, self.defs[task.fn_id]))
            w.shipped.add(task.fn_id)
        deps = self._dep_blobs(w, task.deps)
        args_blob = self._ship(w, task.args_oid) if task.args_oid else task.args_blob
        if w.inflight == 0 or w.blocked:
            w.busy_since = time.monotonic()
            w.cpu_held = 1.0 if task.needs is None else task.needs.get("CPU", 0.0)
        if task.needs is not None:
            for key, amount in task.needs.items():
                if key != "CPU":
                    self.used[key] += amount
        w.inflight += 1
        task.worker = w
        self.running[task.task_id] = task
        body = ("task", task.task_id, task.fn_id, task.name, args_blob, deps, task.result_ids, task.trace)
        if w.blocked:
            self._flush(w)
            self.send(w, body)
        else:
            self._post(w, body, w.inflight - 1, after=2)  # one prefetched task always waits in the channel
        # the dependencies stay pinned until the task is done: it may be taken back and sent again

    # -- actors -----------------------------------------------------------------------------

    def create_actor(self, cls_id: bytes, factory: Callable[[], Blob], name: str, args: tuple, kwargs: dict, options: dict) -> int:
        self.define(cls_id, factory)
        args, kwargs, deps = split_args(args, kwargs)
        args_blob = serialize((args, kwargs), f"the arguments of {name}")
        actor_id = next(_ids)
        try:
            self._create_actor(actor_id, cls_id, name, args_blob, deps, options, None)
        except BaseException:
            self._discard(args_blob)
            raise
        return actor_id

    def _discard(self, blob: Blob) -> None:
        """A blob no object took (its creation failed): its arena region comes back."""
        if blob.region is not None and not blob.oid:
            with self.lock:
                self.allocator.free(*blob.region)
            blob.region = None

    def _create_actor(
        self,
        actor_id: int,
        cls_id: bytes,
        cls_name: str,
        args_blob: Blob,
        deps: list[int],
        options: dict,
        answer: Callable[[Blob | None], None] | None,
    ) -> None:
        name = options.get("name")
        namespace = options.get("namespace") or self.namespace
        needs = self.needs_of(options, cls_name, default_cpu=0.0)  # actors hold no CPU unless they ask (as in Ray)
        with self.lock:
            if needs is not None:
                short = [k for k, v in needs.items() if (self._free_cpus() if k == "CPU" else self.total[k] - self.used[k]) < v]
                if short:
                    raise ValueError(f"{cls_name} needs {', '.join(f'{needs[k]:g} {k}' for k in short)}, more than is free now")
            if name is not None and (namespace, name) in self.named:
                existing = self.actors.get(self.named[(namespace, name)])
                if existing is not None and existing.dead is None:
                    raise ValueError(
                        f"an actor named {name!r} already exists in namespace {namespace!r}; use get_if_exists=True or get_actor"
                    )
            actor = _Actor(actor_id, cls_name, name, namespace)
            actor.needs = needs or {}
            actor.max_pending = int(options.get("max_pending_calls") or -1)
            actor.max_restarts = int(options.get("max_restarts") or 0)
            actor.max_task_retries = int(options.get("max_task_retries") or 0)
            actor.mailbox = options.get("mailbox")
            actor.cls_id, actor.args_blob, actor.deps, actor.options = cls_id, args_blob, deps, options
            actor.args_oid = self._args_object(args_blob)
            for key, amount in actor.needs.items():
                self.used[key] += amount
            self.actors[actor_id] = actor
            if name is not None:
                self.named[(namespace, name)] = actor_id
            if answer is not None:
                actor.on_ready.append(answer)
            missing = [0]

            def dep_ready() -> None:
                missing[0] -= 1
                if missing[0] == 0:
                    self._helper(self._place_actor, actor)

            missing[0] = self._hold_deps(deps, dep_ready)
        if missing[0] == 0:
            self._place_actor(actor)

    def _place_actor(self, actor: _Actor) -> None:
        """Start ``actor`` in a worker process of its own (a pre-started spare when there is one)."""
        with self.lock:
            if actor.dead is not None or self.closing:
                return
            w = self.spares.pop() if self.spares else None
        if w is None:
            w = self._spawn("actor")
            with self.lock:
                self.spares.remove(w)
        with self.lock:
            w.actor = actor
            actor.worker = w
            self.generation += 1
        self._helper(self._replenish_spare)

        def start() -> None:
            if not self._wait_started(w, 60):
                if w.alive and not self.closing:  # (one that died is settled by _worker_died: restart or fail)
                    self._on_actor_ready(w, actor.actor_id, error_blob(NexusError(f"{w.name} did not start"), "the driver"))
                return
            with self.lock:
                if actor.dead is not None or actor.worker is not w or not w.alive:
                    return
                if actor.cls_id not in w.shipped:
                    self.send(w, ("def", actor.cls_id, self.defs[actor.cls_id]))
                    w.shipped.add(actor.cls_id)
                args = self._ship(w, actor.args_oid) if actor.args_oid else actor.args_blob
                deps = self._dep_blobs(w, actor.deps)
                self.send(w, ("create_actor", actor.actor_id, actor.cls_id, actor.cls_name, args, deps, actor.options))
                if actor.max_restarts == 0:  # nothing will need them again: the worker's copy pins the arguments
                    self._unpin(actor.deps)
                    actor.deps = []
                    self._decref(actor.args_oid)
                    actor.args_oid = 0

        if w.ready.is_set():
            start()
        else:
            self._helper(start)

    def _helper(self, target: Callable[..., Any], *args: Any) -> None:
        """Run ``target`` on a thread that shutdown() waits for (spawning must not race with it)."""

        def run() -> None:
            try:
                with contextlib.suppress(NexusError):
                    target(*args)
            finally:
                self.helpers.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=f"nexus-helper-{getattr(target, '__name__', '')}", daemon=True)
        self.helpers.add(thread)
        thread.start()

    def _replenish_spare(self) -> None:
        with self.lock:
            if self.spares or self.closed:
                return
        with contextlib.suppress(Exception):
            self._spawn("actor")

    def submit_call(self, actor_id: int, method: str, args: tuple, kwargs: dict, num_returns: int, tell: bool) -> list[ObjectRef]:
        begin = _now() if self.observed is not None else 0
        if not self._room_for_call(actor_id, method):  # before anything is stored for the call
            refs = []
            if not tell:
                blob = error_blob(MailboxFullError(f"dropped: the actor's mailbox was full (drop-newest), {method}"), "the driver")
                for _ in range(num_returns):
                    oid = next(_ids)
                    with self.lock:
                        self.objects[oid] = _Object()
                        self._store(oid, blob)
                    refs.append(ObjectRef(oid))
            return refs
        args, kwargs, deps = split_args(args, kwargs)
        args_blob = serialize((args, kwargs), f"the arguments of {method}")
        result_ids = [] if tell else [next(_ids) for _ in range(num_returns)]
        with self.lock:
            for oid in result_ids:
                self.objects[oid] = _Object()
            call = _Call(method, args_blob, deps, result_ids)
            call.args_oid = self._args_object(args_blob)
            actor = self.actors.get(actor_id)
            call.retries = actor.max_task_retries if actor is not None else 0
            if begin and self.observed is not None:
                label: Any = method
                if actor is not None:
                    label = actor.labels.get(method) or actor.labels.setdefault(method, (actor.cls_name, method))
                self._push((self._seq(), "submitted", _now(), call.call_id, label, "call", call.call_id, 0, "driver", begin))
            self._enqueue_call(actor_id, call)
        refs = [ObjectRef(oid) for oid in result_ids]
        self._assist()
        return refs

    def _check_pending(self, actor_id: int) -> None:
        actor = self.actors.get(actor_id)
        if actor is not None and actor.max_pending >= 0 and len(actor.queue) + len(actor.inflight) >= actor.max_pending:
            raise PendingCallsLimitExceededError(
                f"actor {actor.cls_name} has {actor.max_pending} calls pending (its max_pending_calls); "
                "wait for some results before sending more"
            )

    def _room_for_call(self, actor_id: int, method: str) -> bool:
        """Apply the actor's bounded mailbox before a new call: True to go on, False to drop the new call.

        Calls count while queued here or running (answers pending); BLOCK
        waits (outside the lock) for room, up to the mailbox's
        ``block_timeout``; FAIL raises MailboxFullError; DROP_OLDEST drops the
        oldest call not sent yet; DROP_NEWEST drops this one.
        """
        actor = self.actors.get(actor_id)
        if actor is not None and actor.mailbox is None and actor.max_pending < 0:
            return True  # the common case: no bound (a dict read is atomic; no lock, no import)
        return self._room_for_bounded_call(actor_id, method)

    def _room_for_bounded_call(self, actor_id: int, method: str) -> bool:
        from ..core.mailbox import OverflowPolicy

        deadline: float | None = None
        while True:
            with self.lock:
                self._check_pending(actor_id)
                actor = self.actors.get(actor_id)
                spec = actor.mailbox if actor is not None else None
                if spec is None or actor is None or actor.dead is not None:
                    return True
                assert spec.capacity is not None
                if len(actor.queue) + len(actor.inflight) < spec.capacity:
                    return True
                name = f"{actor.cls_name} ({actor.actor_id:x})"
                if spec.overflow is OverflowPolicy.FAIL:
                    raise MailboxFullError(f"actor {name} has {spec.capacity} calls pending, its mailbox's capacity")
                if spec.overflow is OverflowPolicy.DROP_NEWEST:
                    self.events.publish(CallDropped(name, method, spec.overflow.value))
                    return False
                if spec.overflow is OverflowPolicy.DROP_OLDEST and actor.queue:
                    oldest = actor.queue.popleft()
                    self._unpin(oldest.deps)
                    self._decref(oldest.args_oid)
                    blob = error_blob(MailboxFullError(f"dropped: actor {name}'s mailbox was full (drop-oldest)"), "the driver")
                    for oid in oldest.result_ids:
                        self._store(oid, blob)
                    self.events.publish(CallDropped(name, oldest.method, spec.overflow.value))
                    return True
            # BLOCK (or DROP_OLDEST with every call already running): wait for answers to make room
            now = time.monotonic()
            if deadline is None:
                deadline = None if spec.block_timeout is None else now + spec.block_timeout
            elif deadline is not None and now >= deadline:
                raise MailboxFullError(f"actor {name}'s mailbox stayed full for {spec.block_timeout} s")
            self._assist()
            time.sleep(0.0005)

    def _enqueue_call(self, actor_id: int, call: _Call) -> None:
        actor = self.actors.get(actor_id)
        if actor is None:
            blob = error_blob(ActorDiedError(f"actor {actor_id:x} is unknown to this cluster"), "the driver")
            for oid in call.result_ids:
                self._store(oid, blob)
            self._decref(call.args_oid)
            call.args_oid = 0
            return

        def dep_ready() -> None:
            call.missing -= 1
            if call.missing == 0:
                self._pump_calls(actor)

        call.missing = self._hold_deps(call.deps, dep_ready) if call.deps else 0
        actor.queue.append(call)
        if actor.dead is not None:
            self._fail_calls(actor)
        else:
            self._pump_calls(actor)

    def _pump_calls(self, actor: _Actor) -> None:
        """Send queued calls in order; a call waiting for its arguments holds back the ones behind it."""
        w = actor.worker
        if not actor.ready or w is None:
            return
        while actor.queue and actor.queue[0].missing == 0:
            call = actor.queue.popleft()
            if call.result_ids:
                actor.inflight[call.call_id] = call
            deps = self._dep_blobs(w, call.deps)
            args = self._ship(w, call.args_oid) if call.args_oid else call.args_blob
            body = ("call", actor.actor_id, call.call_id, call.method, args, deps, call.result_ids, call.trace)
            unanswered = len(actor.inflight) - (1 if call.result_ids else 0)
            # A concurrent actor's call is held only while as many as it may run at once (and one more,
            # waiting in the channel) are unanswered: it could not start before one of them ends anyway.
            self._post(w, body, unanswered, after=2 if actor.sequential else actor.concurrency + 1)
            if call.retries == 0 or not call.result_ids:
                self._unpin(call.deps)
                self._decref(call.args_oid)  # the worker's copy holds a pin of it from here on
                call.args_oid = 0
                call.deps = []  # consumed: a failure of the actor from here on must not release them again

    def _fail_calls(self, actor: _Actor) -> None:
        """The actor is dead: its calls fail (those queued and in flight; later ones as they come, once each)."""
        assert actor.dead is not None
        if not actor.exited:  # what its death itself settles, once (not again for each call made to it later)
            actor.exited = True
            for key, amount in actor.needs.items():  # a dead actor holds nothing
                self.used[key] -= amount
            actor.needs = {}
            self._unpin(actor.deps)
            actor.deps = []
            self._decref(actor.args_oid)
            actor.args_oid = 0
            self.events.publish(ActorExited(_label(actor), str(actor.dead)))
            self._emit("actor", _label(actor), "died", actor.worker.name if actor.worker else "", str(actor.dead))
        waiting, actor.on_ready = actor.on_ready, []
        if waiting:
            died = actor.error_blob or error_blob(ActorDiedError(str(actor.dead)), "the driver")
            for answer in waiting:
                with contextlib.suppress(Exception):
                    answer(died)
        reason = actor.dead if isinstance(actor.dead, ActorDiedError) else ActorDiedError(str(actor.dead))
        blob = actor.error_blob if actor.error_blob is not None else error_blob(reason, "the driver")
        calls = list(actor.queue) + list(actor.inflight.values())
        actor.queue.clear()
        actor.inflight.clear()
        for call in calls:
            self._unpin(call.deps)  # every dep that existed got a ref (_hold_deps), arrived or not
            call.deps = []
            self._decref(call.args_oid)
            call.args_oid = 0
            for oid in call.result_ids:
                self._store(oid, blob)

    def control_get_actor(self, name: str, namespace: str | None) -> tuple[int, str]:
        with self.lock:
            actor_id = self.named.get((namespace or self.namespace, name))
            actor = self.actors.get(actor_id) if actor_id is not None else None
            if actor is None or actor.dead is not None:
                raise ValueError(f"no actor named {name!r} in namespace {namespace or self.namespace!r}")
            return actor.actor_id, actor.cls_name

    def control_kill(self, actor_id: int) -> None:
        self.kill(actor_id)

    def kill(self, actor_id: int, no_restart: bool = True) -> None:
        with self.lock:
            actor = self.actors.get(actor_id)
            if actor is None or actor.dead is not None:
                return
            if not no_restart:  # as if its process had crashed: it restarts if it may
                w = actor.worker
                if w is not None and w.proc is not None:
                    with contextlib.suppress(ProcessLookupError):
                        w.proc.kill()
                return
            actor.dead = ActorDiedError(f"actor {actor.cls_name} ({actor_id:x}) was killed with nexus.kill")
            w = actor.worker
            self._fail_calls(actor)
            if actor.name is not None:
                self.named.pop((actor.namespace, actor.name), None)
        if w is not None and w.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                w.proc.kill()  # the receiver sees its pidfd and cleans up (_worker_died)

    def cancel(self, oid: int, force: bool = False) -> bool:
        """Cancel the task that would produce ``oid``: drop it if queued, else interrupt it (``force``: kill its worker).

        True when a task was found.
        """
        with self.lock:
            for task in list(self.waiting.values()):
                if oid in task.result_ids:  # still waiting for an argument: settled now, never queued
                    del self.waiting[task.task_id]
                    self._cancel_unsent(task, "while it waited for its arguments")
                    return True
            for task in list(self.queue):
                if oid in task.result_ids:
                    self.queue.remove(task)
                    if task.needs is not None:
                        self.special_queued -= 1
                    if not task.args_oid:
                        self.queued_bytes -= task.args_blob.nbytes
                    self._cancel_unsent(task, "before it ran")
                    return True
            for task in self.running.values():
                if oid in task.result_ids and task.worker is not None:
                    task.cancelled = True
                    if force and task.worker.proc is not None:
                        with contextlib.suppress(ProcessLookupError):
                            task.worker.proc.kill()  # the receiver sees it die: TaskCancelledError, a new worker
                    else:  # the worker drops it if it has not started, else raises TaskCancelledError in it
                        self.send(task.worker, ("cancel", task.task_id))
                    return True
        return False

    def _cancel_unsent(self, task: _Task, when: str) -> None:
        task.cancelled = True
        blob = error_blob(TaskCancelledError(f"task {task.name} was cancelled {when}"), "the driver")
        for result in task.result_ids:
            self._store(result, blob)
        self._unpin(task.deps)
        self._decref(task.args_oid)
        task.args_oid = 0

    # -- failures ------------------------------------------------------------------------------

    def _worker_died(self, w: _WorkerProc) -> None:
        with self.lock:
            self.generation += 1
            was_alive = w.alive
            w.alive = False
            w.outbox.clear()
            self._forget_worker_refs(w)
            assert w.proc is not None
            code = w.proc.poll()
            with contextlib.suppress(OSError):
                os.close(w.pidfd)
            w.pidfd = -1
            if self.closed:
                return
            lost = [t for t in self.running.values() if t.worker is w]
            for task in reversed(lost):  # back to the front of the queue in their order
                if task.retries != 0 and not task.cancelled:
                    self._count_retry(task, f"its {w.name} died (exit code {code})")
                    self._take_back(w, task)
                    continue
                self.running.pop(task.task_id, None)
                self._task_finished(w, task)
                if task.cancelled:
                    failure: BaseException = TaskCancelledError(f"task {task.name} was cancelled (its worker was killed)")
                else:
                    failure = WorkerCrashedError(
                        f"{w.name} died (exit code {code}) while running {task.name}, and it has no retries left (max_retries)"
                    )
                blob = error_blob(failure, "the driver")
                for oid in task.result_ids:
                    self._store(oid, blob)
            assert w.proc is not None
            self.events.publish(WorkerDied(w.name, w.proc.pid, code, w.actor.cls_name if w.actor else None, len(lost)))
            self._emit("worker", w.name, w.proc.pid, "died", f"exit code {code}")
            actor = w.actor
            if actor is not None and actor.dead is None and actor.worker is w:
                if actor.max_restarts not in (0, actor.restarts) and not self.closing:
                    self._restart_actor(actor, f"its {w.name} exited with code {code}")
                else:
                    spent = f" and its {actor.restarts} restarts (max_restarts) are spent" if actor.max_restarts else ""
                    actor.dead = _actor_died(actor, f"its {w.name} exited with code {code}{spent}")
                    self._fail_calls(actor)
            if w in self.workers:
                self.workers.remove(w)
                replace = was_alive
                if not w.ready.is_set():  # it died before it started: something in its environment, most likely
                    self.start_failures += 1
                    if self.start_failures >= MAX_START_FAILURES:
                        replace = False
                        self.log(
                            f"nexus: {self.start_failures} workers in a row exited before they started (the last with "
                            f"code {code}; their output is above); the pool stops replacing them"
                        )
            else:
                replace = False
                if w in self.spares:
                    self.spares.remove(w)
        with contextlib.suppress(Exception):
            w.conn.close()
        self._reap(w)
        if replace and not self.closing:
            self._helper(self._spawn, "task")

    def _restart_actor(self, actor: _Actor, reason: str) -> None:
        """The actor's process died: run its constructor again in a new one; calls in flight are retried or fail."""
        actor.restarts += 1
        actor.ready = False
        actor.worker = None
        inflight = sorted(actor.inflight.values(), key=lambda c: c.call_id)
        actor.inflight.clear()
        retried = [c for c in inflight if c.retries != 0]
        failed = [c for c in inflight if c.retries == 0]
        blob = error_blob(
            ActorDiedError(
                f"actor {actor.cls_name} ({actor.actor_id:x}) died while running this call ({reason}); it is restarting, "
                "and the call is not retried (max_task_retries)"
            ),
            "the driver",
        )
        for call in failed:
            self._unpin(call.deps)
            call.deps = []
            self._decref(call.args_oid)
            call.args_oid = 0
            for oid in call.result_ids:
                self._store(oid, blob)
        for call in reversed(retried):
            if call.retries > 0:
                call.retries -= 1
            actor.queue.appendleft(call)
        self.events.publish(ActorRestarting(_label(actor), actor.restarts, reason, len(retried), len(failed)))
        self._emit("actor", _label(actor), "restarting", "", reason)
        self._helper(self._place_actor, actor)

    def _forget_worker_refs(self, w: _WorkerProc) -> None:
        """A dead worker holds nothing: its refs and pins go, and regions it was filling come back."""
        held, w.held = w.held, {}
        pinned, w.pinned = w.pinned, {}
        allocs, w.allocs = w.allocs, {}
        for offset, nbytes in allocs.items():
            self.allocator.free(offset, nbytes)
        for oid, n in held.items():
            if n:
                self._change(oid, -n, 0)
        for oid, n in pinned.items():
            if n:
                self._change(oid, 0, -n)

    def _reap(self, w: _WorkerProc) -> None:
        """Collect a dead worker: its exit status and the last of its output."""
        assert w.proc is not None
        with contextlib.suppress(Exception):
            w.proc.wait(5)
        for stream in (w.proc.stdout, w.proc.stderr):
            if stream is not None and not stream.closed:
                with contextlib.suppress(Exception):
                    while self._forward_output(w, stream):
                        pass
                stream.close()
        with self.lock:
            self.generation += 1

    # -- shutdown -----------------------------------------------------------------------------

    def shutdown(self, timeout: float = 3.0) -> None:
        if self.closed:
            return
        # First, before the lock: a thread holding it may be waiting for room in a worker's channel (a worker that
        # stopped reading); from now on such a wait gives up once the timeout is over.
        self.sends_give_up_at = time.monotonic() + timeout
        with self.lock:
            self.closing = True
            for waiting in self.waits:  # threads in wait() raise SystemShutdownError
                waiting.set()
        self.prefault_wanted.set()
        hub = getattr(self, "observation_hub", None)
        if hub is not None:
            with contextlib.suppress(Exception):
                hub.close()
        for thread in list(self.helpers):
            thread.join(5)
        with self.lock:
            workers = list(self.every_worker)
        deadline = self.sends_give_up_at = time.monotonic() + timeout
        for w in workers:
            if w.alive:
                with contextlib.suppress(Exception):
                    w.conn.send(pack(("exit",)))
        for w in workers:
            assert w.proc is not None
            try:
                w.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
        self.closed = True
        self._wake_receiver()
        with self.role_cond:
            self.role_cond.notify_all()
        self.receiver.join(5)
        for w in workers:
            assert w.proc is not None
            for stream in (w.proc.stdout, w.proc.stderr):
                if stream is not None:
                    with contextlib.suppress(Exception):
                        rest = stream.read()
                        if rest:
                            target = sys.stderr if stream is w.proc.stderr else sys.stdout
                            for line in rest.decode(errors="replace").splitlines():
                                print(f"({w.name} pid={w.proc.pid}) {line}", file=target)
                    stream.close()
            with contextlib.suppress(Exception):
                w.conn.close()
            if w.pidfd >= 0:
                with contextlib.suppress(OSError):
                    os.close(w.pidfd)
        set_client(None)
        with self.lock:
            self.pin_cache.clear()
            for oid, obj in list(self.objects.items()):
                self._free(oid, obj)
            self.objects.clear()
        with contextlib.suppress(Exception):
            self.transport.close()
        if self.prefaulter is not None:
            self.prefaulter.join(5)
        self.arena.close(unlink=True)  # views of it still alive in this process keep their mappings
        if self.spill_folder is not None:
            self.spill_folder.close()
        remove_cluster_files(self.cluster)  # anything left of the cluster (rings, the arena, folders)
        for fd in (self.wake_fd, self.death_r, self.death_w):
            with contextlib.suppress(OSError):
                os.close(fd)


def _label(actor: _Actor) -> str:
    return f"{actor.cls_name} ({actor.actor_id:x})"


def _actor_died(actor: _Actor, why: str) -> BaseException:
    return ActorDiedError(f"actor {actor.cls_name} ({actor.actor_id:x}) died: {why}")


class _DriverStore(StoreClient):
    """The driver's side of the object store: allocates directly, counts refs and pins under the runtime's lock."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.arena = runtime.arena

    def allocate(self, nbytes: int) -> int:
        return self.runtime.allocate(nbytes)

    def free(self, offset: int, nbytes: int) -> None:
        with self.runtime.lock:
            self.runtime.allocator.free(offset, nbytes)

    def pin(self, oid: int, region: tuple[int, int]) -> Pin:
        with self.runtime.lock:
            if oid not in self.runtime.objects:
                raise ObjectLostError(f"object {oid:016x} is no longer stored")
            return self.runtime._pin(oid, region)

    def acquire(self, oid: int) -> None:
        with self.runtime.lock:
            self.runtime._change(oid, 1, 0)

    def acquire_many(self, oids: tuple[int, ...]) -> None:
        runtime = self.runtime
        with runtime.lock:
            objects = runtime.objects
            for oid in oids:
                obj = objects.get(oid)
                if obj is not None:
                    obj.refs += 1

    def release(self, oid: int) -> None:
        self.runtime._finalized(oid, -1, 0)
