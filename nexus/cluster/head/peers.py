"""Drivers attached from other processes (``nexus.init(address=...)``): records of the head, links of the remote layer.

An attached driver asks the head what a worker asks of it (submit, get,
put, calls, refs), under a :class:`~nexus.cluster.state.workers.WorkerRecord`
of kind ``"driver"`` that no work is placed on. It does not map this host's
arena: blobs go to it with their bytes (:func:`inline_copy`), and large
values it sends are moved into the arena as they arrive (:func:`into_arena`),
so local workers read them in place.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..protocol import pack_frames
from ..state.workers import WorkerRecord, WorkerStatus
from ..values import Blob, Slice

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["PeerDirectory", "PeerLink", "inline_copy"]


class _Alive:
    """What the outbox asks of a link's process (``proc.poll()``): None while the peer is attached."""

    def __init__(self, record: WorkerRecord) -> None:
        self.record = record

    def poll(self) -> int | None:
        return None if self.record.alive else 0


class PeerLink:
    """The head's handle on an attached driver, as the outbox uses a worker's: ``conn.try_send`` queues a frame."""

    def __init__(self, record: WorkerRecord, conn: Any, on_kill: Callable[[], None]) -> None:
        import threading

        self.record = record
        self.name = record.name
        self.conn = conn
        self.proc = _Alive(record)
        self.pid = 0
        self.unsent: deque[Any] = deque()
        self.send_lock = threading.Lock()
        self.push_queued = False
        self.ready = threading.Event()
        self.ready.set()
        self.pack = pack_frames  # between hosts: large buffers as frames of their own
        self._on_kill = on_kill
        self.node = 0  # the joined node it runs on (0: none, an attached driver)
        record.link = self

    @property
    def alive(self) -> bool:
        return self.record.alive

    def kill(self) -> None:
        self._on_kill()


