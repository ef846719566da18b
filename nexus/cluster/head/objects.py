"""The head's objects: the table applied to what workers and the driver say, and the reads that wait for objects."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ...core.errors import ObjectLostError, ObjectStoreFullError, SystemShutdownError
from ..state.objects import ObjectEntry, ObjectTable, ObjectWait
from ..state.workers import WorkerRecord
from ..store import Pin
from ..values import Blob, ObjectRef, error_blob, serialize
from .peers import inline_copy

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["EventWait", "ObjectDirectory", "WorkerGet"]

_now = time.monotonic_ns


class EventWait(ObjectWait):
    """A thread of this process waiting for objects (a get, a wait): its event is set once they are made."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        super().__init__()
        self.event = threading.Event()


class WorkerGet(ObjectWait):
    """A worker's get of objects: answered once every one of them is made."""

    __slots__ = ("ids", "request", "worker")

    def __init__(self, worker: WorkerRecord, request: int, ids: list[int]) -> None:
        super().__init__()
        self.worker = worker
        self.request = request
        self.ids = ids


class ObjectDirectory:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.lock = rt.lock
        self.new_id = rt.ids.new
        self.table = ObjectTable(on_free=rt.store.freed, on_unreferenced=rt.store.unreferenced)
        # What a waiter whose last missing object was made comes to, by its type (the tables add theirs)
        self.on_ready: dict[type, Callable[[Any], None]] = {EventWait: _set_event, WorkerGet: self._answer_now}
        self.entries = self.table.entries
        self.ticks = self.table.ticks
        self.deferred: deque[tuple[int, int, int]] = deque()  # ref changes from finalizers that found the lock taken
        self.watched: dict[int, Callable[[int], None]] | None = None  # called when these are freed (see watch_free)

    # -- what the table is told ------------------------------------------------------------

    def store(self, oid: int, blob: Blob, w: WorkerRecord | None = None) -> None:
        """``oid`` has its value (or error) now. A blob from worker ``w`` may fill a region it was given."""
        if w is not None and blob.region is not None:
            w.allocs.pop(blob.region[0], None)  # the region is the object's now, not the worker's
        entry = self.entries.get(oid)
        ready = self.table.store(oid, blob)
        if ready is None:
            if blob.region is not None:
                self.rt.store.free_blob(blob)
            return
        if ready:
            on_ready = self.on_ready
            for waiter in ready:
                on_ready[type(waiter)](waiter)
        assert entry is not None
        self.table.maybe_free(oid, entry)

    def new(self, oid: int) -> None:
        self.table.new(oid)

    def watch_free(self, oid: int, callback: Callable[[int], None]) -> None:
        """Call ``callback(oid)`` when ``oid`` is freed (with the lock held). The hook goes in at the first watch:
        until then freeing an object costs no more than it did."""
        watched = self.watched
        if watched is None:
            watched = self.watched = {}
            freed = self.table.on_free

            def on_free(oid: int, entry: ObjectEntry) -> None:
                freed(oid, entry)
                if oid in watched:
                    watched.pop(oid)(oid)

            self.table.on_free = on_free
        watched[oid] = callback

    def made_by(self, w: WorkerRecord, oid: int) -> None:
        """Worker ``w`` made the id of a new object and holds the one ref to it."""
        if oid not in self.entries:
            self.table.new(oid)
            w.held[oid] = w.held.get(oid, 0) + 1

    def args_object(self, args_blob: Blob, w: WorkerRecord | None = None) -> int:
        """Store arguments that live in the arena or hold refs as an object (one ref: the task's); 0 for plain ones."""
        if args_blob.region is None and not args_blob.refs:
            return 0
        oid = self.new_id()
        self.table.new(oid)
        self.store(oid, args_blob, w)
        return oid

    def change(self, oid: int, dref: int, dpin: int, w: WorkerRecord | None = None) -> None:
        entry = self.table.change(oid, dref, dpin)
        if entry is None:
            return
        if w is not None:
            w.count(oid, dref, dpin)

    def decref(self, oid: int) -> None:
        if oid:
            self.change(oid, -1, 0)

    def unpin(self, deps: list[int]) -> None:
        for oid in deps:
            self.change(oid, -1, 0)

    def finalized(self, oid: int, dref: int, dpin: int) -> None:
        """A ref or a view died in this process: count it now if the lock is free, else later.

        A finalizer runs wherever the garbage collector does: inside a
        locked section of this thread (which must not be interrupted), or
        on a thread that another one, holding the lock, waits for (a thread
        being started under the lock runs finalizers as it starts: waiting
        for the lock there deadlocked the driver). So it never waits: when
        the lock is taken, the change is queued for whoever takes it next
        (the receiver does within a round).
        """
        if self.rt.closed:
            return
        lock = self.lock
        if lock._owned() or not lock._acquire(False):
            self.deferred.append((oid, dref, dpin))
            return
        try:
            self.table.change(oid, dref, dpin)
            if self.deferred:
                self.drain_deferred()
        finally:
            lock.release()

    def drain_deferred(self) -> None:
        while self.deferred:
            self.change(*self.deferred.popleft())

    def forget_worker(self, w: WorkerRecord) -> None:
        """A dead worker holds nothing: its refs and pins go, and regions it was filling come back."""
        held, pinned, allocs = w.forget()
        for offset, nbytes in allocs.items():
            self.rt.store.free_for(w, offset, nbytes)
        for oid, n in held.items():
            if n:
                self.change(oid, -n, 0)
        for oid, n in pinned.items():
            if n:
                self.change(oid, 0, -n)
        self.rt.actors_dir.lifetimes.owner_gone(w)  # (the actors it made end with it, unless detached)

    def node_lost(self, node: int, why: str) -> None:
        """Node ``node`` is gone (lock held): values stored only there are made again by their tasks where they were
        kept (see head.lineage), else lost, saying where they were."""
        joined = self.rt.store.joined.pop(node, None)
        if joined is None:
            return
        lineage = self.rt.scheduler.lineage
        again: dict[int, Any] = {}
        for oid, entry in list(self.entries.items()):
            copies = entry.copies
            if copies:
                copies.pop(node, None)
            blob = entry.blob
            if blob is None or blob.at is None or blob.at[0] != node:
                continue
            if copies and (ready := next((k for k, c in copies.items() if c[2] is not None), None)) is not None:
                entry.blob = copies.pop(ready)[2]  # a copy elsewhere is the value now
                entry.blob.oid = oid
                continue
            task = lineage.make_again(oid, entry, node)
            if task is not None:
                again[task.task_id] = task
                self.rt.emit("object", oid, "lost", 0)
                continue
            lost = ObjectLostError(f"object {oid:016x} was stored only on {joined.name} ({joined.host}), which is lost: {why}")
            entry.blob = error_blob(lost, "the driver")
            entry.blob.oid = oid
            self.rt.emit("object", oid, "lost", 0)
        for task in again.values():  # (dispatched once the node's workers are gone: see remote.head)
            lineage.run_again(task, f"a value it made was lost with {joined.name} ({joined.host})")

    # -- blobs going out -------------------------------------------------------------------

    def blob_or_lost(self, oid: int) -> Blob:
        if self.rt.closing:
            return error_blob(SystemShutdownError("the cluster was shut down before this value arrived"), "the driver")
        entry = self.entries.get(oid)
        if entry is None or entry.blob is None:
            lost = ObjectLostError(f"object {oid:016x} is no longer stored (every reference to it was dropped)")
            return error_blob(lost, "the driver")
        entry.used = next(self.ticks)
        if entry.spilled is None:
            return entry.blob  # type: ignore[no-any-return]
        try:
            return self.rt.store.restore(oid, entry)
        except ObjectStoreFullError as exc:
            return error_blob(exc, "the driver")

    def ship(self, w: WorkerRecord, oid: int) -> Blob:
        """The blob of ``oid`` for worker ``w``, pinned on its behalf (the worker's copy of the blob holds the pin)."""
        blob = self.blob_or_lost(oid)
        if blob.at is not None:  # in a joined node's arena: read there, or pulled from there (pinned meanwhile)
            if not w.remote:  # (this host's workers get it once it is fetched here: see ship_args, on_get)
                return self._unfetched(oid, blob)
            if w.alive:
                self.change(oid, 0, 1, w)
            return self.rt.store.copy_for(w, self.entries[oid], blob)
        if w.remote and blob.region is not None:  # it does not map the arena: the bytes go (pinned only for its refs)
            if blob.refs and w.alive:
                self.change(oid, 0, 1, w)
            return inline_copy(blob, self.rt.store.arena)
        if blob.oid and (blob.region is not None or blob.refs) and w.alive:  # a dead worker's pins are settled
            self.change(oid, 0, 1, w)
            # A copy per shipment: one message may carry the object for several tasks, and pickle would send
            # one blob for all of them (one pin released at the other end for several taken here).
            return blob.copy()
        return blob

    def _unfetched(self, oid: int, blob: Blob) -> Blob:
        assert blob.at is not None
        joined = self.rt.store.joined.get(blob.at[0])
        where = f"{joined.name} ({joined.host})" if joined is not None else f"node {blob.at[0]:x}"
        lost = ObjectLostError(f"object {oid:016x} is stored on {where}, which did not send it to this host")
        return error_blob(lost, "the driver")

    def away(self, entry: ObjectEntry | None) -> bool:
        """Whether this host's processes cannot read ``entry``'s bytes now (on disk, or on a joined node)."""
        return entry is not None and (entry.spilled is not None or (entry.blob is not None and entry.blob.at is not None))

    def bring(self, oid: int) -> None:
        """Bring ``oid``'s bytes into this host's arena, from disk or a joined node (lock released; may fail)."""
        entry = self.entries.get(oid)
        if entry is not None and entry.spilled is not None:
            self.rt.store.restore_unlocked(oid)
        elif entry is not None and entry.blob is not None and entry.blob.at is not None:
            self.rt.store.fetch_unlocked(oid)

    def ship_all(self, w: WorkerRecord, deps: list[int]) -> list[tuple[int, Blob]]:
        return [(oid, self.ship(w, oid)) for oid in deps]

    def ship_args(self, w: WorkerRecord, deps: list[int], args_oid: int, args_blob: Blob) -> tuple[list[tuple[int, Blob | None]], Any]:
        """The arguments of a task, call or actor for ``w``, as :meth:`ship` makes them, except those on disk.

        Those are not read back here, under the lock: a dependency on disk
        goes as None, an arguments object as its id, and the worker asks for
        them with a get (read back on a helper, see :meth:`on_get`).
        """
        entries = self.entries
        ship = self.ship
        away = (lambda _entry: False) if w.remote else self.away  # (a joined node's worker pulls them itself)
        shipped: list[tuple[int, Blob | None]] = []
        for oid in deps:
            entry = entries.get(oid)
            shipped.append((oid, None if away(entry) or (entry is not None and entry.spilled is not None) else ship(w, oid)))
        if not args_oid:
            return shipped, args_blob
        entry = entries.get(args_oid)
        return shipped, args_oid if away(entry) or (entry is not None and entry.spilled is not None) else ship(w, args_oid)

    def unship(self, w: WorkerRecord, body: tuple[Any, ...]) -> None:
        """A task body that never left the outbox: give back the pins ``ship`` took for it."""
        shipped = [(blob.oid, blob) for _, blob in body[5] if blob is not None]
        if isinstance(body[4], Blob) and body[4].oid:
            shipped.append((body[4].oid, body[4]))
        for oid, blob in shipped:
            if blob.at is not None and len(blob.at) > 3:  # a copy it was to write: the region goes back
                self.rt.store.copied(w, self.entries.get(oid), blob.at[3], False)
            if oid and (blob.region is not None or blob.refs):
                self.change(oid, 0, -1, w)

    # -- the driver's own reads and writes -----------------------------------------------------

    def put(self, value: Any) -> ObjectRef:
        oid = self.new_id()
        blob = serialize(value, "the value to put", oid)
        with self.lock:
            self.table.new(oid)
            self.store(oid, blob)
        rt = self.rt
        if rt.observed is not None:
            rt.push((rt.seq(), "object", _now(), oid, "put", blob.nbytes))
        return ObjectRef(oid)

    def wait_object(self, oid: int, timeout: float | None) -> Blob | None:
        """The blob of ``oid`` once it is there (None after ``timeout``), pinned for reading if it is in the arena.

        The caller receives while it waits.
        """
        lock = self.lock
        blob = None
        with lock.raw:  # the bare lock (~0.2 us less): what this queues, if anything, runs just below
            entry = self.entries.get(oid)
            if entry is None or (entry.blob is not None and not self.away(entry)):
                blob = self._for_reading(oid)
        if lock.commands:
            lock.run_commands_if_free()
        if blob is not None:
            return blob
        assert entry is not None
        if entry.blob is None and self._wait_made(oid, entry, timeout) is None:
            return None
        if self.away(entry):  # on disk or on a joined node: brought here with the lock released (other calls go on)
            self.bring(oid)
        with self.lock:
            return self._for_reading(oid)

    def _for_reading(self, oid: int) -> Blob:
        """The blob of ``oid`` with a read pin of its region taken now (under the lock: it cannot be spilled meanwhile)."""
        blob = self.blob_or_lost(oid)
        if blob.region is None or not blob.oid or blob.at is not None:  # (one still on a joined node: pulled there)
            return blob
        copy = blob.copy()
        cache = self.rt.store.pin_cache
        pin = cache.get(oid)
        if pin is None:
            pin = cache[oid] = self.pin(oid, blob.region)
            if len(cache) > self.rt.config.pin_cache:
                cache.popitem(last=False)
        else:
            cache.move_to_end(oid)
        copy.pin = pin
        return copy

    def pin(self, oid: int, region: tuple[int, int]) -> Pin:
        self.change(oid, 0, 1)
        return self.rt.store.arena.pin(region[0], region[1], lambda: self.finalized(oid, 0, -1))

    def _wait_made(self, oid: int, entry: ObjectEntry, timeout: float | None) -> Blob | None:
        rt = self.rt
        receiver = rt.receiver
        deadline = None if timeout is None else time.monotonic() + timeout
        with receiver.role_cond:
            receiver.want_role += 1
        if receiver.parked:  # it holds the role while parked: wake it so that it lets go
            receiver.wake()
        wait: EventWait | None = None
        try:
            while entry.blob is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                if receiver.role.acquire(blocking=False):
                    try:
                        while entry.blob is None:
                            if rt.closed:
                                return self.blob_or_lost(oid)
                            left = None if deadline is None else deadline - time.monotonic()
                            if left is not None and left <= 0:
                                return None
                            receiver.receive_once(0.05 if left is None else min(left, 0.05))
                    finally:
                        receiver.role.release()
                else:  # another thread receives: it tells us when the object arrives
                    if rt.closed:
                        return self.blob_or_lost(oid)
                    if wait is None:
                        with self.lock:
                            if entry.blob is None:
                                wait = EventWait()
                                wait.missing = 1
                                entry.waiters.append(wait)
                    if wait is not None:
                        wait.event.wait(0.001 if left is None else min(left, 0.001))
        finally:
            with receiver.role_cond:
                receiver.want_role -= 1
                receiver.activity = time.monotonic()
                receiver.role_cond.notify_all()
        return entry.blob

    def wait_ids(self, ids: Sequence[int], num_returns: int, timeout: float | None) -> list[int]:
        """The ids ready once ``num_returns`` are (or after ``timeout``); SystemShutdownError if the cluster shuts down first."""
        rt = self.rt
        wait = EventWait()
        with self.lock:
            if rt.closing:
                raise SystemShutdownError("the cluster was shut down (nexus.shutdown)")
            ids = list(ids)
            if self.table.watch(ids, wait, num_returns):
                rt.waits.add(wait.event)
            else:
                wait.event.set()
        try:
            wait.event.wait(timeout)
        finally:
            with self.lock:
                rt.waits.discard(wait.event)
                if not wait.event.is_set():
                    self.table.unwatch(ids, wait)
        with self.lock:
            entries = self.entries
            ready = [oid for oid in ids if (entry := entries.get(oid)) is None or entry.blob is not None]
            if rt.closing and len(ready) < num_returns:
                raise SystemShutdownError("the cluster was shut down (nexus.shutdown) while this wait was waiting")
            return ready

    # -- what workers say -------------------------------------------------------------------

    def on_put(self, w: WorkerRecord, oid: int, blob: Blob) -> None:
        with self.lock:
            self.made_by(w, oid)
            self.store(oid, blob, w)
        self.rt.emit("object", oid, "put", blob.nbytes)

    def on_refs(self, w: WorkerRecord, ops: list[tuple[int, int, int]]) -> None:
        """Reference and pin changes a worker made (refs received in values, dropped; views made, dropped)."""
        with self.lock:
            for oid, dref, dpin in ops:
                self.change(oid, dref, dpin, w)
            self.drain_deferred()

    def on_alloc(self, w: WorkerRecord, request: int, nbytes: int) -> None:
        try:
            answer: Any = self.rt.store.allocate(nbytes, w)
        except Exception as exc:
            answer = error_blob(exc, "the driver")
        self.rt.outbox.send(w, ("objects", request, [(0, answer)]))

    def on_copied(self, w: WorkerRecord, oid: int, offset: int, ok: bool) -> None:
        with self.lock:
            self.rt.store.copied(w, self.entries.get(oid), offset, ok)

    def on_free(self, w: WorkerRecord, offset: int, nbytes: int) -> None:
        with self.lock:
            if w.allocs.pop(offset, None) is not None:
                self.rt.store.free_for(w, offset, nbytes)

    def on_get(self, w: WorkerRecord, request: int, ids: list[int], timeout: float | None, blocks: bool = False) -> None:
        """Answer once every object of ``ids`` is made (the worker keeps its own timeout).

        Objects on disk are read back first, on a helper thread with the lock released. A worker whose main
        thread waits for the answer (``blocks``) counts as blocked if the answer cannot come at once (as Ray's, a
        task that gets values already made keeps its CPU: no other worker starts for what it would wait for).
        """
        entries = self.entries
        away = [oid for oid in ids if (e := entries.get(oid)) is not None and e.spilled is not None]
        if not w.remote:  # (a joined node's worker pulls them from their nodes itself)
            away.extend(oid for oid in ids if (e := entries.get(oid)) is not None and e.blob is not None and e.blob.at is not None)
        if away:

            def restore_then_answer() -> None:
                for oid in away:
                    try:
                        self.bring(oid)
                    except Exception:  # no room, or shutting down: the answer says so (blob_or_lost tries again)
                        pass
                self._answer_get(w, request, ids)

            if blocks:
                self.rt.scheduler.on_blocked(w, True)
            self.rt.helper(restore_then_answer)
            return
        if not self._answer_get(w, request, ids) and blocks:
            self.rt.scheduler.on_blocked(w, True)

    def _answer_get(self, w: WorkerRecord, request: int, ids: list[int]) -> bool:
        """Whether the answer went at once (else it goes once the objects are made)."""
        get = WorkerGet(w, request, ids)
        with self.lock:
            if not self.table.watch(ids, get, len(ids)):
                self._answer_now(get)
                return True
            return False

    def _answer_now(self, get: WorkerGet) -> None:
        w = get.worker
        if w.alive:
            self.rt.outbox.send(w, ("objects", get.request, self.ship_all(w, get.ids)))

    def on_wait(self, w: WorkerRecord, request: int, ids: list[int], num_returns: int, timeout: float | None) -> None:
        def work() -> None:
            try:
                ready = self.wait_ids(ids, num_returns, timeout)
            except Exception:
                ready = []
            self.rt.outbox.send(w, ("objects", request, [(0, ready)]))

        threading.Thread(target=work, name="nexus-wait", daemon=True).start()


def _set_event(wait: EventWait) -> None:
    wait.event.set()
