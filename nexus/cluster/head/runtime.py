"""The driver's runtime: the head's tables and the node agent of this host, in the driver's own process.

Tasks wait in one queue at the head and go to a worker as soon as it is idle
(see :mod:`..state.tasks`). Each actor lives in a worker process of its own,
taken from a pre-started spare so that creating an actor does not wait for
an interpreter to start. Every table is guarded by one lock (:class:`TableLock`);
what a change calls for outside the tables (messages, file removals, kills)
runs once the lock is released.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ...core.errors import NexusError
from ...core.event_ring import EventRing
from ...core.event_stream import EventStream
from ..config import ClusterConfig
from ..events import WorkerDied, WorkerStarted
from ..node.outbox import Outbox
from ..node.processes import WorkerProcess, spawn_worker
from ..node.receiver import Receiver
from ..node.sampler import Sampler
from ..node.store import DriverStoreClient, NodeStore
from ..protocol import LogLimiter, Pump, pack
from ..shm_util import cluster_id, remove_cluster_files, remove_dead_clusters
from ..state.commands import Kill, Push, RemoveSpill
from ..state.ids import NODE_BITS, IdSpace
from ..state.nodes import node_info
from ..state.resources import Resources
from ..state.tasks import NodeLoad, TaskQueue
from ..state.workers import WorkerRecord, WorkerStatus
from ..transport import ChannelCorruptError, Transport, make_transport
from ..values import Blob, ObjectRef, error_blob, set_client
from . import groups, listing
from .actors import ActorDirectory
from .lock import TableLock
from .objects import ObjectDirectory
from .peers import PeerDirectory
from .streams import StreamDirectory
from .tasks import TaskScheduler

__all__ = ["Runtime"]

_now = time.monotonic_ns


def _ignore(_record: Any) -> None:
    return None


class Runtime:
    """The local cluster, as the driver sees it."""

    def __init__(
        self,
        num_cpus: int,
        transport: str | Transport = "shm",
        namespace: str = "default",
        resources: dict[str, float] | None = None,
        object_store_memory: int | None = None,
        observe: bool = True,
        config: ClusterConfig | None = None,
    ) -> None:
        self.config = config = config or ClusterConfig()
        self.num_cpus = num_cpus
        self.namespace = namespace
        self.lock = TableLock()
        self.closed = False
        self.closing = False
        self.resources = Resources(num_cpus, resources)
        self.tasks = TaskQueue(self.resources, config)
        self.defs: dict[bytes, Any] = {}
        self.waits: set[threading.Event] = set()  # what threads in wait() wait on: set at shutdown
        self.workers: list[WorkerRecord] = []  # task workers
        self.spares: list[WorkerRecord] = []  # started for actors to come
        self.every_worker: list[WorkerProcess] = []
        self.indexes = itertools.count(1)
        self.transport: Transport = make_transport(transport, config.channel_bytes)
        self.transport_name = transport if isinstance(transport, str) else self.transport.name
        self.log = LogLimiter()  # what peers can cause at any rate is logged at a bounded rate
        self.rejected = 0  # messages that could not be read
        self.dropped_channels = 0  # channels found corrupt (their workers were replaced)
        self.start_failures = 0  # workers in a row that died before they said hello
        self.give_up_at = [float("inf")]  # set at shutdown: blocking sends to full channels stop waiting then
        self.events = EventStream()
        # What happened, for the observation layer (nexus.observe reads it): one tuple per event, never a wait.
        self.observed: EventRing[tuple[Any, ...]] | None = EventRing(config.observed_events, flat=True) if observe else None
        # The hot paths record with these (two C calls, no Python frame): ``rt.push((rt.seq(), *record))``.
        self.seq: Callable[[], int] = int
        self.push: Callable[[tuple[Any, ...]], None] = _ignore
        if self.observed is not None:
            self.seq, self.push = self.observed.producer()
        self.observation_hub: Any = None  # made by nexus.observe.hub() on first use
        self.helpers: set[threading.Thread] = set()
        self.helpers_lock = threading.Lock()  # never the table lock: a thread being started runs finalizers, which take that
        self.death_r, self.death_w = os.pipe()
        os.set_inheritable(self.death_r, False)
        self.started_at = time.perf_counter()
        self.cluster = cluster_id()
        # This host's node: its number is drawn at random (ids carry it; see state.ids), the driver is its process 0
        self.node_id = secrets.randbelow((1 << NODE_BITS) - 1) + 1
        self.ids = IdSpace(self.node_id, 0)
        self.resources.renumber_local(self.node_id)
        self.new_id = self.ids.new
        remove_dead_clusters()  # segments of clusters killed with their workers, before this one takes room
        self.handlers: dict[str, Callable[..., None]] = {}
        pump = Pump(self._handle, self._bad)
        self.receiver = Receiver(self, pump)
        self.outbox = Outbox(self.lock, config, self.receiver.wake, self.log)
        self.store = NodeStore(self, object_store_memory)
        # What the head's commands come to on this host (run with the lock released)
        carry_out: dict[type, Callable[..., Any]] = {Push: self.outbox.push, Kill: _kill, RemoveSpill: self.store.remove_spill}
        self.lock.carry_out.update(carry_out)
        self.objects = ObjectDirectory(self)
        self.scheduler = TaskScheduler(self)
        self.actors_dir = ActorDirectory(self)
        self.actors = self.actors_dir.actors
        self.peers = PeerDirectory(self)  # drivers attached from other processes (see remote.head)
        self.membership: Any = None  # the nodes that joined, when this runtime is a standalone head's
        self.spawn_on: Callable[[int, str], bool] | None = None  # asks a joined node for a worker (set with membership)
        self.management: Callable[[str, Any, str], Any] | None = None  # runs an operator's command (nexus.manage sets it)
        self.handlers = self._handlers()
        self.streams = StreamDirectory(self)  # (its messages and its control op: see head.streams)
        procs = [self.spawn("task") for _ in range(num_cpus)]
        self.receiver.start()
        deadline = time.monotonic() + config.worker_start_timeout
        for w in procs:
            if not self.wait_started(w, deadline - time.monotonic()):
                code = w.link.proc.poll()
                self.shutdown()
                if code is not None:
                    raise NexusError(f"{w.name} exited with code {code} as it started (its output is above)")
                raise NexusError(f"{w.name} did not start within {config.worker_start_timeout:g} s")
        # Spare workers for actors start now and are not waited for: an actor created before its spare is up
        # waits for it. Started with the task workers, they took a share of the cores init waits for.
        for _ in range(config.spare_actor_workers):
            self.spawn("actor")
        self.store_client = DriverStoreClient(self)
        set_client(self.store_client)
        self.store.prefaulter.start()
        if self.observed is not None:
            Sampler(self).start()

    def _handlers(self) -> dict[str, Callable[..., None]]:
        """What each message from a worker is handled by (its first element names the operation)."""
        objects, scheduler, actors = self.objects, self.scheduler, self.actors_dir
        return {
            "hello": self._on_hello,
            "done": scheduler.on_done,
            "done_many": scheduler.on_done_many,
            "blocked": scheduler.on_blocked,
            "revoked": scheduler.on_revoked,
            "room": scheduler.on_room,
            "submit": scheduler.on_submit,
            "submit_call": actors.on_submit_call,
            "submit_call_bounded": actors.on_submit_call_bounded,
            "create_actor": actors.on_create_actor,
            "actor_ready": actors.on_actor_ready,
            "put": objects.on_put,
            "refs": objects.on_refs,
            "alloc": objects.on_alloc,
            "free": objects.on_free,
            "copied": objects.on_copied,
            "get": objects.on_get,
            "wait": objects.on_wait,
            "control": self._on_control,
            "batch": self._on_batch,
        }

    # -- the session: what the api calls (see nexus.cluster.session) --------------------------------

    def submit_task(
        self, fn_id: bytes, factory: Callable[[], Blob], name: str, args: tuple, kwargs: dict, num_returns: int, options: dict
    ) -> list[ObjectRef]:
        return self.scheduler.submit(fn_id, factory, name, args, kwargs, num_returns, options)

    def create_actor(self, cls_id: bytes, factory: Callable[[], Blob], name: str, args: tuple, kwargs: dict, options: dict) -> int:
        return self.actors_dir.create(cls_id, factory, name, args, kwargs, options)

    def submit_call(
        self, actor_id: int, method: str, args: tuple, kwargs: dict, num_returns: int, tell: bool, bounded: bool = False
    ) -> list[ObjectRef]:
        return self.actors_dir.submit_call(actor_id, method, args, kwargs, num_returns, tell)

    def put(self, value: Any) -> ObjectRef:
        return self.objects.put(value)

    def get_blobs(self, ids: Sequence[int], timeout: float | None) -> list[Blob] | None:
        if len(ids) == 1:
            blob = self.objects.wait_object(ids[0], timeout)
            return None if blob is None else [blob]
        deadline = None if timeout is None else time.monotonic() + timeout
        blobs = []
        wait_object = self.objects.wait_object
        for oid in ids:
            blob = wait_object(oid, None if deadline is None else max(0.0, deadline - time.monotonic()))
            if blob is None:
                return None
            blobs.append(blob)
            if blob.error:  # the first failure in order ends the get at once (the caller raises it)
                break
        return blobs

    def wait_ids(self, ids: Sequence[int], num_returns: int, timeout: float | None) -> list[int]:
        return self.objects.wait_ids(ids, num_returns, timeout)

    def cancel(self, oid: int, force: bool = False, recursive: bool = True) -> bool:
        return self.scheduler.cancel(oid, force, recursive)

    def kill(self, actor_id: int, no_restart: bool = True, why: str = "") -> None:
        self.actors_dir.kill(actor_id, no_restart, why)

    def get_actor(self, name: str, namespace: str | None) -> tuple[int, str, bool]:
        return listing.actor_named(self, name, namespace)

    def event_stream(self) -> EventStream:
        return self.events

    def driver(self) -> Runtime:
        return self

    def info(self) -> dict[str, Any]:
        return {
            "workers": len(self.workers),
            "num_cpus": self.num_cpus,
            "transport": self.transport_name,
            "namespace": self.namespace,
            "pid": os.getpid(),
        }

    def nodes(self) -> list[dict[str, Any]]:
        """This cluster's nodes in ``ray.nodes()``'s form: this host, and those that joined a standalone head."""
        resources, workers, here = self.cluster_resources(False), len(self.workers), socket.gethostname()
        if self.membership is None:
            return [node_info(self.node_id, "ALIVE", here, resources, {}, workers, here)]
        return [  # each node with what it offers (the head's own: its own CPUs, not the cluster's)
            node_info(
                r.node_id,
                r.state,
                r.host,
                r.resources,
                r.labels,
                workers if r.node_id == self.node_id else len(self.peers.of_node(r.node_id)),
                here,
            )
            for r in list(self.membership)
        ]

    def alive_nodes(self) -> set[int]:
        """The numbers of the nodes alive now (this host's, and those that joined a standalone head)."""
        if self.membership is None:
            return {self.node_id}
        return {r.node_id for r in list(self.membership) if r.alive}

    def node_joined(self, node: int, resources: dict[str, float], labels: dict[str, str]) -> None:
        """A node joined the standalone head this runtime serves: what it has is placed on from now."""
        with self.lock:
            self.resources.add_node(node, resources, labels)

    def node_gone(self, node: int, why: str = "it left") -> None:
        """A node died or left (before its workers are dropped): nothing is placed there, what only it stored is lost."""
        with self.lock:
            self.scheduler.node_gone(node)  # (its pool goes; placement groups' bundles there are reserved elsewhere)
            self.objects.node_lost(node, why)

    def cluster_resources(self, available: bool) -> dict[str, float]:
        """What the cluster has, or what is free now (CPUs no running task or actor holds; others not held)."""
        with self.lock:
            total = {**self.resources.total, "object_store_memory": float(self.store.allocator.capacity)}
            if not available:
                return total
            free = {k: v - self.resources.used.get(k, 0.0) for k, v in total.items()}
            free["CPU"] = self.tasks.free_cpus(self.workers)
            free["object_store_memory"] = float(self.store.allocator.capacity - self.store.allocator.used)
        return {k: v for k, v in free.items() if v > 0}

    def waiting_tasks(self) -> list[tuple[int, str, str]]:
        """The tasks queued and not started, with why each waits (its arguments, or what no node has free)."""
        with self.lock:
            tasks = self.tasks
            queued = list(itertools.islice(itertools.chain(tasks.waiting.values(), tasks.queue), 1000))
            cpus = NodeLoad(self.workers, self.resources).cpus
            return [(t.task_id, t.name, tasks.why_waiting(t, self.workers, cpus)) for t in queued]

    # What workers ask of the driver by name (``control`` messages)
    control_get_actor = get_actor
    control_kill = kill
    control_cancel = cancel
    control_nodes = nodes
    control_cluster_resources = cluster_resources

    control_state = listing.answer  # what the state API shows ("workers", "tasks", ...), for workers and attached drivers
    control_placement_group = groups.answer  # placement groups: create, remove, look up, list (see head.groups)
    control_events = listing.events_since  # the observed events, for a hub that follows this one from elsewhere

    def control_manage(self, command: str, args: Any, allowed: str) -> Any:  # a device's command (nexus.manage.uart)
        if self.management is None:
            raise NexusError("this cluster serves no operator commands: a head `nexus start --head` started does (not --no-management)")
        return self.management(command, args, allowed)

    def control(self, op: str, *args: Any) -> Any:
        """Run ``control_<op>``: what a worker or an attached driver asks by name, asked in this process."""
        return getattr(self, f"control_{op}")(*args)

    def store_stats(self) -> dict[str, int]:
        return self.store.statistics()

    def configure(self, **changes: Any) -> ClusterConfig:
        """Change tunables of the running cluster (for tests and experiments); returns the config before."""
        before = self.config
        self.config = after = before.replace(**changes)
        for part in (self.tasks, self.scheduler, self.outbox, self.store, self.receiver):
            part.config = after
        with self.lock:
            for w in self.every_worker_record():
                if w.ready:
                    self.outbox.send(w, ("window", self.scheduler.submit_window()))
        return before

    # -- views for the state API and tests ---------------------------------------------------------

    @property
    def arena(self) -> Any:
        return self.store.arena

    @property
    def spill_folder(self) -> Any:
        return self.store.spill_folder

    @property
    def stolen(self) -> int:
        return self.tasks.stolen

    @property
    def want_role(self) -> int:
        return self.receiver.want_role

    def links(self) -> list[WorkerProcess]:
        """The processes whose channels and descriptors the receiver polls."""
        with self.lock:
            return [w for w in self.every_worker if w.alive]

    def every_worker_record(self) -> list[WorkerRecord]:
        return [w.record for w in self.every_worker]

    def emit(self, kind: str, *values: Any) -> None:
        """Record an event for the observation layer (see nexus.observe.hub for the kinds and their fields)."""
        if self.observed is not None:
            self.observed.append((kind, _now(), *values))

    # -- worker processes ----------------------------------------------------------------------

    def spawn(self, kind: str) -> WorkerRecord:
        if self.closing:
            raise NexusError("the cluster is shutting down")
        index = next(self.indexes)
        record = WorkerRecord(index, kind, self.ids.worker_id(index))
        record.node = self.node_id
        env = {"NEXUS_CLUSTER_ID": self.cluster, "NEXUS_ARENA": self.store.arena.name, "NEXUS_NODE_ID": str(self.node_id)}
        link = spawn_worker(record, self.transport, env, self.death_r, self.give_up_at, self.config.to_json())
        link.tee = self.peers.tee_output  # (what it prints reaches attached drivers too)
        with self.lock:
            self.every_worker.append(link)
            (self.workers if kind == "task" else self.spares).append(record)
            self.receiver.changed()
        self.receiver.wake()
        return record

    def wait_started(self, w: WorkerRecord, timeout: float) -> bool:
        """Wait until ``w`` said hello; False if it died first, the cluster is closing, or ``timeout`` passed."""
        link: WorkerProcess = w.link
        deadline = time.monotonic() + timeout
        while not link.ready.wait(0.05):
            if not w.alive or self.closing or link.proc.poll() is not None or time.monotonic() > deadline:
                return link.ready.is_set()
        return True

    def helper(self, target: Callable[..., Any], *args: Any) -> None:
        """Run ``target`` on a thread that shutdown() waits for (spawning must not race with it)."""

        def run() -> None:
            try:
                with contextlib.suppress(NexusError):
                    target(*args)
            finally:
                self.helpers.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=f"nexus-helper-{getattr(target, '__name__', '')}", daemon=True)
        with self.helpers_lock:  # added and started together: shutdown joins only started threads
            self.helpers.add(thread)
            thread.start()

    def replenish_spare(self) -> None:
        with self.lock:
            if any(not w.remote for w in self.spares) or self.closed:  # (a joined node's spare is that node's)
                return
        with contextlib.suppress(Exception):
            self.spawn("actor")

    def _on_hello(self, w: WorkerRecord, worker_index: int, pid: int) -> None:
        with self.lock:
            if w.state is WorkerStatus.STARTING:
                w.to(WorkerStatus.READY)
            self.start_failures = 0
            w.link.ready.set()
            self.outbox.send(w, ("window", self.scheduler.submit_window()))
            if self.scheduler.backpressure:  # what the others were told
                self.outbox.send(w, ("backpressure", True))
            self.scheduler.dispatch()  # tasks may have queued while this worker started (a replacement, say)
        self.events.publish(WorkerStarted(w.name, pid, w.kind))
        self.emit("worker", w.name, pid, "started", w.kind)

    def _on_control(self, w: WorkerRecord, request: int, op: str, *args: Any) -> None:
        if op == "manage":  # (an operator's command may wait on the cluster: on a thread of its own, not this one)
            threading.Thread(target=self._answer_control, args=(w, request, op, args, True), daemon=True).start()
        else:
            self._answer_control(w, request, op, args, False)

    def _answer_control(self, w: WorkerRecord, request: int, op: str, args: tuple[Any, ...], apart: bool) -> None:
        try:
            result: Any = self.control(op, *args)
        except Exception as exc:
            result = ("error", error_blob(exc, "the driver"))
        with self.lock if apart else contextlib.nullcontext():
            self.outbox.send(w, ("objects", request, [(0, result)]))

    def _handle(self, w: WorkerRecord, body: tuple[Any, ...]) -> None:
        handler = self.handlers.get(body[0])
        if handler is None:
            self._bad(w, ValueError(f"unknown operation {body[0]!r}"))
            return
        try:
            handler(w, *body[1:])
        except Exception as exc:
            self._bad(w, exc)

    def _on_batch(self, w: WorkerRecord, messages: list[tuple[Any, ...]]) -> None:
        """Messages sent as one (an attached driver's ref changes and the call behind them), in their order."""
        for body in messages:
            self._handle(w, body)

    def _bad(self, w: Any, exc: Exception) -> None:
        """A message that cannot be read: counted and dropped (logged at a bounded rate); a corrupt channel is dropped."""
        self.rejected += 1
        if isinstance(exc, ChannelCorruptError) and isinstance(w, WorkerRecord):
            self._drop_channel(w, exc)
            return
        self.log(f"nexus: dropped a malformed message from {getattr(w, 'name', w)}: {exc}")

    def _drop_channel(self, w: WorkerRecord, exc: Exception) -> None:
        """``w``'s channel cannot be read any more: stop reading it and replace the worker, as if it had crashed."""
        with self.lock:
            if w.broken or not w.alive:
                return
            w.to(WorkerStatus.BROKEN)
            self.dropped_channels += 1
            self.receiver.changed()  # out of the set the receiver polls
            self.lock.after(Kill(w.link))  # the receiver sees it die: its tasks are retried, its actor restarts
        self.log(f"nexus: {w.name}'s channel is unusable ({exc}); the worker is stopped and replaced")

    def worker_exited(self, link: WorkerProcess) -> None:
        """The pidfd of ``link`` says its process exited: settle what it had, reap it, replace it if it was a task worker."""
        w = link.record
        replace = False
        with self.lock:
            self.receiver.changed()
            if not w.alive:
                return
            w.to(WorkerStatus.DEAD)
            self.objects.forget_worker(w)
            link.unsent.clear()
            code = link.proc.poll()
            link.close_pidfd()
            if self.closed:
                return
            self.settle_lost_work(w, link.pid, code)
            if w in self.workers:
                self.workers.remove(w)
                replace = not w.surplus
                if not link.ready.is_set():  # it died before it started: something in its environment, most likely
                    self.start_failures += 1
                    if self.start_failures >= self.config.max_start_failures:
                        replace = False
                        self.log(
                            f"nexus: {self.start_failures} workers in a row exited before they started (the last with "
                            f"code {code}; their output is above); the pool stops replacing them"
                        )
            elif w in self.spares:
                self.spares.remove(w)
            self.scheduler.dispatch()
        with contextlib.suppress(Exception):
            link.conn.close()
        link.reap()
        self.receiver.changed()
        if replace and not self.closing:
            self.helper(self.spawn, "task")

    def settle_lost_work(self, w: WorkerRecord, pid: int, code: int | None) -> None:
        """A worker that died (lock held): its tasks are retried or fail, its actor restarts or dies; said as events."""
        tasks = self.tasks
        lost = [t for t in tasks.running.values() if t.worker is w]
        for task in reversed(lost):  # back to the front of the queue in their order
            if task.retries != 0 and not task.cancelled:
                self.scheduler.count_retry(task, f"its {w.name} died (exit code {code})")
                tasks.take_back(w, task)
                continue
            self.scheduler.finished(w, task)
            self._fail_lost_task(w, task, code)
        self.events.publish(WorkerDied(w.name, pid, code, w.actor.cls_name if w.actor else None, len(lost)))
        self.emit("worker", w.name, pid, "died", f"exit code {code}")
        if w.actor is not None:
            self.actors_dir.worker_died(w.actor, w, code)

    def _fail_lost_task(self, w: WorkerRecord, task: Any, code: int | None) -> None:
        from ...core.errors import TaskCancelledError, WorkerCrashedError

        if task.cancelled:
            failure: BaseException = TaskCancelledError(f"task {task.name} was cancelled (its worker was killed)")
        else:
            failure = WorkerCrashedError(
                f"{w.name} died (exit code {code}) while running {task.name}, and it has no retries left (max_retries)"
            )
        blob = error_blob(failure, "the driver")
        for oid in task.result_ids:
            self.objects.store(oid, blob)

    # -- shutdown -----------------------------------------------------------------------------------

    def shutdown(self, timeout: float = 3.0) -> bool:
        """Stop every worker and free everything of the cluster; returns within about ``timeout`` (twice, at worst)."""
        if self.closed:
            return True
        # First, before the lock: blocking sends to full channels give up once the timeout is over.
        self.give_up_at[0] = time.monotonic() + timeout
        with self.lock:
            self.closing = True
            for waiting in self.waits:  # threads in wait() raise SystemShutdownError
                waiting.set()
        self.store.prefault_wanted.set()
        hub = self.observation_hub
        if hub is not None:
            with contextlib.suppress(Exception):
                hub.close()
        with self.helpers_lock:
            helpers = list(self.helpers)
        for thread in helpers:
            thread.join(min(5.0, timeout))
        with self.lock:
            links = list(self.every_worker)
        deadline = self.give_up_at[0] = time.monotonic() + timeout
        exit_message = pack(("exit",))
        for w in links:
            if w.alive:
                w.unsent.clear()  # what was not sent yet never will be: the worker is told to leave now
                with contextlib.suppress(Exception):
                    w.conn.send(exit_message)  # gives up at the deadline if its channel stays full
        for w in links:
            try:
                w.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.kill()
                w.proc.wait()
        self.closed = True
        self.receiver.wake()
        with self.receiver.role_cond:
            self.receiver.role_cond.notify_all()
        self.receiver.thread.join(5)
        for w in links:
            w.finish()
        set_client(None)
        with self.lock:
            self.store.pin_cache.clear()
            table = self.objects.table
            for oid, entry in list(table.entries.items()):
                table.free(oid, entry)
            table.entries.clear()
        with contextlib.suppress(Exception):
            self.transport.close()
        self.store.close()
        self.receiver.close()
        remove_cluster_files(self.cluster)  # anything left of the cluster (rings, the arena, folders)
        for fd in (self.death_r, self.death_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        return True


def _kill(link: Any) -> None:
    """Carries out a Kill command (a worker process, or an attached driver: each link knows how)."""
    link.kill()