class PeerDirectory:
    """The drivers attached to this head."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.peers: dict[int, WorkerRecord] = {}

    def attach(self, conn: Any, pid: int, on_kill: Callable[[], None], kind: str = "driver", node: int = 0) -> WorkerRecord:
        """A driver (``kind="driver"``), or a task worker of a joined node (``"task"``: it takes work once it says hello)."""
        rt = self.rt
        index = next(rt.indexes)
        record = WorkerRecord(index, kind, rt.ids.worker_id(index))
        record.remote = True
        record.pid = pid
        link = PeerLink(record, conn, on_kill)
        link.node = record.node = node
        if kind in ("task", "actor"):
            link.ready.clear()
            member = rt.membership.get(node) if rt.membership is not None else None
            draining = member is not None and member.draining  # (it takes nothing new: see remote.drain)
            with rt.lock:
                self.peers[index] = record
                if kind == "task":
                    rt.workers.append(record)  # (its node's CPUs came with the node: Runtime.node_joined)
                    if draining:
                        record.retire()
                elif not draining:
                    rt.spares.append(record)  # for an actor placed on its node
            rt.emit("worker", record.name, pid, "started", kind)
            return record
        with rt.lock:
            record.to(WorkerStatus.READY)
            self.peers[index] = record
            rt.outbox.send(record, ("window", rt.scheduler.submit_window()))
            if rt.scheduler.backpressure:
                rt.outbox.send(record, ("backpressure", True))
        rt.emit("worker", record.name, pid, "started", "driver")
        return record

    def gone(self, record: WorkerRecord, why: str, code: int | None = None) -> None:
        """The peer detached, went silent or exited (``code``, as its node's agent saw it): what it held goes (its
        refs, pins and regions), and what it ran is settled."""
        rt = self.rt
        with rt.lock:
            if not record.alive:
                return
            record.to(WorkerStatus.DEAD)
            rt.objects.forget_worker(record)
            record.link.unsent.clear()
            self.peers.pop(record.index, None)
            if record.kind == "driver":
                rt.objects.node_lost(record.worker_id, f"{record.name} detached ({why})")  # (the values it put and still held)
                rt.emit("worker", record.name, record.pid, "died", why)
                return
            if not rt.closed:
                rt.settle_lost_work(record, record.pid, code)
            if record in rt.workers:
                rt.workers.remove(record)
            elif record in rt.spares:
                rt.spares.remove(record)
            if not self.of_node(record.node):
                rt.scheduler.fail_stranded(record.node, f"has no worker left ({why})")
            rt.scheduler.dispatch()

    def tee_output(self, name: str, pid: int, err: bool, lines: list[str], where: str = "") -> None:
        """A worker's output lines (this host's, or a joined node's: ``where``), for every attached driver too, as
        Ray's ``log_to_driver`` does: each prints them with the worker's name."""
        drivers = [r for r in list(self.peers.values()) if r.kind == "driver"]
        if not drivers:
            return
        text = "\n".join(f"({name} pid={pid}{where}) {line}" for line in lines)
        rt = self.rt
        with rt.lock:
            for r in drivers:
                if r.alive:
                    rt.outbox.send(r, ("output", err, text))

    def of_node(self, node: int) -> list[WorkerRecord]:
        return [r for r in self.peers.values() if r.link.node == node]


def inline_copy(blob: Blob, arena: Any) -> Blob:
    """``blob`` with its bytes instead of offsets in ``arena`` (for a process that does not map it)."""

    def copy(part: Any) -> Any:
        return bytes(arena.read(part.offset, part.nbytes)) if isinstance(part, Slice) else part

    return Blob(copy(blob.payload), [copy(b) for b in blob.buffers], blob.error, None, blob.refs, blob.oid)


def peer_loads(rt: Runtime) -> Callable[..., Any]:
    """How the head unpickles what a peer sends (``loads(data, buffers, node)``): blobs of ``inline_max`` bytes or
    more that came with their bytes go to the arena; a region is one in the arena of the sender's node ``node``."""
    import functools
    import io
    import pickle

    from ..values import _rebuild_blob

    limit = rt.config.inline_max

    def rebuild(
        node: int, payload: Any, buffers: list[Any], error: bool, region: Any, refs: tuple[int, ...], oid: int, _at: Any = None
    ) -> Blob:
        if region is not None:  # written by a worker of a joined node into its node's arena (where, the head says)
            at = rt.store.joined_at(node) if node else None
            if at is None:
                raise ValueError("a blob with a region, from a peer that has no arena")
            return Blob(payload, buffers, error, tuple(region), refs, oid, at)
        # Its buffers are views of the frames received: large ones go to the arena, small ones become bytes
        size = (len(payload) if isinstance(payload, bytes) else 0) + sum(memoryview(b).nbytes for b in buffers)
        if isinstance(payload, bytes) and size >= limit:
            try:
                return into_arena(Blob(payload, buffers, error, None, refs, oid), rt)
            except Exception:  # no room (even after spilling): it stays in the head's memory, nothing is lost
                pass
        return _rebuild_blob(payload, [b if isinstance(b, bytes) else bytes(b) for b in buffers], error, None, refs, oid)

    class Unpickler(pickle.Unpickler):
        node = 0

        def find_class(self, module: str, name: str) -> Any:
            found = super().find_class(module, name)
            return functools.partial(rebuild, self.node) if found is _rebuild_blob else found

    def loads(data: bytes, buffers: Any = (), node: int = 0) -> Any:
        unpickler = Unpickler(io.BytesIO(data), buffers=buffers)
        unpickler.node = node
        return unpickler.load()

    return loads


def into_arena(blob: Blob, rt: Runtime) -> Blob:
    """A large blob that came with its bytes, moved into this host's arena (local workers then read it in place)."""
    from ..values import _to_arena

    views = [memoryview(b).cast("B") for b in blob.buffers]
    moved = _to_arena(rt.store_client, blob.payload, views, blob.refs, blob.oid)
    moved.error = blob.error
    return moved
